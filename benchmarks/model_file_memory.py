"""Peak memory and temporary disk of converting an original-shape TF-Hub module from its .tar.gz.

Builds a TF-Hub module of the original ELMo's shape (2 layers of 4096 cells / 512 projections,
filters up to 1024, 2 highways: 93.6M parameters, random weights) by writing the TensorFlow bundle
format directly (tests/tf_surgery.py writes the index table; the layout is the one
tests/fixtures/tf/make_tf_fixtures.py gets from real TensorFlow), packs it as ``.tar.gz``, then runs
``elmo-tasks convert`` of each code tree in a child process and reports its peak RSS (getrusage of
the child), the peak bytes under its private ``TMPDIR`` (sampled every 20 ms) and the output size.

    python benchmarks/model_file_memory.py --tree /tmp/before --tree .
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tarfile
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))
from tf_surgery import encode, shape_proto, write_table  # noqa: E402

FILTERS = [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
CELLS, PROJ, CHARS, HIGHWAYS, LAYERS = 4096, 512, 16, 2, 2


def shapes() -> dict[str, list[int]]:
    n = sum(f[1] for f in FILTERS)
    out = {"aggregation/scaling": [1], "aggregation/weights": [LAYERS + 1], "bilm/char_embed": [262, CHARS]}
    for i, (width, count) in enumerate(FILTERS):
        out[f"bilm/CNN/W_cnn_{i}"], out[f"bilm/CNN/b_cnn_{i}"] = [1, width, CHARS, count], [count]
    for k in range(HIGHWAYS):
        for kind in ("carry", "transform"):
            out[f"bilm/CNN_high_{k}/W_{kind}"], out[f"bilm/CNN_high_{k}/b_{kind}"] = [n, n], [n]
    out["bilm/CNN_proj/W_proj"], out["bilm/CNN_proj/b_proj"] = [n, PROJ], [PROJ]
    for d in range(2):
        for layer in range(LAYERS):
            cell = f"bilm/RNN_{d}/RNN/MultiRNNCell/Cell{layer}/rnn/lstm_cell"
            out[f"{cell}/kernel"], out[f"{cell}/bias"] = [2 * PROJ, 4 * CELLS], [4 * CELLS]
            out[f"{cell}/projection/kernel"] = [CELLS, PROJ]
    return out


def build_module(folder: Path) -> int:
    """variables/variables.{index,data-00000-of-00001}; returns the parameter count."""
    (folder / "variables").mkdir(parents=True)
    rng = np.random.default_rng(0)
    entries, offset = [(b"", encode([[1, 0, 1]]))], 0
    with open(folder / "variables" / "variables.data-00000-of-00001", "wb") as data:
        for name, shape in sorted(shapes().items()):
            count = int(np.prod(shape))
            values = (rng.standard_normal(count, dtype=np.float32) * 0.05)
            if name == "bilm/char_embed":
                values.reshape(shape)[0] = 0  # the inference graph's zero padding row
            data.write(values.tobytes())
            entries.append((name.encode(), encode([[1, 0, 1], [2, 2, shape_proto(shape)], [4, 0, offset],
                                                   [5, 0, 4 * count]])))
            offset += 4 * count
    (folder / "variables" / "variables.index").write_bytes(write_table(entries))
    return offset // 4 - (LAYERS + 2)


def _folder_bytes(folder: Path) -> int:
    total = 0
    for dirpath, _, files in os.walk(folder):
        for name in files:
            try:
                total += os.lstat(os.path.join(dirpath, name)).st_blocks * 512
            except OSError:
                pass
    return total


def measure(tree: Path, archive: Path, work: Path) -> dict:
    tmp, out = work / "tmp", work / "out"
    tmp.mkdir()
    env = {**os.environ, "PYTHONPATH": str(tree), "TMPDIR": str(tmp), "ELMO_TASKS_CACHE": str(work / "cache"),
           "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1", "ARROW_DEFAULT_MEMORY_POOL": "system"}
    peak, done = [0], threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], _folder_bytes(tmp))
            time.sleep(0.02)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    began = time.monotonic()
    result = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "convert", str(archive), str(out)], env=env,
                            capture_output=True, text=True)
    done.set()
    sampler.join()
    if result.returncode:
        raise SystemExit(f"{tree}: convert failed: {result.stderr[-800:]}")
    rss = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss * 1024  # the largest child so far
    return {"rss": rss, "tmp": peak[0], "out": _folder_bytes(out), "seconds": time.monotonic() - began}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="code tree (repeat: before, after)")
    args = parser.parse_args()
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    with tempfile.TemporaryDirectory(prefix="model-file-memory-") as root:
        root = Path(root)
        parameters = build_module(root / "module")
        archive = root / "elmo.tar.gz"
        with tarfile.open(archive, "w:gz", compresslevel=1) as tar:
            tar.add(root / "module" / "variables", arcname="variables")
        print(f"original shape: {parameters / 1e6:.1f}M parameters; archive {archive.stat().st_size / 2**20:.0f} MiB; "
              f"load average {os.getloadavg()[0]:.2f}", flush=True)
        for tree in trees:  # one child per tree: ru_maxrss of RUSAGE_CHILDREN is the largest so far, so
            work = root / f"work-{len(list(root.glob('work-*')))}"  # run each tree in its own python
            work.mkdir()
            code = (f"import sys, json; sys.path.insert(0, {str(ROOT / 'benchmarks')!r}); import model_file_memory as m; "
                    f"from pathlib import Path; print(json.dumps(m.measure(Path({str(tree)!r}), Path({str(archive)!r}), "
                    f"Path({str(work)!r}))))")
            line = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
            figures = json.loads(line.strip().splitlines()[-1])
            print(f"{tree}: peak RSS {figures['rss'] / 2**20:.0f} MiB, peak TMPDIR {figures['tmp'] / 2**20:.0f} MiB, "
                  f"output {figures['out'] / 2**20:.0f} MiB ({figures['seconds']:.0f} s)", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
