"""Concurrency: run folders, bench outputs, pretraining folders and cache keys take one process at a
time (elmo_tasks.lock); tested with real concurrent processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elmo_tasks.errors import UserError
from elmo_tasks.lock import LOCK_NAME, hold, is_locked

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tests" / "fixtures" / "tasks"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1"}


def holder(path: Path, seconds: float = 60) -> subprocess.Popen:
    """A real process holding the lock file ``path`` until killed (or ``seconds``)."""
    script = ("import sys, time\nfrom elmo_tasks.lock import hold\n"
              f"with hold({str(path)!r}, 'x'):\n    print('held', flush=True); time.sleep({seconds})\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
    assert child.stdout.readline().strip() == "held"
    return child


def cli(*args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "elmo_tasks.cli", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def test_second_holder_is_refused_naming_the_first_then_a_dead_holder_is_taken_over(tmp_path):
    path = tmp_path / LOCK_NAME
    child = holder(path)
    try:
        assert is_locked(path)
        with pytest.raises(UserError) as caught:
            with hold(path, f"run folder {tmp_path}"):
                pass
        message = str(caught.value)
        assert f"run folder {tmp_path} is in use by process {child.pid}" in message and "\n" not in message
    finally:
        os.kill(child.pid, signal.SIGKILL)  # the holder dies without releasing: a stale lock file stays
        child.wait()
    assert path.is_file() and json.loads(path.read_text())["pid"] == child.pid and not is_locked(path)
    with hold(path, "x"):
        assert json.loads(path.read_text())["pid"] == os.getpid()
    assert not path.exists()  # removed on release


def test_a_lock_file_of_a_gone_process_is_taken_over(tmp_path):
    path = tmp_path / LOCK_NAME
    path.write_text(json.dumps({"pid": 999_999_999, "host": os.uname().nodename, "since": "then", "command": "x"}))
    with hold(path, "x"):
        assert json.loads(path.read_text())["pid"] == os.getpid()


def test_wait_waits_for_the_holder(tmp_path):
    path = tmp_path / "key.lock"
    child = holder(path, seconds=1.5)
    start = time.perf_counter()
    with hold(path, "the cache", wait=True):
        waited = time.perf_counter() - start
    child.wait()
    assert waited > 0.5


def test_two_runs_into_one_folder_one_refused_one_correct(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {TASKS / 'glosses_glove.yaml'}\ndataset: {{max_examples: 40}}\n"
                      "trainer: {epochs: 2}\n", encoding="utf-8")
    out = tmp_path / "run"
    first = cli("run", str(config), "--out", str(out), "--quiet")
    deadline = time.time() + 60
    def held_by_first() -> bool:  # the holder's pid is written once the flock is taken
        try:
            return json.loads((out / LOCK_NAME).read_text())["pid"] == first.pid
        except (OSError, ValueError, KeyError):
            return False

    while not held_by_first() and first.poll() is None and time.time() < deadline:
        time.sleep(0.005)
    os.kill(first.pid, signal.SIGSTOP)  # hold the first mid-run (deterministic, whatever the machine's load)
    try:
        assert first.poll() is None, "the first run finished before the second could start"
        second = cli("run", str(config), "--out", str(out), "--quiet")
        _, err2 = second.communicate(timeout=120)
    finally:
        os.kill(first.pid, signal.SIGCONT)
    _, err1 = first.communicate(timeout=300)
    assert first.returncode == 0, err1
    assert second.returncode == 2 and err2.count("\n") == 1 and "Traceback" not in err2
    assert f"is in use by process {first.pid}" in err2
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["epochs_run"] == 2 and not (out / LOCK_NAME).exists()
    # the run folder is free again: the same command now finds the run complete
    again = cli("run", str(config), "--out", str(out))
    _, err = again.communicate(timeout=120)
    assert again.returncode == 0 and "already complete" in err


def test_bench_and_pretrain_folders_are_locked(tmp_path):
    out = tmp_path / "bench"
    out.mkdir()
    child = holder(out / LOCK_NAME)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"name: s\ntasks:\n  - name: t\n    glove: {TASKS / 'wnut16_glove.yaml'}\n"
                     f"    glove_elmo: {TASKS / 'wnut16_elmo.yaml'}\n", encoding="utf-8")
    pretrain_out = tmp_path / "pretrain"
    pretrain_out.mkdir()
    child2 = holder(pretrain_out / LOCK_NAME)
    try:
        bench = cli("bench", str(suite), "--out", str(out))
        _, err = bench.communicate(timeout=120)
        assert bench.returncode == 2 and err.count("\n") == 1, err
        assert f"bench output {out} is in use by process {child.pid}" in err
        pretrain = cli("pretrain", str(ROOT / "configs" / "pretrain" / "tiny.yaml"), "--out", str(pretrain_out))
        _, err = pretrain.communicate(timeout=120)
        assert pretrain.returncode == 2 and err.count("\n") == 1, err
        assert f"pretraining folder {pretrain_out} is in use by process {child2.pid}" in err
    finally:
        for c in (child, child2):
            os.kill(c.pid, signal.SIGKILL)
            c.wait()
    assert sorted(p.name for p in out.iterdir()) == [LOCK_NAME]  # nothing written by the refused bench


def test_two_cache_builds_of_one_key_end_with_one_complete_cache(tmp_path):
    """A second process needing the same cache waits for the first (when they overlap) and reuses it."""
    from elmo_tasks.embedder import FIXTURE_MODEL_DIR
    from elmo_tasks.features.cache import LayerCache

    sentences = [["a", "b", "c"], ["the", "cat"]] * 50
    script = ("import sys, json\nfrom pathlib import Path\nfrom elmo_tasks.features.cache import LayerCache\n"
              f"cache = LayerCache(Path({str(FIXTURE_MODEL_DIR)!r}), Path({str(tmp_path)!r}))\n"
              f"s = {sentences!r}\n"
              "print(json.dumps([cache.ensure(s, progress=False), str(cache.path_for(s))]), flush=True)\n")
    children = [subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True, env=ENV)
                for _ in range(2)]
    results = [json.loads(c.communicate(timeout=300)[0]) for c in children]
    assert all(c.returncode == 0 for c in children)
    built = [r[0] for r in results]
    path = Path(results[0][1])
    cache = LayerCache(FIXTURE_MODEL_DIR, tmp_path)
    assert cache.lookup(sentences) is not None and cache.path_for(sentences) == path
    leftovers = [p.name for p in path.parent.iterdir() if p != path]
    assert leftovers == []  # no lock file, no temporary folder
    assert built.count(True) >= 1
    meta = json.loads((path / "meta.json").read_text())
    assert meta["sentences"] == 100


def test_a_filesystem_without_locks_runs_unlocked_with_a_warning(tmp_path, monkeypatch, capsys):
    import errno
    import fcntl

    def no_locks(fd, operation):
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(fcntl, "flock", no_locks)
    with hold(tmp_path / LOCK_NAME, "run folder x"):
        pass
    assert "warning: cannot lock run folder x" in capsys.readouterr().err
    assert not (tmp_path / LOCK_NAME).exists()
