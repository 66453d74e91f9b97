"""``elmo-tasks embed SENTENCE... [--word W]``: show the layers of a few sentences, and how a word's
vectors differ between contexts."""

from __future__ import annotations

import argparse

from elmo_tasks.commands._model_args import add_model_arguments, load_embedder, read_sentences, tokenizer_for
from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime
from elmo_tasks.errors import UserError

HELP = "embed whitespace-tokenised sentences and show their ELMo layers (and one word's vectors with --word)"
SHOWN_VALUES = 4


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("sentences", nargs="+", metavar="SENTENCE", help="a sentence, tokenised on whitespace "
                        "('-' reads one sentence per line from standard input)")
    parser.add_argument("--tokenize", choices=["whitespace", "ptb"], default="whitespace", help="ptb: split raw "
                        "text into Penn-Treebank tokens (punctuation, clitics) instead of on whitespace")
    parser.add_argument("--word", metavar="W", help="print each occurrence's vector per layer and the cosine "
                        "similarity between occurrences, layer by layer")
    add_model_arguments(parser)
    add_runtime_arguments(parser, progress=False)


def _short(vector) -> str:
    head = ", ".join(f"{v:+.4f}" for v in vector[:SHOWN_VALUES])
    tail = ", ".join(f"{v:+.4f}" for v in vector[-SHOWN_VALUES:])
    return f"[{head}, ..., {tail}]"


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    import numpy as np

    runtime = apply_runtime(args)
    split = tokenizer_for(args.tokenize) or str.split
    sentences = [split(s) for s in read_sentences(args.sentences)]
    embedder = load_embedder(args)
    embedder.to(runtime.device)
    arrays = embedder.embed_batch(sentences)
    for number, (tokens, array) in enumerate(zip(sentences, arrays), start=1):
        print(f"sentence {number}: {len(tokens)} tokens: {' | '.join(tokens) if tokens else '(empty)'}")
        print(f"  layers: {tuple(array.shape)}  (layer, token, 2P)")
    if not args.word:
        return 0

    found = [(s, t) for s, tokens in enumerate(sentences) for t, tok in enumerate(tokens) if tok == args.word]
    if not found:
        raise UserError(f"--word {args.word!r} does not occur in any sentence (tokens are split on whitespace)")
    print(f"\nvectors of {args.word!r} (width {embedder.output_dim}):")
    for k, (s, t) in enumerate(found, start=1):
        print(f"  occurrence {k}: sentence {s + 1}, token {t + 1}")
        for layer in range(embedder.num_layers):
            print(f"    layer {layer}: {_short(arrays[s][layer, t])}")
    if len(found) < 2:
        print(f"\n{args.word!r} occurs once: no pairs to compare")
        return 0
    print(f"\ncosine similarity between occurrences of {args.word!r}:")
    print("  pair     " + "".join(f"  layer {layer}" for layer in range(embedder.num_layers)))
    for a in range(len(found)):
        for b in range(a + 1, len(found)):
            (sa, ta), (sb, tb) = found[a], found[b]
            cells = []
            for layer in range(embedder.num_layers):
                u, v = arrays[sa][layer, ta], arrays[sb][layer, tb]
                cos = float(np.dot(u, v) / max(np.linalg.norm(u) * np.linalg.norm(v), 1e-12))
                cells.append(f"{cos:9.4f}")
            print(f"  {a + 1} vs {b + 1}   " + "".join(cells))
    return 0
