"""Kill and resume: ``run``, ``bench``, ``cache`` and ``embed-file`` killed mid-work (SIGKILL, or
SIGTERM) and started again end identical to unbroken runs, with no temporary files or locks left."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import yaml
from cli_util import run_cli, start_cli
from tasks_util import TASK_FIXTURES

WORDS = "the cat sat on a mat while dogs ran past quickly and birds sang over green hills".split()


def wait_for(predicate, child, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not predicate():
        assert child.poll() is None, f"finished before it could be killed: {child.communicate()[1][-2000:]}"
        assert time.time() < deadline, "timed out waiting"
        time.sleep(0.01)


def kill(child, sig=signal.SIGKILL) -> int:
    os.kill(child.pid, sig)
    child.stderr_text = child.communicate(timeout=120)[1]
    return child.returncode


def leftovers(folder: Path) -> list[str]:
    """Temporaries and lock files anywhere under ``folder``."""
    return sorted(str(p) for p in folder.rglob("*") if ".tmp-" in p.name or p.name.endswith(".lock")
                  or p.name == ".lock")


def text_file(path: Path, lines: int) -> Path:
    rng = np.random.default_rng(0)
    path.write_text("".join(" ".join(rng.choice(WORDS, size=rng.integers(3, 25))) + "\n" for _ in range(lines)),
                    encoding="utf-8")
    return path


def hdf5_contents(path: Path) -> dict:
    with h5py.File(path, "r") as handle:
        return {name: handle[name][()] for name in handle}


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM])
def test_embed_file(tmp_path, sig):
    source = text_file(tmp_path / "in.txt", 8_000)  # ~5 s of work: the kill must land before the end
    model = Path(__file__).resolve().parents[1] / "elmo_tasks" / "models" / "tiny_fixture"
    unbroken = run_cli("embed-file", source, tmp_path / "unbroken.hdf5", "--model", model, "--quiet", timeout=600)
    assert unbroken.returncode == 0, unbroken.stderr
    out = tmp_path / "out.hdf5"
    child = start_cli("embed-file", source, out, "--model", model, "--quiet")
    wait_for(lambda: any(tmp_path.glob("out.hdf5.tmp-*")), child)
    time.sleep(0.05)
    code = kill(child, sig)
    assert not out.exists(), (code, child.stderr_text[-2000:])  # the kill landed before the end
    if sig == signal.SIGKILL:
        assert code == -9 and len(list(tmp_path.glob("out.hdf5.tmp-*"))) == 1  # a kill -9 cannot clean up
    else:
        assert code == 143 and leftovers(tmp_path) == []  # SIGTERM unwinds like Ctrl-C
    again = run_cli("embed-file", source, out, "--model", model, "--quiet", timeout=600)
    assert again.returncode == 0, again.stderr
    assert leftovers(tmp_path) == []  # the dead process's temporary was swept
    a, b = hdf5_contents(tmp_path / "unbroken.hdf5"), hdf5_contents(out)
    assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)


def small_config(folder: Path, epochs: int = 5) -> Path:
    path = folder / "c.yaml"
    path.write_text(yaml.safe_dump({
        "extends": str(TASK_FIXTURES / "wnut16_glove.yaml"), "dataset": {"max_examples": 100},
        "trainer": {"epochs": epochs, "patience": epochs}, "head": {"name": "tagger", "hidden": 16}}), encoding="utf-8")
    return path


def test_run(tmp_path):
    config = small_config(tmp_path)
    assert run_cli("run", config, "--out", tmp_path / "unbroken", "--quiet", timeout=600).returncode == 0
    out = tmp_path / "killed"
    child = start_cli("run", config, "--out", out, "--quiet")
    wait_for(lambda: (out / "checkpoints" / "last.pt").is_file(), child)
    assert kill(child) == -9 and not (out / "metrics.json").exists()
    again = run_cli("run", config, "--out", out, "--quiet", timeout=600)
    assert again.returncode == 0, again.stderr
    assert "resuming after epoch" in (out / "log.txt").read_text()
    a, b = (json.loads((tmp_path / name / "metrics.json").read_text()) for name in ("unbroken", "killed"))
    strip = lambda hs: [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in hs]  # noqa: E731
    assert strip(a["history"]) == strip(b["history"]) and a["test"] == b["test"] and a["dev"] == b["dev"]
    assert (tmp_path / "unbroken" / "predictions" / "test.jsonl").read_text() == (out / "predictions" / "test.jsonl").read_text()
    assert leftovers(tmp_path) == [] and not (out / "checkpoints" / "last.pt").exists()


def elmo_config(folder: Path, cache: Path) -> Path:
    path = folder / "e.yaml"
    path.write_text(yaml.safe_dump({
        "extends": str(TASK_FIXTURES / "wnut16_elmo.yaml"), "dataset": {"max_examples": 400},
        "features": {"elmo": {"cache_dir": str(cache), "batch_size": 4}}}), encoding="utf-8")
    return path


def cache_arrays(root: Path) -> dict[str, np.ndarray]:
    return {f"{p.parent.name}/{p.name}": np.load(p) for p in sorted(root.rglob("*.npy"))}


def test_cache(tmp_path):
    unbroken_root, root = tmp_path / "unbroken", tmp_path / "killed"
    assert run_cli("cache", elmo_config(tmp_path, unbroken_root), "--quiet", timeout=600).returncode == 0
    config = elmo_config(tmp_path, root)
    child = start_cli("cache", config, "--quiet")
    wait_for(lambda: any(".tmp-" in p.name for p in root.rglob("*")), child)
    time.sleep(0.3)
    assert kill(child) == -9
    assert any(".tmp-" in p.name for p in root.rglob("*"))  # the killed build's temporary folder
    again = run_cli("cache", config, "--quiet", timeout=600)
    assert again.returncode == 0, again.stderr
    assert leftovers(root) == []
    a, b = cache_arrays(unbroken_root), cache_arrays(root)
    assert a.keys() == b.keys() and len(a) == 6 and all(np.array_equal(a[k], b[k]) for k in a)


def test_bench(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    glove = small_config(configs, epochs=3)
    elmo = configs / "e.yaml"
    elmo.write_text(yaml.safe_dump({"extends": str(glove), "features": {"elmo": {
        "model": "fixture", "dropout": 0.2, "cache_dir": str(tmp_path / "cache")}}}), encoding="utf-8")
    suite = tmp_path / "suite.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "seeds": 2, "tasks": [
        {"name": "wnut", "glove": str(glove), "glove_elmo": str(elmo)}]}), encoding="utf-8")
    assert run_cli("bench", suite, "--out", tmp_path / "unbroken", timeout=900).returncode == 0
    out = tmp_path / "killed"
    child = start_cli("bench", suite, "--out", out)
    wait_for(lambda: len(list(out.rglob("metrics.json"))) >= 1 and any(out.rglob("last.pt")), child, timeout=600)
    assert kill(child) == -9 and not (out / "comparison.csv").exists()
    again = run_cli("bench", suite, "--out", out, timeout=900)
    assert again.returncode == 0, again.stderr
    for name in ("comparison.csv", "layer_weights.csv"):
        assert (tmp_path / "unbroken" / name).read_text() == (out / name).read_text()
    assert leftovers(tmp_path) == []
    assert json.loads((out / "bench.json").read_text())["reused"] >= 1


def test_sigterm_inside_a_finalizer_still_unwinds(tmp_path):
    """A SIGTERM that lands while a ``__del__`` runs is printed and swallowed by Python; the command
    line delivers it again once out of the finalizer (embed-file once went on to the end that way)."""
    script = tmp_path / "finalizer.py"
    script.write_text(
        "import os, signal\n"
        "from elmo_tasks.cli import Terminated, sigterm_unwinds\n"
        "class Finalized:\n"
        "    def __del__(self):\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "        sum(range(1000))\n"
        "with sigterm_unwinds():\n"
        "    try:\n"
        "        Finalized()\n"
        "        for _ in range(10 ** 8):\n"
        "            pass\n"
        "        print('went on')\n"
        "    except Terminated:\n"
        "        print('terminated')\n", encoding="utf-8")
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60,
                          cwd=Path(__file__).resolve().parents[1])
    assert done.stdout.strip() == "terminated", done.stderr[-2000:]
