"""``elmo-tasks cache CONFIG``: compute the biLM layers of every split of a config's data set ahead
of time, so that every run and head on it reads them from disk.

Launched by ``torchrun`` (``torchrun --standalone --nproc_per_node N -m elmo_tasks.cli cache CONFIG``)
each process embeds one block of every split's sentences into the same cache folder, which ends
up as a single-process run would have written it, up to float rounding (``LayerCache.build``).
"""

from __future__ import annotations

import argparse
import sys

HELP = "build the cached ELMo layers of a config's data set (train, dev, test) ahead of runs"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", nargs="+", help="experiment YAML(s) with features.elmo")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from elmo_tasks import distributed
    from elmo_tasks.config import SPLITS, load_config
    from elmo_tasks.errors import UserError
    from elmo_tasks.features.cache import LayerCache
    from elmo_tasks.features.elmo import resolve_model_dir
    from elmo_tasks.training.data import load_splits

    rank = distributed.current_rank()
    configs = [load_config(path) for path in args.config]  # every config is checked before any work
    for path, config in zip(args.config, configs):
        if config.features.elmo is None:
            raise UserError(f"{path}: features.elmo is not set: this config uses no ELMo layers to cache")
    try:
        for config in configs:
            elmo = config.features.elmo
            cache = LayerCache(resolve_model_dir(elmo.model), elmo.cache_dir, elmo.cache_dtype, elmo.batch_size)
            data = load_splits(config.dataset)
            for split in SPLITS:
                tokens = [list(t) for t in data[split]["tokens"]]
                built = cache.ensure(tokens, progress=not args.quiet and rank.is_main, desc=f"{config.name} {split}")
                if not rank.is_main:
                    continue
                layers = cache.peek(tokens)  # memory-mapped: the command only reports the size
                if layers is None:
                    raise UserError(f"the feature cache at {cache.path_for(tokens)} could not be read back")
                print(f"{config.name} {split}: {'built' if built else 'cached'}, {len(tokens):,} sentences, "
                      f"{layers.shape[0]:,} tokens, {layers.nbytes / 2**20:.1f} MiB -> {cache.path_for(tokens)}")
    finally:
        distributed.finish()
    if rank.world > 1:
        print(f"rank {rank.rank} of {rank.world}: done", file=sys.stderr)
    return 0
