"""What a data set's columns say the task is, its label inventory and how it is scored.

* ``tags`` -> tagging (token labels; span F1 when the tags are BIO/IOBES),
* ``label`` -> classification (one label per sentence),
* ``sense`` (+ ``target``, ``lemma``, ``pos``) -> word sense disambiguation of one token.

Heads receive a :class:`Task`; the trainer builds it from the training split.
"""

from __future__ import annotations

import collections
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from elmo_tasks.errors import UserError
from elmo_tasks.metrics import classification_metrics, is_bio, tagging_metrics, wsd_metrics

SPLITS = ("train", "dev", "test")
TASK_COLUMNS = {"tags": "tagging", "label": "classification", "sense": "wsd"}


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
