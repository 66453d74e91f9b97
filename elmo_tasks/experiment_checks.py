"""The checks of an experiment config that types cannot express: keys that depend on each other,
files that must exist, value ranges. Each feature checks its own options (``Options.check``) and
each head the settings it cannot use (``Head.check_config``); errors name the file and the key.
"""

from __future__ import annotations

import dataclasses
from typing import TYPE_CHECKING

from elmo_tasks.data.readers import FILE_FORMATS, RAW_TEXT_FORMATS
from elmo_tasks.data.recipes import RECIPES
from elmo_tasks.features import FEATURES
from elmo_tasks.heads import check_head
from elmo_tasks.paths import input_file_problem
from elmo_tasks.schema import ConfigError, Source, build, keys_of
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
            raise source.error(f"trainer.{key}", f"must be at least 1, got {getattr(t, key)}")
    for key in ("patience", "lr", "weight_decay"):
        if not 0 <= getattr(t, key) < float("inf"):  # also NaN
            raise source.error(f"trainer.{key}", f"must be a finite number, not negative, got {getattr(t, key)}")
    if t.grad_norm is not None and not t.grad_norm > 0:
        raise source.error("trainer.grad_norm", f"must be positive (or null: no clipping), got {t.grad_norm}")
    if t.threads is not None and t.threads < 1:
        raise source.error("trainer.threads", f"must be at least 1 (or null), got {t.threads}")
    if not 0 <= t.seed < 2**32:
        raise source.error("trainer.seed", f"must be in 0 .. {2**32 - 1}, got {t.seed}")
    device_problem = _device_problem(t.device)
    if device_problem:
        raise source.error("trainer.device", device_problem)
    check_head(config, source)


def _device_problem(name: str) -> str | None:
    """Why torch cannot train on device ``name`` here, or None."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"unknown device {name!r} (use cpu, cuda or cuda:N)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"{name!r} asked for, but torch sees no CUDA GPU here (use cpu)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"{name!r} asked for, but there are {torch.cuda.device_count()} GPU(s)"
    elif device.type != "cpu":
        if device.type == "mps" and torch.backends.mps.is_available():
            return None
        return f"device {name!r} is not supported here (use cpu or cuda)"
    return None


def _check_dataset(config: Config, source: Source) -> None:
    d = config.dataset
    if d.source == "files":
        if not d.format:
            raise source.error("dataset.format", f"missing ({', '.join(FILE_FORMATS)}) for source: files")
        _check_reader_options(d.format, d.options, source)
        if d.tokenize == "ptb" and d.format not in RAW_TEXT_FORMATS:
            raise source.error("dataset.tokenize", f"{d.format} files are tokenised already (one token per "
                               f"{'line' if d.format == 'conll' else 'item'}); ptb splits raw text ("
                               f"{', '.join(RAW_TEXT_FORMATS)} text): leave it out")
        for split in SPLITS:
            if split not in d.files:
                raise source.error(f"dataset.files.{split}", "missing (give train, dev and test files)")
        for split, file in d.files.items():
            if split not in SPLITS:
                raise source.error(f"dataset.files.{split}", "unknown split (use train, dev, test)")
            if input_file_problem(file):
                raise source.error(f"dataset.files.{split}", input_file_problem(file))
    else:
        if not d.name:
            raise source.error("dataset.name", f"missing (the {d.source} set's name)")
        if d.files or d.format:
            key = "dataset.files" if d.files else "dataset.format"
            raise source.error(key, f"only used with source: files (source is {d.source})")
        if d.source == "prepared" and d.name not in RECIPES:
            raise source.error("dataset.name", f"unknown prepared set {d.name!r} (known: {', '.join(RECIPES)})")
        if d.source == "prepared" and (d.options or d.tokenize):
            key = "dataset.options" if d.options else "dataset.tokenize"
            raise source.error(key, "a prepared set is read as prepared (tokenised by its recipe): leave it out")
    if d.sense_frequencies is not None and input_file_problem(d.sense_frequencies):
        raise source.error("dataset.sense_frequencies", input_file_problem(d.sense_frequencies))
    if d.max_examples is not None and d.max_examples < 1:
        raise source.error("dataset.max_examples", "must be at least 1")


def _check_reader_options(format: str, options: dict, source: Source) -> None:
    """``dataset.options`` against the reader's Options dataclass: unknown keys, types, required keys."""
    options_class = FILE_FORMATS[format][1]
    required = [f.name for f in dataclasses.fields(options_class)
                if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
    for key in required:
        if key not in options:
            raise source.error(f"dataset.options.{key}", f"missing: format {format} needs "
                               f"{' and '.join(required)} (a 0-based column index or a header name)")
    try:
        checked = build(options_class, options, source, "dataset.options.")
    except ConfigError as exc:
        if "unknown key" in str(exc):
            raise source.error(exc.key or "dataset.options", f"unknown option of format {format} (known: "
                               f"{', '.join(keys_of(options_class))})") from None
        raise
    delimiter = getattr(checked, "delimiter", None)
    if format in ("csv", "tsv", "table") and delimiter is not None and len(delimiter) != 1:
        raise source.error("dataset.options.delimiter", f"must be one character, got {delimiter!r}")
    if format == "word_tag" and not checked.separator:
        raise source.error("dataset.options.separator", "must not be empty")
