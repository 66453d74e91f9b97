"""docs/commands.md, generated from the argument parsers so that it cannot drift from ``--help``.

Regenerate after changing a command's arguments (tests/test_commands_doc.py checks it is current)::

    python -c "from elmo_tasks.cli import build_parser; from elmo_tasks.commands.reference import markdown; \\
    print(markdown(build_parser()), end='')" > docs/commands.md
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Iterator

SHARED = ("--device", "--threads", "--quiet", "--verbose", "--model")

INTRO = """\
# Commands

Every `elmo-tasks` command, with its `--help` as the program prints it (this page is generated from
the argument parsers by `elmo_tasks/commands/reference.py`; a test checks it is current).

## The convention

The same options mean the same thing in every command that has them:

- `--device auto|cpu|cuda|cuda:N` on every command that runs a model. `auto` (the default) takes the
  GPU when there is one, else the CPU; `run`, `cache`, `bench` and `pretrain` keep their config's
  `trainer.device` / `training.device` unless `--device` is given. A GPU that is not there is a
  one-line error before anything loads.
- `--threads N`: torch's threads. The default everywhere is torch's own (`OMP_NUM_THREADS` if set,
  else one per core): on this project's 2-core AMD EPYC (AVX-512 with AVX512-BF16; load average
  1.0 when the measurement started), two threads ran `embed-file` of 6,000 sentences 1.20x and a polarity GloVe + ELMo epoch
  1.43x faster than one (`python benchmarks/threads.py`, figures in
  `benchmarks/results/speed/threads.txt`). On a machine busy with other jobs, `--threads 1` per
  process is faster (`bench --jobs J` gives each job cores / J).
- `--quiet` / `--verbose` wherever a command reports progress. Neither: progress bars and the main
  log lines on stderr. `--quiet`: errors, the result and the closing line (what was written) only.
  `--verbose`: also the runtime (device, threads, CPU kind, torch) and each step's details.
- `--model`: the shipped `default`, `fixture` (the tiny test model), a public model's name or URL
  (`elmo-tasks models`; downloaded once, [models.md](models.md)), or a model folder, TF-Hub
  module, bilm-tf checkpoint or NLPL zip ([coming-from.md](coming-from.md)).
- `run --set KEY=VALUE` (repeatable) changes a dotted config key without editing the file; the
  value is YAML (`--set trainer.epochs=5`, `--set head.hidden=64`, `null` removes a key) and is
  checked like the file: an error names the key and says it came from `--set`.
- A user mistake is one line `elmo-tasks: error: ...` naming the file, line or key, exit code 2;
  nothing is left at the output's name.

For developers: a new command gets these options from `elmo_tasks/commands/_runtime.py`:
`add_runtime_arguments(parser)` in `configure` (keywords `device=`, `threads=`, `progress=` leave
one out where it means nothing) and `runtime = apply_runtime(args)` first thing in `run` (it checks
`--device` and `--threads`, sets torch's threads, and returns a `Runtime` with `device`, `threads`,
`progress`, and `say` / `result` / `detail` for log lines, the closing line and `--verbose` details).
`--model` comes from `elmo_tasks/commands/_model_args.py`.
"""


def commands(parser: argparse.ArgumentParser, name: str = "elmo-tasks") -> Iterator[tuple[str, argparse.ArgumentParser]]:
    """Every leaf command under ``parser`` (``data corpus``, ``data prepare``, ...), in the order of ``--help``."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub_name, sub in action.choices.items():
                yield from commands(sub, f"{name} {sub_name}")
            return
    yield name, parser


def markdown(parser: argparse.ArgumentParser) -> str:
    """The page: the convention, a table of which command has which shared option, each command's --help."""
    previous = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = "100"  # argparse wraps at the terminal's width: a fixed one keeps the page stable
    try:
        leaves = list(commands(parser))
        rows = ["| command | " + " | ".join(f"`{flag}`" for flag in SHARED) + " |",
                "| --- |" + " :-: |" * len(SHARED)]
        for name, sub in leaves:
            flags = {option for action in sub._actions for option in action.option_strings}
            rows.append(f"| `{name}` | " + " | ".join("yes" if flag in flags else "" for flag in SHARED) + " |")
        parts = [INTRO, "## Which command has which\n", "\n".join(rows), ""]
        for name, sub in leaves:
            parts += [f"## `{name}`\n", "```text", sub.format_help().rstrip(), "```", ""]
        return "\n".join(parts)
    finally:
        if previous is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = previous
