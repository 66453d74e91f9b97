"""The pretraining configuration: plain dataclasses loaded from YAML and validated on load.

A config file has four sections, each optional except ``corpus``::

    corpus:   {train: [FILE...], heldout: [FILE...]}     # or {dataset: {...}}
    vocab:    {file: null, max_size: 30000, min_count: 1}
    model:    {lstm_dim: 512, projection_dim: 128, ...}   # the biLM's sizes: BiLMOptions (options.json)
    training: {batch_size: 64, unroll_steps: 20, ...}

Relative paths are read relative to the config file's folder; ``{cache}`` stands for the download
cache (``$ELMO_TASKS_CACHE``, default ``~/.cache/elmo-tasks``) and ``~`` for the home folder.
Any mistake (an unknown key, a wrong type, a missing file) is a ``UserError`` naming the key and
the file.
"""

from __future__ import annotations

import dataclasses
import glob
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.data.sources import cache_dir
from elmo_tasks.errors import UserError
from elmo_tasks.schema import ConfigError, Source, build, keys_of, parse_yaml

STATE_MODES = ("stateful", "per_sentence")
SOFTMAX_KINDS = ("auto", "sampled", "full")
OPTIMIZERS = ("adagrad", "adam")
DEVICES = ("auto", "cpu", "cuda")


@dataclass
class DatasetConfig:
    """A ``datasets`` dataset instead of text files: ``load_dataset(path, name, data_files=...)``."""

    path: str = ""  # a hub name, or a loader such as "text"/"json"/"csv" with data_files
    name: str | None = None
    data_files: dict[str, Any] | None = None
    split: str = "train"
    heldout_split: str | None = None
    column: str = "text"  # the column holding whitespace-tokenised sentences


@dataclass
class CorpusConfig:
    train: list[str] = field(default_factory=list)  # text files or glob patterns, one sentence a line
    heldout: list[str] = field(default_factory=list)
    dataset: DatasetConfig | None = None
    manifest: str | None = None  # optional corpus manifest.json, copied into the run's summary


@dataclass
class VocabConfig:
    file: str | None = None  # one token per line, <S> </S> <UNK> first; None: build from the corpus
    max_size: int = 30000  # including the three special tokens
    min_count: int = 1


def _small_model() -> BiLMOptions:
    """The ``model:`` section's defaults: the toolkit's default model, smaller than the released ones."""
    return BiLMOptions(lstm_dim=512, projection_dim=128, n_layers=2, cell_clip=3.0, proj_clip=3.0,
                       use_skip_connections=True, char_embedding_dim=16,
                       filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]], n_highway=1, activation="relu")


@dataclass
class TrainingConfig:
    batch_size: int = 64  # rows, each a continuous token stream
    unroll_steps: int = 20
    state_mode: str = "stateful"  # stateful: carry states across batches (the recipe); per_sentence
    max_steps: int | None = None  # stop after this many updates ...
    epochs: float | None = 1.0  # ... or after this many passes over the training tokens (if max_steps is None)
    max_minutes: float | None = None  # a wall-time cap (a safety net: the step count then depends on speed)
    optimizer: str = "adagrad"
    learning_rate: float = 0.2
    initial_accumulator: float = 1.0  # Adagrad only
    clip_norm: float | None = 10.0  # global gradient norm; None: no clipping
    dropout: float = 0.1
    softmax: str = "auto"  # auto: sampled when the vocabulary is larger than n_negative_samples
    n_negative_samples: int = 8192
    seed: int = 0
    eval_every_steps: int = 500
    eval_max_tokens: int = 100000  # held-out tokens per evaluation (the final evaluation uses all)
    eval_batch_size: int = 64
    checkpoint_every_steps: int = 200
    checkpoint_every_minutes: float = 5.0  # whichever comes first
    log_every_steps: int = 50
    device: str = "auto"
    amp: bool = True  # bfloat16 products where the GPU or CPU (AVX512-BF16, AMX) has bfloat16 units
    threads: int | None = None  # torch CPU threads; None: torch's default
    export_dtype: str = "float32"


@dataclass
class PretrainConfig:
    corpus: CorpusConfig
    vocab: VocabConfig = field(default_factory=VocabConfig)
    # the biLM's sizes, as in options.json; keys left out keep _small_model's values
    model: BiLMOptions = field(default_factory=_small_model)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    source: str = field(default="<dict>", metadata={"key": False})  # the file it came from

    def to_dict(self) -> dict:
        data = dataclasses.asdict(self)
        data.pop("source")
        data["model"] = {key: data["model"][key] for key in keys_of(BiLMOptions)}  # the config's keys only
        return data


# -- loading ---------------------------------------------------------------------------------------


def resolve_path(text: str, base: Path) -> Path:
    """``{cache}``, ``~`` and ``$VARS`` expanded; relative paths taken from ``base``."""
    if "{cache}" in text:
        text = text.replace("{cache}", str(cache_dir()))
    path = Path(os.path.expanduser(os.path.expandvars(text)))
    return path if path.is_absolute() else base / path


def _expand_files(patterns: list[str], key: str, base: Path, source: str) -> list[str]:
    files: list[str] = []
    for pattern in patterns:
        path = resolve_path(pattern, base)
        if any(ch in str(path) for ch in "*?["):
            matches = sorted(glob.glob(str(path)))
            if not matches:
                raise UserError(f"{source}: key '{key}': no file matches {pattern!r} ({path})")
            files.extend(matches)
        elif not path.is_file():
            raise UserError(f"{source}: key '{key}': file not found: {path}")
        else:
            files.append(str(path))
    return files


