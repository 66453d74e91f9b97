"""Predict a split with a trained model, score it, and lay the predictions out per sentence."""

from __future__ import annotations

from typing import Any

import torch

from elmo_tasks.task import Task
from elmo_tasks.training.splits import Split


def to_device(batch: Any, device: torch.device) -> Any:
    """The batch's tensors, also inside dicts (its feature inputs), on ``device``."""
    if isinstance(batch, torch.Tensor):
        return batch.to(device)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    return batch


def decode(task: Task, prediction: Any) -> Any:
    if prediction is None:
        return None
    if isinstance(prediction, list):
        return [task.labels[i] for i in prediction]
    return task.labels[prediction]


@torch.no_grad()
def evaluate(model: Any, split: Split, task: Task, batch_size: int, device: torch.device) -> tuple[dict[str, float], list]:
    """Metrics and decoded predictions (in the split's order) of a ``TaskNetwork``."""
    model.eval()
    predictions: list[Any] = [None] * len(split)
    for batch in split.batches(batch_size, model.features):
        for row, pred in zip(batch["rows"], model.predict(to_device(batch, device))):
            predictions[row] = decode(task, pred)
    gold = task.gold(split.data)
    rows = split.data if task.kind == "wsd" else None
    return task.metrics(gold, predictions, rows), predictions


def prediction_rows(split: Split, task: Task, predictions: list) -> list[dict[str, Any]]:
    """One object per sentence: tokens, gold, pred (and the target and lemma key for word senses)."""
    out = []
    for i, (tokens, g, p) in enumerate(zip(split.tokens, task.gold(split.data), predictions)):
        row: dict[str, Any] = {"tokens": tokens, "gold": g, "pred": p}
        if split.target is not None:
            row["target"] = int(split.target[i])
            row["lemma_key"] = split.keys[i]
        out.append(row)
    return out
