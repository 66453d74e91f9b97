"""``elmo-tasks perplexity TEXT... [--model DIR]``: held-out perplexity of a biLM (full softmax, both directions)."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime

HELP = "perplexity of a biLM on a text (forward, backward, average; needs the model's softmax.hdf5 and vocab.txt)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("text", nargs="+", metavar="TEXT", help="UTF-8 text file(s), one whitespace-tokenised "
                        "sentence per line")
    parser.add_argument("--model", metavar="DIR", help="model folder with options.json, weights.hdf5, "
                        "softmax.hdf5 and vocab.txt, or 'default' (the default)")
    parser.add_argument("--rows", type=int, default=64, help="parallel streams (default 64; states carry within a row)")
    parser.add_argument("--unroll", type=int, default=20, help="window length (default 20, as in training)")
    parser.add_argument("--max-tokens", type=int, default=None, help="score only the first N stream positions")
    add_runtime_arguments(parser)


def run(args: argparse.Namespace) -> int:
    from elmo_tasks.errors import UserError
    from elmo_tasks.model_folder import resolve_model
    from elmo_tasks.pretrain.perplexity import text_perplexity

    for name in ("rows", "unroll", "max_tokens"):
        value = getattr(args, name)
        if value is not None and value < 1:
            raise UserError(f"--{name.replace('_', '-')} must be positive, got {value}")
    runtime = apply_runtime(args)
    for text in args.text:
        if Path(text).is_dir():
            raise UserError(f"{text} is a folder: give text files")
    model = resolve_model(args.model).path
    result = text_perplexity(model, args.text, device=runtime.device, rows=args.rows, unroll=args.unroll,
                             max_tokens=args.max_tokens, progress=runtime.progress)
    print(json.dumps({"model": str(model), "text": args.text, "forward": round(result.forward, 3),
                      "backward": round(result.backward, 3), "average": round(result.average, 3),
                      "tokens": result.tokens}))
    return 0
