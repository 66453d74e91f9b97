"""From a config's ``dataset`` to batches of tensors.

:func:`load_splits` reads the train/dev/test ``datasets.Dataset`` s (a prepared set, local files or
a hub name). :class:`Task` is what the columns say the task is:

* ``tags`` -> tagging (token labels; span F1 when the tags are BIO/IOBES),
* ``label`` -> classification (one label per sentence),
* ``sense`` (+ ``target``, ``lemma``, ``pos``) -> word sense disambiguation of one token.

:class:`Split` holds one split's tokens, label ids and precomputed feature inputs (GloVe ids,
character ids, the cached ELMo layers); :meth:`Split.batches` yields dicts of padded tensors.
"""

from __future__ import annotations

import collections
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Sequence

import numpy as np
import torch

from elmo_tasks.config import SPLITS, DatasetConfig
from elmo_tasks.errors import UserError
from elmo_tasks.training.metrics import classification_metrics, is_bio, tagging_metrics, wsd_metrics

TASK_COLUMNS = {"tags": "tagging", "label": "classification", "sense": "wsd"}


def load_splits(config: DatasetConfig) -> dict[str, Any]:
    """``{"train": Dataset, "dev": Dataset, "test": Dataset}`` as the config describes."""
    from elmo_tasks.data import readers

    if config.source == "prepared":
        from elmo_tasks.data.recipes import load_prepared

        loaded = load_prepared(config.name)
    elif config.source == "hub":
        loaded = readers.load_hub(config.name, **config.options)
    else:
        reader = getattr(readers, f"read_{config.format}")
        loaded = {}
        for split in SPLITS:
            try:
                loaded[split] = reader(config.files[split], **config.options)
            except TypeError as exc:
                raise UserError(f"dataset.options: {exc} (reader read_{config.format})") from None
    missing = [s for s in SPLITS if s not in loaded]
    if missing:
        raise UserError(f"dataset {config.name or config.files}: no {', '.join(missing)} split "
                        f"(has {', '.join(loaded)})")
    splits = {s: loaded[s] for s in SPLITS}
    if config.max_examples is not None:
        splits = {s: d.select(range(min(config.max_examples, len(d)))) for s, d in splits.items()}
    return splits


def task_kind(columns: Sequence[str]) -> str:
    for column, kind in TASK_COLUMNS.items():
        if column in columns:
            if "tokens" not in columns:
                break
            return kind
    raise UserError(f"cannot tell the task from the columns {list(columns)}: expected tokens plus tags, "
                    "label or sense")


@dataclass
class Task:
    """The task's label inventory and scoring; built from the training split."""

    kind: str
    labels: list[str]
    spans: bool = False  # tagging with BIO/IOBES tags
    # word senses: lemma key ("lemma%pos") -> sense ids seen in training; most frequent sense per key
    candidates: dict[str, list[int]] = field(default_factory=dict)
    mfs: dict[str, str] = field(default_factory=dict)

    @property
    def main_metric(self) -> str:
        return {"tagging": "span_f1" if self.spans else "accuracy", "classification": "accuracy", "wsd": "f1"}[self.kind]

    @property
    def index(self) -> dict[str, int]:
        return {label: i for i, label in enumerate(self.labels)}

    @classmethod
    def build(cls, splits: dict[str, Any], sense_frequencies: dict[str, list[dict]] | None = None) -> "Task":
        train = splits["train"]
        if len(train) == 0:
            raise UserError("the training split is empty")
        kind = task_kind(train.column_names)
        for split, data in splits.items():
            if task_kind(data.column_names) != kind:
                raise UserError(f"the {split} split has columns {data.column_names}, unlike train ({train.column_names})")
        if kind == "tagging":
            seen = collections.Counter(t for s in splits.values() for tags in s["tags"] for t in tags)
            labels = sorted(seen)
            return cls(kind, labels, spans=is_bio(labels))
        if kind == "classification":
            return cls(kind, sorted({l for s in splits.values() for l in s["label"]}))
        # word senses: candidates come from training only; the most frequent sense from the
        # SemCor table where it knows the lemma, else from the training counts
        counts: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
        for row in train:
            counts[lemma_key(row)][row["sense"]] += 1
        mfs = {k: min(c.items(), key=lambda kv: (-kv[1], kv[0]))[0] for k, c in counts.items()}
        keys = {lemma_key(row) for s in splits.values() for row in s}
        for key in keys & set(sense_frequencies or {}):
            entries = sense_frequencies[key]
            if entries:
                mfs[key] = min(entries, key=lambda e: (-e["count"], e["sense_number"], e["sense"]))["sense"]
        # every sense of any split, and every back-off answer, gets an id
        labels = sorted({l for s in splits.values() for l in s["sense"]} | {mfs[k] for k in keys if k in mfs})
        index = {label: i for i, label in enumerate(labels)}
        candidates = {k: sorted(index[s] for s in c) for k, c in counts.items()}
        return cls(kind, labels, candidates=candidates, mfs=mfs)

    def gold(self, data: Any) -> list:
        return {"tagging": lambda: data["tags"], "classification": lambda: data["label"],
                "wsd": lambda: data["sense"]}[self.kind]()

    def metrics(self, gold: Sequence, pred: Sequence, rows: Any = None) -> dict[str, float]:
        if self.kind == "tagging":
            return tagging_metrics(gold, pred, self.spans)
        if self.kind == "classification":
            return classification_metrics(gold, pred)
        out = wsd_metrics(gold, pred)
        if rows is not None:  # the most-frequent-sense baseline on the same instances
            out["mfs_f1"] = wsd_metrics(gold, [self.mfs.get(lemma_key(r)) for r in rows])["f1"]
        return out


