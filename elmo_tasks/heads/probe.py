"""``probe``: a linear classifier on each token's features, nothing else (the paper's POS probe).

With ``features: {elmo: {fixed: layer1, dropout: 0}}`` and no other feature it shows what one biLM
layer holds; run it for layer0, layer1 and layer2. The smallest head: copy it to write a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from elmo_tasks.features import Features
from elmo_tasks.heads.base import Head
from elmo_tasks.modules import Dropout


@dataclass
class ProbeOptions:
    dropout: float = 0.0  # on the features


class Probe(Head):
    Options = ProbeOptions
    tasks = ("tagging",)

    def __init__(self, options: ProbeOptions, task, input_dim: int, output_dim: int = 0) -> None:
        super().__init__(options, task, input_dim, output_dim)
        self.dropout = Dropout(options.dropout)
        self.linear = nn.Linear(input_dim, len(task.labels))

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        scores = self.linear(self.dropout(features.inputs)).float()  # float32 under autocast (trainer.amp)
        return nn.functional.cross_entropy(scores.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        best = self.linear(features.inputs).argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, features.mask.sum(1).tolist())]