def validate(config: PretrainConfig, base: Path) -> PretrainConfig:
    """Check values and resolve file paths (in place); returns the config."""
    src = config.source
    c, v, m, t = config.corpus, config.vocab, config.model, config.training
    if c.dataset is None and not c.train:
        raise UserError(f"{src}: key 'corpus.train' must list at least one text file (or give corpus.dataset)")
    if c.dataset is not None and c.train:
        raise UserError(f"{src}: give either 'corpus.train' (text files) or 'corpus.dataset', not both")
    if c.dataset is not None and not c.dataset.path:
        raise UserError(f"{src}: key 'corpus.dataset.path' must name a dataset")
    c.train = _expand_files(c.train, "corpus.train", base, src)
    c.heldout = _expand_files(c.heldout, "corpus.heldout", base, src)
    if c.manifest is not None:
        c.manifest = _expand_files([c.manifest], "corpus.manifest", base, src)[0]
    if v.file is not None:
        v.file = _expand_files([v.file], "vocab.file", base, src)[0]
    if v.max_size < 4:
        raise UserError(f"{src}: key 'vocab.max_size' must be at least 4 (three special tokens and a word), got {v.max_size}")
    if v.min_count < 1:
        raise UserError(f"{src}: key 'vocab.min_count' must be at least 1, got {v.min_count}")
    for key in ("lstm_dim", "projection_dim", "n_layers", "char_embedding_dim"):
        if getattr(m, key) < 1:
            raise UserError(f"{src}: key 'model.{key}' must be positive, got {getattr(m, key)}")
    if m.n_highway < 0:
        raise UserError(f"{src}: key 'model.n_highway' must be 0 or more, got {m.n_highway}")
    if not m.filters or not all(len(f) == 2 and 1 <= f[0] <= 50 and f[1] >= 1 for f in m.filters):
        raise UserError(f"{src}: key 'model.filters' must be a list of [width (1..50), count (>= 1)] pairs")
    if m.activation not in ("relu", "tanh"):
        raise UserError(f"{src}: key 'model.activation' must be relu or tanh, got {m.activation!r}")
    for key in ("cell_clip", "proj_clip"):
        if getattr(m, key) is not None and getattr(m, key) < 0:
            raise UserError(f"{src}: key 'model.{key}' must be 0 or more (0 or null: no clipping)")
    positive = ("batch_size", "unroll_steps", "n_negative_samples", "eval_every_steps", "eval_max_tokens",
                "eval_batch_size", "checkpoint_every_steps", "log_every_steps")
    for key in positive:
        if getattr(t, key) < 1:
            raise UserError(f"{src}: key 'training.{key}' must be positive, got {getattr(t, key)}")
    if t.max_steps is None and t.epochs is None:
        raise UserError(f"{src}: give 'training.max_steps' or 'training.epochs'")
    if t.max_steps is not None and t.max_steps < 1:
        raise UserError(f"{src}: key 'training.max_steps' must be positive, got {t.max_steps}")
    if t.max_minutes is not None and t.max_minutes <= 0:
        raise UserError(f"{src}: key 'training.max_minutes' must be positive, got {t.max_minutes}")
    if t.epochs is not None and t.epochs <= 0:
        raise UserError(f"{src}: key 'training.epochs' must be positive, got {t.epochs}")
    choices = {"state_mode": STATE_MODES, "softmax": SOFTMAX_KINDS, "optimizer": OPTIMIZERS, "device": DEVICES,
               "export_dtype": ("float32", "float16")}
    for key, allowed in choices.items():
        if getattr(t, key) not in allowed:
            raise UserError(f"{src}: key 'training.{key}' must be one of {', '.join(allowed)}, got {getattr(t, key)!r}")
    if not 0.0 <= t.dropout < 1.0:
        raise UserError(f"{src}: key 'training.dropout' must be in [0, 1), got {t.dropout}")
    if t.learning_rate <= 0:
        raise UserError(f"{src}: key 'training.learning_rate' must be positive, got {t.learning_rate}")
    if t.clip_norm is not None and t.clip_norm <= 0:
        raise UserError(f"{src}: key 'training.clip_norm' must be positive or null, got {t.clip_norm}")
    if t.threads is not None and t.threads < 1:
        raise UserError(f"{src}: key 'training.threads' must be positive or null, got {t.threads}")
    return config


def config_from_dict(data: Any, source: str = "<dict>", base: str | Path | None = None) -> PretrainConfig:
    """Build (through the typed loader, :mod:`elmo_tasks.schema`) and validate a pretraining config."""
    if not isinstance(data, dict):
        raise ConfigError(f"{source}: the top level must be a mapping of keys to values")
    config = build(PretrainConfig, data, Source(source, quoted=True))
    config.source = source
    return validate(config, Path(base) if base is not None else Path.cwd())


def load_config(path: str | Path) -> PretrainConfig:
    """Read and validate a pretraining YAML file."""
    path = Path(path)
    data = parse_yaml(path, UserError)
    if data is None:
        raise UserError(f"{path}: the file is empty")
    return config_from_dict(data, source=str(path), base=path.parent)
