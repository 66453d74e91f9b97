"""Cold-start time of ``elmo-tasks embed``: a new process each time, from launch to answer.

Runs the README's demo command several times in fresh processes (the operating system's file
cache stays warm: dropping it would disturb other users of the machine) and prints each wall time,
the median and the best, next to the time Python alone needs to import torch (the floor any
torch-based command pays).

    python benchmarks/cold_start.py [--runs 5] [--model DIR]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_description  # noqa: E402

from elmo_tasks.errors import run_script  # noqa: E402

DEMO = ["embed", "I love to watch TV", "I am wearing a wrist watch", "--word", "watch"]


def wall_time(command: list[str]) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"cold_start: {' '.join(command)} failed:\n{result.stderr}")
    return seconds


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the toolkit's default model)")
    args = parser.parse_args(argv)

    from elmo_tasks.model_folder import resolve_model

    command = [sys.executable, "-m", "elmo_tasks.cli", *DEMO] + (["--model", args.model] if args.model else [])
    model = resolve_model(args.model)
    print(f"machine: {machine_description(1)}")
    print(f"model: {model}")
    print(f"command: elmo-tasks {' '.join(repr(a) if ' ' in a else a for a in DEMO)}"
          + (f" --model {args.model}" if args.model else ""))
    wall_time(command)  # one unmeasured run: reads the files into the OS cache
    imports = [wall_time([sys.executable, "-c", "import torch"]) for _ in range(args.runs)]
    runs = [wall_time(command) for _ in range(args.runs)]
    print(f"elmo-tasks embed, {args.runs} runs (s): {', '.join(f'{t:.2f}' for t in runs)}")
    print(f"  median {statistics.median(runs):.2f} s, best {min(runs):.2f} s")
    print(f"python -c 'import torch' alone: median {statistics.median(imports):.2f} s, best {min(imports):.2f} s")
    return 0


if __name__ == "__main__":
    run_script(main, "cold_start")