def lemma_key(row: dict[str, Any]) -> str:
    return f"{row['lemma']}%{row['pos']}"


def load_sense_frequencies(config: DatasetConfig) -> dict[str, list[dict]] | None:
    if config.sense_frequencies:
        return json.loads(Path(config.sense_frequencies).read_text(encoding="utf-8"))
    if config.source == "prepared" and config.name == "wordnet-wsd":
        from elmo_tasks.data.recipes import load_sense_frequencies as load

        return load()
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
    glove: list[np.ndarray] | None = None
    chars: list[np.ndarray] | None = None
    elmo: Any = None  # CachedLayers
    elmo_chars: bool = False  # recompute the biLM per batch (benchmark) instead of the cache

    def __len__(self) -> int:
        return len(self.tokens)

    @classmethod
    def encode(cls, name: str, data: Any, task: Task) -> "Split":
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

    def batches(self, batch_size: int, shuffle: bool = False, generator: torch.Generator | None = None) -> Iterator[dict[str, Any]]:
        """Batches of similar-length sentences; shuffled (order and bucket contents) when asked."""
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
            yield self.collate(rows)

    def collate(self, rows: list[int]) -> dict[str, Any]:
        lengths = [len(self.tokens[i]) for i in rows]
        width = max(max(lengths), 1)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for b, n in enumerate(lengths):
            mask[b, :n] = True
        batch: dict[str, Any] = {"rows": rows, "mask": mask}
        if self.glove is not None:
            batch["glove"] = _pad([self.glove[i] for i in rows], width)
        if self.chars is not None:
            batch["chars"] = _pad([self.chars[i] for i in rows], width)
        if self.elmo is not None:
            batch["elmo"], _ = self.elmo.batch(rows, width)
        if self.elmo_chars:
            from elmo_tasks.bilm.char_ids import batch_to_ids

            ids = batch_to_ids([self.tokens[i] for i in rows])
            batch["elmo_chars"] = torch.nn.functional.pad(ids, (0, 0, 0, width - ids.shape[1]))
        first = self.labels[rows[0]] if rows else None
        if isinstance(first, np.ndarray):
            batch["labels"] = _pad([self.labels[i] for i in rows], width, fill=-100)
        else:
            batch["labels"] = torch.tensor([self.labels[i] for i in rows], dtype=torch.long)
        if self.target is not None:
            batch["target"] = torch.from_numpy(self.target[rows])
            batch["keys"] = [self.keys[i] for i in rows]
        return batch


def _pad(arrays: list[np.ndarray], width: int, fill: int = 0) -> torch.Tensor:
    shape = (len(arrays), width, *arrays[0].shape[1:])
    out = np.full(shape, fill, dtype=arrays[0].dtype)
    for b, a in enumerate(arrays):
        out[b, :len(a)] = a
    return torch.from_numpy(out)
