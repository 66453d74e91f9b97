"""A probe of damaged and hostile model files: every case must be a clear error or a correct result.

Each case builds a damaged or hostile copy of the TF-written test fixtures (``tests/fixtures/tf/``:
a TF-Hub module and its .tar.gz, a bilm-tf save dir) or of the public-format fixture model, in a
fresh folder, then runs the real command line (``convert``, ``embed --model``; ``hub.Module`` for
the Python API cases) of a code tree in a child process, under a 2 GiB address-space limit and a
timeout, with its own ``TMPDIR`` and cache. The outcome is one of:

* ``clear error``: exit 2 and one line ``elmo-tasks: error: ...`` naming the user's file, not a
  temporary folder; ``correct result``: exit 0 and the expected weights or vectors;
* failures: ``traceback`` (or any exit but 0/2), ``hang`` (past the timeout), ``input changed``
  (a byte of the inputs differs afterwards), ``unbounded`` (the process wrote more than twice the
  bytes of the files a correct loader reads plus 1 MiB, counted by the kernel's ``wchar``, or ran
  out of memory), ``leftovers`` (a killed conversion's folders still there after the next run),
  ``accepted a bad model`` (exit 0
  where an error was due: NaN vectors, weights cast from integers, a source overwritten), ``misleading error``
  (names the temporary folder, or not the user's file), ``refused a good model``, ``wrong result``.

    python benchmarks/hostile_models.py                        # this tree
    python benchmarks/hostile_models.py --tree /tmp/before --tree .   # before and after, case by case
    python benchmarks/hostile_models.py --only tar --json out.json

Cases run one at a time (each starts Python, most import torch): about 3 s each on a quiet machine.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import resource
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from hostile_cases import CASES, Run, Workspace  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
MEMORY_LIMIT = 2 << 30
PASSING = ("clear error", "correct result")
BIG = 64 << 20

# runs the CLI (or a Python snippet) and records the bytes the process wrote (/proc/self/io wchar) at exit
WRAPPER = r"""
import atexit, sys
report, mode = sys.argv[1], sys.argv[2]
def _written():
    try:
        with open("/proc/self/io") as handle:
            wchar = next(l.split()[1] for l in handle if l.startswith("wchar:"))
        with open(report, "w") as out:
            out.write(wchar)
    except Exception:
        pass
atexit.register(_written)
sys.argv = [sys.argv[0]] + sys.argv[3:]
if mode == "cli":
    from elmo_tasks.cli import main
    sys.exit(main(sys.argv[1:]))
