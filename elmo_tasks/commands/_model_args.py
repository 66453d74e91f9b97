"""The ``--model DIR | --options F --weights F`` arguments shared by the commands that load a biLM."""

from __future__ import annotations

import argparse
import sys

from elmo_tasks.commands._runtime import parse_device  # noqa: F401  (its home is _runtime; kept for older imports)
from elmo_tasks.errors import UserError
from elmo_tasks.model_folder import FIXTURE_WARNING, resolve_model


def add_model_arguments(parser: argparse.ArgumentParser, files: bool = True) -> None:
    parser.add_argument("--model", metavar="M", help="a public model's name or URL (elmo-tasks models lists them; "
                        "downloaded once into the cache), a model folder with options.json and weights.hdf5, or a "
                        "TF-Hub module (folder or .tar.gz), bilm-tf checkpoint or NLPL zip, converted once into the "
                        "cache (default: the toolkit's default model)")
    if files:
        parser.add_argument("--options", metavar="F", help="options.json of the model (with --weights)")
        parser.add_argument("--weights", metavar="F", help="weights.hdf5 of the model (with --options)")


def load_embedder(args: argparse.Namespace, stateful: bool = False, batch_size: int = 64):
    """The Embedder the arguments name; says so on stderr when it is the tiny fixture model."""
    from elmo_tasks.embedder import Embedder  # torch: imported when a command runs, not at CLI start-up

    options, weights = getattr(args, "options", None), getattr(args, "weights", None)
    if options or weights:
        if args.model:
            raise UserError("give either --model or --options/--weights, not both")
        if not (options and weights):
            raise UserError("--options and --weights go together: give both")
        return Embedder.from_files(options, weights, stateful=stateful, batch_size=batch_size)
    folder = resolve_model(args.model)
    if folder.is_fixture:
        print(FIXTURE_WARNING, file=sys.stderr)
    return Embedder.from_dir(folder, stateful=stateful, batch_size=batch_size)


def tokenizer_for(name: str):
    """``whitespace`` -> None (str.split), ``ptb`` -> the project's Penn-Treebank tokenizer."""
    if name == "ptb":
        from elmo_tasks.data.tokenize import tokenize

        return tokenize
    return None


def read_sentences(texts: list[str]) -> list[str]:
    """The command-line sentences, with ``-`` replaced by the lines of standard input (blank lines dropped)."""
    out: list[str] = []
    for text in texts:
        if text == "-":
            out.extend(line.rstrip("\r\n") for line in sys.stdin if line.strip())
        else:
            out.append(text)
    return out
