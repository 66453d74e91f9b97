"""``elmo-tasks data SUBCOMMAND``: build the pretraining corpus (``corpus``) and the task sets (``prepare``).

Each subcommand is its own module in this folder with ``HELP``, ``configure`` and ``run``.
"""

from __future__ import annotations

import argparse
import importlib

HELP = "build data: the pretraining corpus (data corpus) or a task set (data prepare NAME)"

SUBCOMMANDS: dict[str, str] = {
    "corpus": "data_corpus",
    "prepare": "data_prepare",
}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    sub.required = True
    for name, module_name in SUBCOMMANDS.items():
        module = importlib.import_module(f"elmo_tasks.commands.{module_name}")
        command = sub.add_parser(name, help=module.HELP, description=module.HELP)
        module.configure(command)
        command.set_defaults(_run=module.run)


def run(args: argparse.Namespace) -> int:  # replaced by the chosen subcommand's run
    raise AssertionError("unreachable: argparse sets _run to the subcommand")