exec(compile(mode, "<case>", "exec"))
"""


@dataclass
class Outcome:
    case: str
    group: str
    outcome: str
    detail: str = ""
    seconds: float = 0.0
    written: int = 0
    extra: dict = field(default_factory=dict)


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))
    os.setsid()


def tree_digest(root: Path) -> str:
    """Names, kinds and bytes of everything under ``root`` (FIFOs and devices by name only: never opened)."""
    digest = hashlib.sha256()
    for path in sorted(root.rglob("*")):
        digest.update(str(path.relative_to(root)).encode())
        if path.is_symlink():
            digest.update(b"L" + os.readlink(path).encode())
        elif path.is_file() and path.stat().st_size > BIG:  # sparse test files of GiBs: size, time, both ends
            info = path.stat()
            digest.update(f"{info.st_size} {info.st_mtime_ns}".encode())
            with open(path, "rb") as handle:
                digest.update(handle.read(1 << 20))
                handle.seek(-(1 << 20), os.SEEK_END)
                digest.update(handle.read())
        elif path.is_file():
            with open(path, "rb") as handle:
                for block in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(block)
        else:
            digest.update(b"D" if path.is_dir() else b"S")
    return digest.hexdigest()


def start(tree: Path, ws: Workspace, run: Run) -> tuple[subprocess.Popen, Path]:
    report = ws.root / "written.txt"
    mode = "cli" if run.code is None else run.code
    env = {**os.environ, "PYTHONPATH": str(tree), "TMPDIR": str(ws.tmp), "ELMO_TASKS_CACHE": str(ws.cache),
           "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1", "PYTHONDONTWRITEBYTECODE": "1",
           "ARROW_DEFAULT_MEMORY_POOL": "system"}
    argv = [sys.executable, "-c", WRAPPER, str(report), mode, *map(str, run.argv)]
    process = subprocess.Popen(argv, cwd=ws.root, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                               preexec_fn=_limit)
    return process, report


def run_case(tree: Path, case, timeout: float, reference: str) -> Outcome:
    name, group, build = case
    with tempfile.TemporaryDirectory(prefix="hostile-") as tmp:
        ws = Workspace(Path(tmp))
        run = build(ws)
        before = tree_digest(ws.inp)
        began = time.monotonic()
        if run.kill_first is not None:  # kill -9 a first run as soon as its folder appears, then run again
            first, _ = start(tree, ws, run.kill_first)
            deadline = time.monotonic() + timeout
            while first.poll() is None and time.monotonic() < deadline and not run.kill_when(ws):
                time.sleep(0.005)
            killed = first.poll() is None
            if killed:
                os.killpg(first.pid, signal.SIGKILL)
            first.communicate()
            if not killed:
                return Outcome(name, group, "not probed", "the first run ended before it could be killed")
        process, report = start(tree, ws, run)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            return Outcome(name, group, "hang", f"still running after {timeout:.0f} s", time.monotonic() - began)
        seconds = time.monotonic() - began
        written = int(report.read_text()) if report.is_file() else -1
        outcome = classify(run, ws, process.returncode, out, err, written, before, reference)
        outcome.case, outcome.group, outcome.seconds, outcome.written = name, group, seconds, written
        return outcome


def classify(run: Run, ws: Workspace, code: int, out: str, err: str, written: int, before: str,
             reference: str) -> Outcome:
    last = (err.strip().splitlines() or [""])[-1][:300]
    if "Traceback" in err or code not in (0, 2) or (code == 2 and not err.startswith("elmo-tasks: error: ")):
        return Outcome("", "", "traceback", f"exit {code}: {last}")
    if tree_digest(ws.inp) != before:
        return Outcome("", "", "input changed", f"exit {code}: {last}")
    if written > run.budget or "out of memory" in err:
        return Outcome("", "", "unbounded", f"wrote {written:,} bytes (budget {run.budget:,}): {last}")
    leftovers = sorted(p.name for p in ws.tmp.iterdir()) + sorted(
        str(p.relative_to(ws.root)) for p in ws.root.rglob("*.tmp-*"))
    if leftovers:
        return Outcome("", "", "leftovers", ", ".join(leftovers[:3]))
    if code == 0:
        if run.expect == "error":
            return Outcome("", "", "accepted a bad model", "exit 0" + (" with NaN output" if "nan" in out else ""))
        problem = run.check(ws, out, reference) if run.check else None
        if problem:
            return Outcome("", "", "wrong result", problem)
        return Outcome("", "", "correct result")
    if run.expect == "result":
        return Outcome("", "", "refused a good model", last)
    if err.count("\n") != 1:
        return Outcome("", "", "traceback", f"{err.count(chr(10))} lines on stderr: {last}")
    if str(ws.tmp) in err or ".tmp-" in err or "elmo-tasks-tfhub" in err:
        return Outcome("", "", "misleading error", f"names a temporary folder: {last}")
    if run.names is not None and run.names not in err:
        return Outcome("", "", "misleading error", f"does not name {run.names}: {last}")
    return Outcome("", "", "clear error", last)


def reference_output(tree: Path) -> str:
    """What ``embed --word love`` prints with the public-format fixture model, in this tree."""
    done = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "embed", "I love it", "--word", "love", "--model",
                           ROOT / "elmo_tasks" / "models" / "tiny_fixture"], capture_output=True, text=True, cwd=tree,
                          env={**os.environ, "PYTHONPATH": str(tree), "PYTHONDONTWRITEBYTECODE": "1"}, timeout=300)
    if done.returncode:
        raise SystemExit(f"the reference run failed in {tree}: {done.stderr[-500:]}")
    return done.stdout


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", action="append", type=Path, help="code tree to probe (repeat: before, after); "
                        "default: this checkout")
    parser.add_argument("--only", help="run the cases whose name or group contains this text")
    parser.add_argument("--timeout", type=float, default=60, help="seconds before a case counts as a hang (default 60)")
    parser.add_argument("--json", type=Path, help="write every outcome here")
    parser.add_argument("--list", action="store_true", help="list the cases and exit")
    parser.add_argument("--verbose", action="store_true", help="print every outcome's detail (the error line)")
    args = parser.parse_args(argv)
    cases = [c for c in CASES if not args.only or args.only in c[0] or args.only in c[1]]
    if args.list:
        for name, group, _ in cases:
            print(f"{group:12s} {name}")
        print(f"{len(cases)} cases")
        return 0
    trees = [t.resolve() for t in (args.tree or [ROOT])]
    load = os.getloadavg()[0]
    print(f"{len(cases)} cases x {len(trees)} tree(s); load average {load:.2f}; timeout {args.timeout:.0f} s", flush=True)
    references = {tree: reference_output(tree) for tree in trees}
    results: dict[Path, list[Outcome]] = {tree: [] for tree in trees}
    for case in cases:  # the trees interleaved, case by case
        line = [f"{case[1]:10s} {case[0][:60]:60s}"]
        for tree in trees:
            outcome = run_case(tree, case, args.timeout, references[tree])
            results[tree].append(outcome)
            line.append(f"{outcome.outcome:22s}")
        print(" ".join(line), flush=True)
        for tree in trees:
            outcome = results[tree][-1]
            if outcome.outcome not in PASSING or (args.verbose and outcome.detail):
                print(f"{'':11s}{tree.name}: {outcome.detail[:220]}", flush=True)
    print(f"\nload average at the end {os.getloadavg()[0]:.2f}")
    for tree in trees:
        counts = Counter(o.outcome for o in results[tree])
        passed = sum(counts[k] for k in PASSING)
        written = max(o.written for o in results[tree])
        print(f"{tree}: {passed} of {len(cases)} pass ({', '.join(f'{v} {k}' for k, v in counts.most_common())}); "
              f"largest write {written:,} bytes")
    if args.json:
        args.json.write_text(json.dumps({str(t): [o.__dict__ for o in rs] for t, rs in results.items()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
