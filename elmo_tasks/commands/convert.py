"""``elmo-tasks convert SRC OUT_DIR``: a TF-Hub module, bilm-tf checkpoint or NLPL zip -> ``options.json`` + ``weights.hdf5``."""

from __future__ import annotations

import argparse
import sys

HELP = "convert a TF-Hub ELMo module (folder or .tar.gz), a bilm-tf checkpoint or an NLPL zip to options.json + weights.hdf5"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("source", metavar="SRC", help="TF-Hub module folder or .tar.gz; bilm-tf save dir (with its "
                        "'checkpoint' file) or checkpoint prefix (model.ckpt-N); NLPL .zip")
    parser.add_argument("out_dir", metavar="OUT_DIR", help="folder to write options.json + weights.hdf5 into "
                        "(+ softmax.hdf5/vocab.txt for bilm-tf, aggregation.json for TF-Hub)")
    parser.add_argument("--options", metavar="FILE", help="options.json whose clip values, activation and training "
                        "fields to use (sizes always come from the weights; default: the options.json beside a "
                        "bilm-tf checkpoint, else the released models' values: clips 3, relu)")
    parser.add_argument("--vocab", metavar="FILE", help="vocabulary of a bilm-tf checkpoint's softmax (default: "
                        "vocab.txt beside the checkpoint)")


def run(args: argparse.Namespace) -> int:
    from elmo_tasks.formats.convert import convert

    kind, written = convert(args.source, args.out_dir, options_file=args.options, vocab_file=args.vocab)
    print(f"converted {kind} model {args.source} -> {args.out_dir}: {', '.join(written)}", file=sys.stderr)
    return 0
