"""``elmo-tasks cache CONFIG``: compute the biLM layers of every split of a config's data set ahead
of time, so that every run and head on it reads them from disk."""

from __future__ import annotations

import argparse

HELP = "build the cached ELMo layers of a config's data set (train, dev, test) ahead of runs"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", nargs="+", help="experiment YAML(s) with features.elmo")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def run(args: argparse.Namespace) -> int:
    from elmo_tasks.config import SPLITS, load_config
    from elmo_tasks.errors import UserError
    from elmo_tasks.features.cache import LayerCache
    from elmo_tasks.features.elmo import resolve_model_dir
    from elmo_tasks.training.data import load_splits

    for path in args.config:
        config = load_config(path)
        elmo = config.features.elmo
        if elmo is None:
            raise UserError(f"{path}: features.elmo is not set: this config uses no ELMo layers to cache")
        cache = LayerCache(resolve_model_dir(elmo.model), elmo.cache_dir, elmo.cache_dtype, elmo.batch_size)
        data = load_splits(config.dataset)
        for split in SPLITS:
            tokens = [list(t) for t in data[split]["tokens"]]
            found = cache.lookup(tokens)
            status = "cached"
            if found is None:
                cache.build(tokens, progress=not args.quiet, desc=f"{config.name} {split}")
                found = cache.lookup(tokens)
                status = "built"
            size = found.layers.numel() * found.layers.element_size()
            print(f"{config.name} {split}: {status}, {len(found):,} sentences, {found.layers.shape[0]:,} tokens, "
                  f"{size / 2**20:.1f} MiB -> {found.path}")
    return 0
