"""``elmo-tasks bench SUITE.yaml [--seeds N] [--out DIR] [--jobs J] [--prepare]``: run every config of a benchmark
suite (every grid point of each arm) for N seeds, reusing finished runs and resuming interrupted
ones, pick each arm's grid point on dev, and write the comparison tables with significance figures.
See elmo_tasks.comparison.suite for the suite file and elmo_tasks.comparison.bench for the output.
"""

from __future__ import annotations

import argparse
import os

from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime, help_epilog
from elmo_tasks.errors import UserError

HELP = "run a benchmark suite (configs/suites/*.yaml) for N seeds and tabulate GloVe vs GloVe + ELMo"
EPILOG = help_epilog("A suite names, per task, a GloVe config and a GloVe + ELMo config with the same trainer and "
                     "head budget\n(configs/suites/offline.yaml; the method: docs/benchmarks.md).")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("suite", metavar="SUITE", help="suite file (configs/suites/offline.yaml)")
    parser.add_argument("--seeds", type=int, metavar="N", help="seeds 0..N-1 per config (default: the suite's seeds, 5)")
    parser.add_argument("--out", metavar="DIR", help="output folder (default: the suite's output, runs/bench/NAME)")
    parser.add_argument("--jobs", type=int, metavar="J", default=1,
                        help="runs trained at once, each in its own process (default 1); with J > 1 each gets "
                        "--threads threads, by default the CPU count / J")
    parser.add_argument("--prepare", action="store_true",
                        help="build the prepared data sets the suite needs that are missing (elmo-tasks data prepare)")
    add_runtime_arguments(parser, device_help="auto, cpu, cuda or cuda:N for every run (default: each config's "
                          "trainer.device)")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    from elmo_tasks.comparison.bench import run_suite
    from elmo_tasks.comparison.notes import command_line
    from elmo_tasks.comparison.suite import load_suite
    from elmo_tasks.paths import check_output_dir

    suite = load_suite(args.suite, check_configs=False)  # run_suite checks the configs
    check_output_dir(args.out or suite.output, "--out" if args.out else f"{args.suite}: output")
    seeds = args.seeds if args.seeds is not None else suite.seeds
    if not 1 <= seeds <= 1000:
        raise UserError(f"--seeds: must be between 1 and 1000, got {seeds}")
    if not 1 <= args.jobs <= 256:
        raise UserError(f"--jobs: must be between 1 and 256, got {args.jobs}")
    runtime = apply_runtime(args, config_decides_device=True)
    if runtime.device is not None:
        suite.overrides["trainer.device"] = str(runtime.device)
    threads = args.threads if args.jobs == 1 else (args.threads or max(1, (os.cpu_count() or 1) // args.jobs))
    argv = ["bench", args.suite, "--seeds", str(seeds)] + (["--out", args.out] if args.out else []) \
        + (["--jobs", str(args.jobs)] if args.jobs > 1 else [])
    # the note shows the command from the working folder, with absolute paths made relative to it
    result = run_suite(suite, list(range(seeds)), args.out or suite.output, command=command_line(argv, paths=(1, 5)),
                       verbose=args.verbose, prepare=args.prepare, jobs=args.jobs, threads=threads,
                       log=runtime.say)
    print(result.written["comparison.md"].read_text(encoding="utf-8"), end="")
    runtime.result(f"{result.trained} runs trained in {result.run_seconds / 60:.1f} min ({result.wall_seconds / 60:.1f} min "
                   f"wall, {args.jobs} at once), {result.reused} reused; "
                   f"ELMo caches {result.cache_seconds:.0f}s; wrote {', '.join(str(p) for p in result.written.values())}")
    return 0
