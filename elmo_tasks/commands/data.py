"""``elmo-tasks data SUBCOMMAND``: build the pretraining corpus (``corpus``) and the task sets (``prepare``).

Each subcommand is its own module in this folder with ``HELP``, ``configure`` and ``run``.
"""

from __future__ import annotations

import argparse

from elmo_tasks.commands import add_subcommands

HELP = "build data: the pretraining corpus (data corpus) or a task set (data prepare NAME)"

SUBCOMMANDS: dict[str, str] = {
    "corpus": "data_corpus",
    "prepare": "data_prepare",
}


def configure(parser: argparse.ArgumentParser) -> None:
    add_subcommands(parser, SUBCOMMANDS, dest="data_command", metavar="SUBCOMMAND")


def run(args: argparse.Namespace) -> int:  # replaced by the chosen subcommand's run
    raise AssertionError("unreachable: argparse sets _run to the subcommand")
