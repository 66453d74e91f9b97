"""``elmo-tasks cache CONFIG``: compute the biLM layers of every split of a config's data set ahead
of time, so that every run and head on it reads them from disk.

Launched by ``torchrun`` (``torchrun --standalone --nproc_per_node N -m elmo_tasks.cli cache CONFIG``)
each process embeds one block of every split's sentences into the same cache folder, which ends
up as a single-process run would have written it, up to float rounding (``LayerCache.build``).
"""

from __future__ import annotations

import argparse

from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime, help_epilog
from elmo_tasks.errors import UserError

HELP = "build the cached ELMo layers of a config's data set (train, dev, test) ahead of runs"
EPILOG = help_epilog("CONFIG is a run config (elmo-tasks run --help lists its sections); the cache goes to "
                     "features.elmo.cache_dir.")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", nargs="+", help="experiment YAML(s) with features.elmo")
    add_runtime_arguments(parser, device_help="auto (default: the GPU when there is one), cpu, cuda or cuda:N: where "
                          "the biLM runs; under torchrun each process takes its own GPU (or the CPU)")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    from elmo_tasks import distributed
    from elmo_tasks.experiment import load_config
    from elmo_tasks.training.splits import cache_dataset

    rank = distributed.current_rank()
    runtime = apply_runtime(args, sharded=True)
    configs = [load_config(path) for path in args.config]  # every config is checked before any work
    for path, config in zip(args.config, configs):
        if config.features.elmo is None:
            raise UserError(f"{path}: features.elmo is not set: this config uses no ELMo layers to cache")
    try:
        for config in configs:
            for done in cache_dataset(config, progress=runtime.progress and rank.is_main, device=runtime.device):
                if rank.is_main:
                    print(f"{config.name} {done.split}: {'built' if done.built else 'cached'}, {done.sentences:,} "
                          f"sentences, {done.tokens:,} tokens, {done.nbytes / 2**20:.1f} MiB -> {done.path}")
    finally:
        distributed.finish()
    if rank.world > 1:
        runtime.result(f"rank {rank.rank} of {rank.world}: done")
    return 0
