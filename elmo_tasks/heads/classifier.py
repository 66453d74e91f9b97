"""``classifier``: a BiLSTM (or nothing) over the features, pooled (max, mean or attention) into one
vector per sentence, then a softmax over the labels."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from elmo_tasks.features import Features
from elmo_tasks.heads.base import Head
from elmo_tasks.modules import BiLSTM, Dropout


@dataclass
class ClassifierOptions:
    encoder: Literal["lstm", "none"] = "lstm"
    hidden: int = 100  # LSTM units per direction
    pooling: Literal["max", "mean", "attention"] = "max"
    dropout: float = 0.5


class Classifier(Head):
    Options = ClassifierOptions
    tasks = ("classification",)
    uses_output = True

    def __init__(self, options: ClassifierOptions, task, input_dim: int, output_dim: int = 0) -> None:
        super().__init__(options, task, input_dim, output_dim)
        self.dropout = Dropout(options.dropout)
        self.lstm = None
        width = input_dim
        if options.encoder == "lstm":
            self.lstm = BiLSTM(input_dim, options.hidden)
            width = 2 * options.hidden
        width += output_dim
        self.attention = nn.Linear(width, 1) if options.pooling == "attention" else None
        self.scores = nn.Linear(width, len(task.labels))

    def logits(self, features: Features) -> torch.Tensor:
        mask = features.mask
        h = self.dropout(features.inputs)
        if self.lstm is not None:
            h = self.lstm(h, mask)
        if features.output is not None:
            h = torch.cat([h, features.output], dim=-1)
        m = mask.unsqueeze(-1)
        if self.options.pooling == "max":
            pooled = h.masked_fill(~m, -1e4).max(dim=1).values
        elif self.options.pooling == "mean":
            pooled = (h * m).sum(1) / m.sum(1).clamp_min(1)
        else:
            weights = torch.softmax(self.attention(h).squeeze(-1).masked_fill(~mask, -1e4), dim=1)
            pooled = (weights.unsqueeze(-1) * h).sum(1)
        return self.scores(self.dropout(pooled)).float()  # float32 under autocast (trainer.amp)

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        return nn.functional.cross_entropy(self.logits(features), batch["labels"])

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        return self.logits(features).argmax(-1).tolist()
