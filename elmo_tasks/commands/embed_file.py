"""``elmo-tasks embed-file INPUT OUTPUT``: one sentence per line in, HDF5 with one dataset per line out.

Launched by ``torchrun`` (``torchrun --standalone --nproc_per_node N -m elmo_tasks.cli embed-file ...``)
each process embeds one block of lines and rank 0 merges them into OUTPUT (``elmo_tasks.distributed``).
"""

from __future__ import annotations

import argparse
import sys

from elmo_tasks.commands._model_args import add_model_arguments, load_embedder
from elmo_tasks.errors import UserError

HELP = "embed a file of sentences (one per line, whitespace-tokenised) into an HDF5 file"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="text file, one whitespace-tokenised sentence per line")
    parser.add_argument("output", metavar="OUTPUT", help="HDF5 file to write (datasets '0', '1', ... and sentence_to_index)")
    add_model_arguments(parser)
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="sentences per batch (default 64)")
    parser.add_argument("--layers", choices=["all", "top", "average"], default="all",
                        help="all: (3, n, 2P) per sentence; top: the last layer (n, 2P); average: the mean of the layers")
    parser.add_argument("--stateful", action="store_true", help="carry LSTM states across batches by row, as the "
                        "reference implementations do (batches then run in file order)")
    parser.add_argument("--precision", choices=["float32", "bfloat16"], default="float32",
                        help="bfloat16 runs the biLM's matrix products in bfloat16: faster on CPUs with bfloat16 "
                        "units, not exact (see benchmarks/README.md for the measured error)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    from elmo_tasks import distributed

    rank = distributed.current_rank()
    embedder = load_embedder(args, stateful=args.stateful, batch_size=args.batch_size)
    embedder.engine.set(precision=args.precision)
    if rank.world == 1:
        count = embedder.embed_file(args.input, args.output, layers=args.layers, progress=not args.quiet)
        print(f"wrote {count} sentences to {args.output}", file=sys.stderr)
        return 0
    embedder.to(distributed.device_for(rank))
    try:
        count = distributed.embed_file_sharded(embedder, args.input, args.output, layers=args.layers,
                                               progress=not args.quiet, rank=rank)
    finally:
        distributed.finish()
    print(f"rank {rank.rank} of {rank.world}: embedded {count} sentences"
          + (f"; merged all shards into {args.output}" if rank.is_main else ""), file=sys.stderr)
    return 0
