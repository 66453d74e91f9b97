"""One module per ``elmo-tasks`` subcommand; each defines ``HELP``, ``configure(parser)`` and ``run(args)``
(and may define ``EPILOG``, text shown as written at the end of its ``--help``). The shared arguments
are in ``_runtime`` (``--device``, ``--threads``, ``--quiet``/``--verbose``) and ``_model_args`` (``--model``)."""

from __future__ import annotations

import argparse
import importlib


def add_subcommands(parser: argparse.ArgumentParser, modules: dict[str, str], dest: str, metavar: str) -> None:
    """One subparser per ``name -> module`` under ``elmo_tasks.commands``; each sets ``_run`` to its module's run."""
    sub = parser.add_subparsers(dest=dest, metavar=metavar)
    sub.required = True
    for name, module_name in modules.items():
        module = importlib.import_module(f"elmo_tasks.commands.{module_name}")
        epilog = getattr(module, "EPILOG", None)
        command = sub.add_parser(name, help=module.HELP, description=module.HELP, epilog=epilog,
                                 formatter_class=argparse.RawDescriptionHelpFormatter if epilog else argparse.HelpFormatter)
        module.configure(command)
        command.set_defaults(_run=module.run)
