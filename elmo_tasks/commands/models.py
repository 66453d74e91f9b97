"""``elmo-tasks models``: the public models ``--model NAME`` takes; ``models download NAME``: fetch one ahead of time."""

from __future__ import annotations

import argparse
import sys

HELP = "list the public ELMo models --model takes by name (cached or not), or download one ahead of time"
EPILOG = """\
elmo-tasks models                      the registry: name, parameters, source, licence, cached, size on disk
elmo-tasks models download original    download (or check with the server) and print the model folder
Files go to $ELMO_TASKS_CACHE (~/.cache/elmo-tasks); ELMO_TASKS_OFFLINE=1 forbids the network,
ELMO_TASKS_MODEL_MIRROR=http://host:port replaces the host of every URL (docs/models.md)."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("action", nargs="?", choices=("list", "download"), default="list",
                        help="list (the default) or download")
    parser.add_argument("names", nargs="*", metavar="NAME", help="with download: model names (or URLs) to fetch")


def _size(n: int) -> str:
    return "-" if n == 0 else f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB"


def run(args: argparse.Namespace) -> int:
    from elmo_tasks.errors import UserError
    from elmo_tasks.model_sources import cached_model, resolve_remote, size_on_disk
    from elmo_tasks.models.registry import MODELS

    if args.action == "download":
        if not args.names:
            raise UserError("models download takes one or more NAMEs (elmo-tasks models lists them)")
        for name in args.names:
            folder = resolve_remote(name, revalidate=True)
            print(folder)
        return 0
    if args.names:
        raise UserError(f"models lists all models; to fetch {' '.join(args.names)} use: elmo-tasks models download NAME")
    rows = [("name", "parameters", "source", "licence", "cached", "size on disk")]
    for model in MODELS.values():
        name = model.name + (f" ({', '.join(model.aliases)})" if model.aliases else "")
        parameters = f"{model.parameters / 1e6:.1f}M" if model.parameters else "?"
        cached = cached_model(model.name) is not None
        rows.append((name, parameters, model.source, model.licence, "yes" if cached else "no",
                     _size(size_on_disk(model.name))))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    for row in rows:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip())
    print("any NLPL repository entry: nlpl-ID; a URL: an ..._options.json, a folder/, a .tar.gz, a .zip",
          file=sys.stderr)
    return 0
