"""From a config's ``dataset`` to batches of tensors.

:func:`load_splits` reads the train/dev/test ``datasets.Dataset`` s (a prepared set, local files or
a hub name). :class:`Split` holds one split's tokens, label ids and, per feature name, that
feature's prepared input (``Feature.prepare``); :meth:`Split.batches` yields dicts of padded
tensors, each feature's part collated by the feature itself. With ``dataset.normalize`` the
features read normalised pieces (``Split.pieces``; a batch's ``pieces`` holds their mask and the
token each belongs to) while labels, scores and predictions stay on the data's tokens.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from elmo_tasks.data import readers, recipes
from elmo_tasks.data.tweets import normalize_sentences
from elmo_tasks.errors import UserError
from elmo_tasks.experiment import Config, DatasetConfig
from elmo_tasks.features.base import pad
from elmo_tasks.paths import read_json_file
from elmo_tasks.task import SPLITS, Task, lemma_key


class Collator(Protocol):
    def collate(self, inputs: dict[str, Any], rows: list[int], width: int) -> dict[str, Any]: ...


def load_splits(config: DatasetConfig) -> dict[str, Any]:
    """``{"train": Dataset, "dev": Dataset, "test": Dataset}`` as the config describes."""
    if config.source == "prepared":
        loaded = recipes.load_prepared(config.name)
    elif config.source == "hub":
        loaded = readers.load_hub(config.name, **{"tokenize": config.tokenizer, **config.options})
    else:  # the options were checked against the reader's Options when the config was loaded
        loaded = {split: readers.read_file(config.format, config.files[split], config.options, config.tokenizer)
                  for split in SPLITS}
    missing = [s for s in SPLITS if s not in loaded]
    if missing:
        raise UserError(f"dataset {config.name or config.files}: no {', '.join(missing)} split "
                        f"(has {', '.join(loaded)})")
    splits = {s: loaded[s] for s in SPLITS}
    if config.max_examples is not None:
        splits = {s: d.select(range(min(config.max_examples, len(d)))) for s, d in splits.items()}
    return splits


def load_sense_frequencies(config: DatasetConfig) -> dict[str, list[dict]] | None:
    if config.sense_frequencies:
        data = read_json_file(config.sense_frequencies, "dataset.sense_frequencies file")
        if not isinstance(data, dict):
            raise UserError(f"{config.sense_frequencies}: expected a JSON object of lemma%pos -> senses")
        return data
    if config.source == "prepared" and config.name == "wordnet-wsd":
        return recipes.load_sense_frequencies()
    return None


@dataclass
class Split:
    """One split, encoded: tokens, label ids and the inputs of each feature."""

    name: str
    data: Any  # the datasets.Dataset
    tokens: list[list[str]]
    labels: list[Any]  # tagging: int64 arrays; classification / wsd: ints
    target: np.ndarray | None = None  # wsd: the target token of each sentence
    keys: list[str] | None = None  # wsd: lemma keys
    inputs: dict[str, Any] = field(default_factory=dict)  # feature name -> Feature.prepare's result
    # dataset.normalize: the pieces the features see and, per piece, the index of its token
    pieces: list[list[str]] | None = None
    owners: list[np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.tokens)

    @property
    def embed_tokens(self) -> list[list[str]]:
        """What the features read: the normalised pieces, or the tokens themselves."""
        return self.pieces if self.pieces is not None else self.tokens

    @classmethod
    def encode(cls, name: str, data: Any, task: Task, normalize: str = "none") -> "Split":
        split = cls._encode(name, data, task)
        if normalize != "none":
            pieces, owners = normalize_sentences(split.tokens, normalize)
            split.pieces, split.owners = pieces, [np.asarray(o, dtype=np.int64) for o in owners]
        return split

    @classmethod
    def _encode(cls, name: str, data: Any, task: Task) -> "Split":
        tokens = [list(t) for t in data["tokens"]]
        index = task.index
        if task.kind == "tagging":
            labels = [np.array([index[t] for t in tags], dtype=np.int64) for tags in data["tags"]]
            for i, (toks, labs) in enumerate(zip(tokens, labels)):
                if len(toks) != len(labs):
                    raise UserError(f"{name} example {i}: {len(toks)} tokens but {len(labs)} tags")
            return cls(name, data, tokens, labels)
        if task.kind == "classification":
            return cls(name, data, tokens, [index[l] for l in data["label"]])
        target = np.array(data["target"], dtype=np.int64)
        bad = [i for i, (t, toks) in enumerate(zip(target, tokens)) if not 0 <= t < len(toks)]
        if bad:
            raise UserError(f"{name} example {bad[0]}: target {target[bad[0]]} is outside its {len(tokens[bad[0]])} tokens")
        return cls(name, data, tokens, [index[s] for s in data["sense"]], target, [lemma_key(r) for r in data])

    def batches(self, batch_size: int, features: Collator, shuffle: bool = False,
                generator: torch.Generator | None = None) -> Iterator[dict[str, Any]]:
        """Batches of similar-length sentences; shuffled (order and bucket contents) when asked.

        ``features`` (the model's ``FeatureStack``) collates each feature's inputs."""
        n = len(self)
        order = torch.randperm(n, generator=generator).tolist() if shuffle else list(range(n))
        pool = batch_size * 20
        batches = []
        for start in range(0, n, pool):
            chunk = sorted(order[start:start + pool], key=lambda i: len(self.tokens[i]))
            batches.extend(chunk[i:i + batch_size] for i in range(0, len(chunk), batch_size))
        if shuffle:
            batches = [batches[i] for i in torch.randperm(len(batches), generator=generator).tolist()]
        for rows in batches:
            yield self.collate(rows, features)

    def collate(self, rows: list[int], features: Collator) -> dict[str, Any]:
        width, mask = _mask([len(self.tokens[i]) for i in rows])
        if self.owners is None:
            batch: dict[str, Any] = {"rows": rows, "mask": mask, "inputs": features.collate(self.inputs, rows, width)}
        else:  # the features read pieces, pooled back onto their tokens (FeatureStack.forward)
            piece_width, piece_mask = _mask([len(self.owners[i]) for i in rows])
            batch = {"rows": rows, "mask": mask, "inputs": features.collate(self.inputs, rows, piece_width),
                     "pieces": {"mask": piece_mask, "owners": pad([self.owners[i] for i in rows], piece_width, fill=-1)}}
        first = self.labels[rows[0]] if rows else None
        if isinstance(first, np.ndarray):
            batch["labels"] = pad([self.labels[i] for i in rows], width, fill=-100)
        else:
            batch["labels"] = torch.tensor([self.labels[i] for i in rows], dtype=torch.long)
        if self.target is not None:
            batch["target"] = torch.from_numpy(self.target[rows])
            batch["keys"] = [self.keys[i] for i in rows]
        return batch


def _mask(lengths: list[int]) -> tuple[int, torch.Tensor]:
    """(padded width, (B, width) bool mask) of sentences of ``lengths``."""
    width = max(max(lengths), 1)
    mask = torch.zeros(len(lengths), width, dtype=torch.bool)
    for b, n in enumerate(lengths):
        mask[b, :n] = True
    return width, mask


@dataclass
class CachedSplit:
    """What :func:`cache_dataset` did for one split."""

    split: str
    sentences: int
    tokens: int
    nbytes: int
    path: Path
    built: bool  # False: the cache was there already
    seconds: float


def cache_dataset(config: Config, progress: bool = True, data: dict[str, Any] | None = None,
                  log: Callable[[str], None] | None = None, device: torch.device | None = None) -> list[CachedSplit]:
    """Build the ELMo layer cache of every split of the config's data set unless it exists.

    The one "config -> splits -> cache" path of ``elmo-tasks run`` (before training), ``cache``
    and ``bench``; under torchrun the ranks build together. ``data``: the splits, if loaded already;
    ``device``: where the biLM runs (default the CPU; ``run`` passes ``trainer.device``).
    Existing caches are checked memory-mapped, not read.
    """
    elmo = config.features.elmo
    if elmo is None:
        raise UserError(f"{config.path}: features.elmo is not set: this config uses no ELMo layers to cache")
    cache = elmo.layer_cache()
    cache.device = device
    data = data if data is not None else load_splits(config.dataset)
    out = []
    for split in SPLITS:
        tokens, _ = normalize_sentences(data[split]["tokens"], config.dataset.normalize)
        tick = time.perf_counter()
        built = cache.ensure(tokens, progress=progress, desc=f"ELMo cache {config.name} {split}")
        seconds = time.perf_counter() - tick
        layers = cache.peek(tokens)
        if layers is None:
            raise UserError(f"the feature cache at {cache.path_for(tokens)} could not be read back")
        if built and log is not None:
            log(f"built the ELMo cache of {config.name} {split} ({len(tokens):,} sentences) in {seconds:.0f}s")
        out.append(CachedSplit(split, len(tokens), int(layers.shape[0]), int(layers.nbytes), cache.path_for(tokens),
                               built, seconds))
    return out
