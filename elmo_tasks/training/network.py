"""The trained network of a run: the feature stack + the head (what ``checkpoints/best.pt`` holds).

The public object that wraps it for prediction is :class:`elmo_tasks.task_model.TaskModel`.
"""

from __future__ import annotations

from contextlib import nullcontext
from typing import Any

import torch
from torch import nn

from elmo_tasks.features import FeatureStack


class TaskNetwork(nn.Module):
    """Features + head; the ELMo mix's L2 penalty is part of the loss.

    ``amp`` (set by the trainer from ``trainer.amp`` and the device) runs the forward passes under
    bfloat16 autocast; heads return float32 scores, so losses stay float32.
    """

    def __init__(self, features: FeatureStack, head: nn.Module) -> None:
        super().__init__()
        self.features, self.head = features, head
        self.amp = False

    def autocast(self) -> Any:
        device = next(self.parameters(), torch.empty(0)).device.type
        return torch.autocast(device, dtype=torch.bfloat16) if self.amp else nullcontext()

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        with self.autocast():
            return self.head.loss(self.features(batch), batch) + self.features.penalty()

    def predict(self, batch: dict[str, Any]) -> list:
        with self.autocast():
            return self.head.predict(self.features(batch), batch)

    def fit(self, batch: dict[str, Any]) -> None:
        with self.autocast():
            self.head.fit(self.features(batch), batch)
