"""``elmo-tasks compare RUN_DIRS... [--out DIR]``: the GloVe vs GloVe + ELMo table of finished runs.

Each argument is a run folder or a folder holding run folders (at any depth: a bench output, or
``runs/``). Runs are grouped by data set and setting (see elmo_tasks.comparison.runs); runs of a
bench grid are grouped by grid point and each arm's point is picked on dev. The arms of a task must
have the same trainer and head settings (``--allow-unequal`` tabulates them anyway, marked). The
markdown table (with the paired-bootstrap p per task, given from 3 seeds per arm, and a verdict
naming only p < 0.05) goes to stdout, and with ``--out`` the CSVs and the layer-weight plot are
written there too. Folders are recorded relative to ``--out`` (else the working folder).
"""

from __future__ import annotations

import argparse
import sys

HELP = ("tabulate finished runs: GloVe vs GloVe + ELMo per task (mean ± std over seeds, paired-bootstrap p), "
        "probes, layer weights")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dirs", metavar="RUN_DIR", nargs="+",
                        help="run folders, or folders holding run folders (searched for metrics.json)")
    parser.add_argument("--out", metavar="DIR", help="also write comparison.md, *.csv and layer_weights.png here")
    parser.add_argument("--allow-unequal", action="store_true", help="tabulate arms trained with different trainer "
                        "or head settings (refused otherwise), marked ‡ and without a verdict")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    from elmo_tasks.comparison.notes import command_line, models_note
    from elmo_tasks.comparison.runs import find_runs
    from elmo_tasks.comparison.table import check_records, report_markdown, write_report
    from elmo_tasks.paths import check_output_dir

    if args.out:
        check_output_dir(args.out, "--out")
    records = find_runs(args.run_dirs)
    check_records(records)
    argv = ["compare", *args.run_dirs] + (["--out", args.out] if args.out else []) \
        + (["--allow-unequal"] if args.allow_unequal else [])
    # the note records the command from the report's folder: run folders relative to --out
    count = len(args.run_dirs)
    shown = command_line(argv, paths=(*range(1, count + 1), count + 2), base=args.out)
    note = f"Made by `{shown}`{' (run folders relative to this folder)' if args.out else ''} " \
           f"from {len(records)} runs.{models_note(records)}"
    if args.out:
        written = write_report(records, args.out, note=note, allow_unequal=args.allow_unequal)
        print(written["comparison.md"].read_text(encoding="utf-8"), end="")
        print("wrote " + ", ".join(str(p) for p in written.values()), file=sys.stderr)
    else:
        print(report_markdown(records, note=note, allow_unequal=args.allow_unequal), end="")
    return 0
