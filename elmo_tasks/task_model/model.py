"""``TaskModel``: a trained tagger, classifier or word-sense model, loaded from a run folder or an
archive (``elmo-tasks package``), predicting on new text.

    >>> from elmo_tasks import TaskModel
    >>> model = TaskModel.load("runs/ner_wnut16_elmo/seed0")      # or "ner.tar.gz"
    >>> model.predict(["Barack Obama visited Paris ."])[0]["spans"]

Inputs are checked and tokenised first (:meth:`TaskModel.examples`, no model run), then run in
batches of similar length (:meth:`TaskModel.predict_examples`); a result does not depend on which
other inputs share its batch, nor on earlier calls (the biLM's token cache keeps a token's own
vector). The biLM runs live (no feature cache); its layers are
rounded to the cache's dtype, as the head saw them in training.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from elmo_tasks.data.tweets import normalize_sentences
from elmo_tasks.device import bf16_supported
from elmo_tasks.errors import UserError
from elmo_tasks.task_model.inputs import Example, InputReader
from elmo_tasks.task_model.outputs import classification_results, tagging_results, wsd_results
from elmo_tasks.task_model.parts import ModelParts, build_network, from_run_folder
from elmo_tasks.training.evaluation import to_device
from elmo_tasks.training.splits import Split


class TaskModel:
    """A trained task model: ``task`` (tagging, classification, wsd), ``labels``, ``features``."""

    def __init__(self, parts: ModelParts, device: str | torch.device = "cpu") -> None:
        self.parts = parts
        self.device = torch.device(device)
        self.network = build_network(parts, self.device, parts.network)
        self.network.amp = self.network.amp and bf16_supported(self.device)
        self.task = parts.task.kind
        self.labels = list(parts.task.labels)
        self.features = list(parts.feature_options())
        dataset = parts.config.get("dataset") or {}
        self.normalize = dataset.get("normalize", "none") or "none"
        self.default_tokenizer = _training_tokenizer(dataset)

    @classmethod
    def load(cls, path: str | Path, device: str | torch.device = "cpu") -> "TaskModel":
        """A run folder (metrics.json, config.yaml, checkpoints/best.pt) or a ``.tar.gz`` archive of
        ``elmo-tasks package``; a bad path or archive is a one-line UserError."""
        path = Path(path)
        if path.is_dir():
            return cls(from_run_folder(path), device)
        if path.is_file():
            from elmo_tasks.task_model.archive import read_archive

            return cls(read_archive(path), device)
        raise UserError(f"task model not found: {path} (give a run folder or a .tar.gz of elmo-tasks package)")

    # -- inputs ------------------------------------------------------------------------------------

    def examples(self, items: Iterable[Any], tokenize: str | None = None) -> list[Example]:
        """The checked, tokenised inputs (strings, token lists or objects), without running the model;
        a bad item is a UserError naming its index and field."""
        return self.input_reader().examples(items, tokenize)

    def input_reader(self) -> InputReader:
        """The input checks alone (picklable), for a process that does not hold the model (the server's)."""
        return InputReader(self.task, self.default_tokenizer)

    # -- prediction --------------------------------------------------------------------------------

    def predict(self, items: Iterable[Any], batch_size: int = 64, tokenize: str | None = None,
                progress: bool = False) -> list[dict[str, Any]]:
        """One result per item, in input order (fields: :mod:`elmo_tasks.task_model.outputs`)."""
        return self.predict_examples(self.examples(items, tokenize), batch_size, progress)

    @torch.no_grad()
    def predict_examples(self, examples: Sequence[Example], batch_size: int = 64,
                         progress: bool = False) -> list[dict[str, Any]]:
        """Run checked examples in batches of similar length; results in input order."""
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        results: list[dict[str, Any] | None] = [None] * len(examples)
        order = sorted((i for i, e in enumerate(examples) if e.tokens), key=lambda i: len(examples[i].tokens))
        for i, example in enumerate(examples):
            if not example.tokens:  # an empty sentence (tagging only): nothing to tag
                results[i] = {"tokens": [], "tags": [], "tag_probabilities": [],
                              **({"spans": []} if self.parts.task.spans else {})}
        bar = tqdm(total=len(examples), unit=" sentences", desc="predict", file=sys.stderr) if progress else None
        for start in range(0, len(order), batch_size):
            rows = order[start:start + batch_size]
            chunk = [examples[i] for i in rows]
            for row, result in zip(rows, self._run_batch(chunk)):
                results[row] = result
            if bar is not None:
                bar.update(len(rows))
        if bar is not None:
            bar.update(len(examples) - bar.n)
            bar.close()
        return results  # type: ignore[return-value]

    def _run_batch(self, chunk: list[Example]) -> list[dict[str, Any]]:
        network, task = self.network, self.parts.task
        split = Split("predict", None, [e.tokens for e in chunk], [np.zeros(len(e.tokens), dtype=np.int64) for e in chunk])
        if task.kind == "wsd":
            split.target = np.array([e.target for e in chunk], dtype=np.int64)
            split.keys = [e.lemma_key for e in chunk]
        if self.normalize != "none":
            pieces, owners = normalize_sentences(split.tokens, self.normalize)
            split.pieces, split.owners = pieces, [np.asarray(o, dtype=np.int64) for o in owners]
        split.inputs = network.features.prepare("predict", split.embed_tokens)
        batch = to_device(split.collate(list(range(len(chunk))), network.features), self.device)
        with network.autocast():
            features = network.features(batch)
            if task.kind == "tagging":
                return tagging_results(network.head, task, features, chunk)
            if task.kind == "classification":
                return classification_results(network.head, task, features, chunk)
            return wsd_results(network.head, task, features, batch, chunk, self.parts.glosses)

    # -- scoring -----------------------------------------------------------------------------------

    def evaluate(self, examples: Sequence[Example], results: Sequence[dict[str, Any]]) -> dict[str, float]:
        """The task's metrics (the keys of metrics.json's ``test``) of ``results`` against the examples' gold."""
        self.check_gold(examples)
        key = {"tagging": "tags", "classification": "label", "wsd": "sense"}[self.task]
        gold = [e.gold for e in examples]
        pred = [r[key] for r in results]
        rows = [{"lemma": e.lemma, "pos": e.pos} for e in examples] if self.task == "wsd" else None
        return {k: round(v, 6) for k, v in self.parts.task.metrics(gold, pred, rows).items()}

    def check_gold(self, examples: Sequence[Example]) -> None:
        """A UserError unless there are examples and every one has its gold labels."""
        if not examples:
            raise UserError("--evaluate: the input has no examples to score")
        missing = [i for i, e in enumerate(examples) if e.gold is None]
        if missing:
            field = {"tagging": "tags", "classification": "label", "wsd": "sense"}[self.task]
            raise UserError(f"--evaluate: item {missing[0]} has no gold labels (\"{field}\"); give a data-set "
                            "format with labels (--format conll|word_tag|table|jsonl)")

    # -- facts -------------------------------------------------------------------------------------

    def info(self) -> dict[str, Any]:
        """What this model is (JSON-serialisable): name, task, labels, features, biLM, scores, source."""
        metrics = self.parts.metrics
        bilm = None
        if self.parts.bilm is not None:
            bilm = {"name": self.parts.bilm_name, "digest": self.parts.bilm.digest()}
        return {"name": metrics.get("name"), "task": self.task, "labels": self.labels, "features": self.features,
                "head": metrics.get("head"), "dataset": metrics.get("dataset"), "bilm": bilm,
                "main_metric": metrics.get("main_metric"), "dev": metrics.get("dev"), "test": metrics.get("test"),
                "precision": "bfloat16" if self.network.amp else "float32", "source": self.parts.source}


def _training_tokenizer(dataset: dict[str, Any]) -> str:
    """How the training data's raw text was tokenised: a table's ``tokenize`` option, else PTB."""
    options = dataset.get("options") or {}
    value = options.get("tokenize") if isinstance(options, dict) else None
    return value if value in ("ptb", "whitespace") else "ptb"
