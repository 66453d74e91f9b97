"""``elmo-tasks embed-file INPUT OUTPUT``: one sentence per line in, HDF5 with one dataset per line out.

Launched by ``torchrun`` (``torchrun --standalone --nproc_per_node N -m elmo_tasks.cli embed-file ...``)
each process embeds one block of lines and rank 0 merges them into OUTPUT (``elmo_tasks.distributed``).
"""

from __future__ import annotations

import argparse

from elmo_tasks.commands._model_args import add_model_arguments, load_embedder, tokenizer_for
from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime
from elmo_tasks.errors import UserError

HELP = "embed a file of sentences (one per line, whitespace-tokenised) into an HDF5 file"

EPILOG = """The output is AllenNLP's dump format (elmo_tasks/dump.py): one float32 dataset per line, named by its
0-based line number ('0', '1', ...) or, with --use-sentence-keys, by the sentence itself; and
sentence_to_index, a JSON map from each sentence to its key (json.loads(f["sentence_to_index"][0])).
Each dataset also carries its tokens, as the tokenizer split them, in the attribute 'tokens', a JSON list
(json.loads(f["0"].attrs["tokens"])), so vectors line up with words; readers that know only the dump
format ignore attributes. The file's attributes say how it was made (layers, pool, tokenize).
--use-sentence-keys reads the whole input first and refuses, before embedding anything, a sentence that
cannot be an HDF5 name (empty, '.', containing '/', or 'sentence_to_index') or that occurs twice,
naming its line."""


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("input", metavar="INPUT", help="text file, one whitespace-tokenised sentence per line "
                        "('-' reads standard input)")
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
    parser.add_argument("--pool", choices=["none", "mean"], default="none", help="mean: one vector per sentence, "
                        "the mean over its tokens (TF-Hub's 'default'): (3, 2P) with --layers all, else (2P,)")
    parser.add_argument("--use-sentence-keys", action="store_true", help="name each dataset by its sentence instead "
                        "of its line number, as AllenNLP's --use-sentence-keys (repeated sentences are an error)")
    parser.add_argument("--tokenize", choices=["whitespace", "ptb"], default="whitespace", help="ptb: split raw "
                        "text into Penn-Treebank tokens (punctuation, clitics) instead of on whitespace")
    add_runtime_arguments(parser, device_help="auto (default: the GPU when there is one), cpu, cuda or cuda:N; "
                          "under torchrun each process takes its own GPU (or the CPU)")


def run(args: argparse.Namespace) -> int:
    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    from elmo_tasks import distributed
    from elmo_tasks.paths import check_input_file, check_output_file

    if args.input != "-":  # before the model loads: a bad path fails at once
        check_input_file(args.input, "input file")
    model_files = [f"{args.model}/options.json", f"{args.model}/weights.hdf5"] if args.model else []
    check_output_file(args.output, "output file",
                      inputs=[p for p in (args.input, args.options, args.weights, *model_files) if p and p != "-"])
    rank = distributed.current_rank()
    runtime = apply_runtime(args, sharded=True)
    if args.use_sentence_keys and args.input != "-":  # every key, before the model loads (stdin: before embedding)
        from elmo_tasks.embedder import check_sentence_key_file

        check_sentence_key_file(args.input)
    embedder = load_embedder(args, stateful=args.stateful, batch_size=args.batch_size)
    embedder.engine.set(precision=args.precision)
    if rank.world == 1:
        embedder.to(runtime.device)
        count = embedder.embed_file(args.input, args.output, layers=args.layers, progress=runtime.progress,
                                    pool=args.pool, use_sentence_keys=args.use_sentence_keys,
                                    tokenizer=tokenizer_for(args.tokenize))
        runtime.result(f"wrote {count} sentences to {args.output}")
        return 0
    if args.pool != "none" or args.use_sentence_keys or args.tokenize != "whitespace" or args.input == "-":
        raise UserError("--pool, --use-sentence-keys, --tokenize and '-' are for single-process runs: run without torchrun")
    embedder.to(distributed.device_for(rank))
    try:
        count = distributed.embed_file_sharded(embedder, args.input, args.output, layers=args.layers,
                                               progress=runtime.progress, rank=rank)
    finally:
        distributed.finish()
    runtime.result(f"rank {rank.rank} of {rank.world}: embedded {count} sentences"
                + (f"; merged all shards into {args.output}" if rank.is_main else ""))
    return 0
