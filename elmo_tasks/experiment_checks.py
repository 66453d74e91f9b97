"""The checks of an experiment config that types cannot express: keys that depend on each other,
files that must exist, value ranges. Each feature checks its own options (``Options.check``) and
each head the settings it cannot use (``Head.check_config``); errors name the file and the key.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from elmo_tasks.data.recipes import RECIPES
from elmo_tasks.features import FEATURES
from elmo_tasks.heads import check_head
from elmo_tasks.schema import ConfigError, Source
from elmo_tasks.task import SPLITS

if TYPE_CHECKING:
    from elmo_tasks.experiment import Config


def check_config(config: Config, source: Source) -> None:
    """Raise a ConfigError naming the file and the key for the first problem found."""
    _check_dataset(config, source)
    features = config.features.selected()
    if not features:
        raise source.error("features", f"give at least one of {', '.join(FEATURES)}")
    for name, options in features.items():
        check = getattr(options, "check", None)
        if check is not None:
            try:
                check()
            except ConfigError as exc:
                raise source.error(f"features.{name}.{exc.key}", str(exc)) from None
    t = config.trainer
    for key in ("epochs", "batch_size"):
        if getattr(t, key) < 1:
            raise source.error(f"trainer.{key}", "must be at least 1")
    if t.patience < 0:
        raise source.error("trainer.patience", "must not be negative")
    check_head(config, source)


def _check_dataset(config: Config, source: Source) -> None:
    d = config.dataset
    if d.source == "files":
        if not d.format:
            raise source.error("dataset.format", "missing (conll, word_tag, table or jsonl) for source: files")
        for split in SPLITS:
            if split not in d.files:
                raise source.error(f"dataset.files.{split}", "missing (give train, dev and test files)")
        for split, file in d.files.items():
            if split not in SPLITS:
                raise source.error(f"dataset.files.{split}", "unknown split (use train, dev, test)")
            if not Path(file).is_file():
                raise source.error(f"dataset.files.{split}", f"file not found: {file}")
    else:
        if not d.name:
            raise source.error("dataset.name", f"missing (the {d.source} set's name)")
        if d.files or d.format:
            key = "dataset.files" if d.files else "dataset.format"
            raise source.error(key, f"only used with source: files (source is {d.source})")
        if d.source == "prepared" and d.name not in RECIPES:
            raise source.error("dataset.name", f"unknown prepared set {d.name!r} (known: {', '.join(RECIPES)})")
    if d.sense_frequencies is not None and not Path(d.sense_frequencies).is_file():
        raise source.error("dataset.sense_frequencies", f"file not found: {d.sense_frequencies}")
    if d.max_examples is not None and d.max_examples < 1:
        raise source.error("dataset.max_examples", "must be at least 1")
