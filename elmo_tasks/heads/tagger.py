"""``tagger``: a BiLSTM over the features, then a softmax or CRF over each token's tags."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from elmo_tasks.features import Features
from elmo_tasks.heads.base import Head
from elmo_tasks.heads.crf import CRF, bio_transitions
from elmo_tasks.modules import BiLSTM, Dropout


@dataclass
class TaggerOptions:
    hidden: int = 100  # LSTM units per direction
    layers: int = 1
    dropout: float = 0.5  # on the features and on the LSTM output
    output: Literal["softmax", "crf"] = "crf"


class Tagger(Head):
    Options = TaggerOptions
    tasks = ("tagging",)
    uses_output = True

    def __init__(self, options: TaggerOptions, task, input_dim: int, output_dim: int = 0) -> None:
        super().__init__(options, task, input_dim, output_dim)
        self.dropout = Dropout(options.dropout)
        self.lstm = BiLSTM(input_dim, options.hidden, options.layers, options.dropout)
        self.scores = nn.Linear(2 * options.hidden + output_dim, len(task.labels))
        self.crf = None
        if options.output == "crf":
            allowed, start = bio_transitions(task.labels) if task.spans else (None, None)
            self.crf = CRF(len(task.labels), allowed, start)

    def emissions(self, features: Features) -> torch.Tensor:
        h = self.lstm(self.dropout(features.inputs), features.mask)
        if features.output is not None:
            h = torch.cat([h, features.output], dim=-1)
        return self.scores(self.dropout(h)).float()  # float32 under autocast (trainer.amp)

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        emissions = self.emissions(features)
        if self.crf is not None:
            return self.crf.nll(emissions, batch["labels"], features.mask)
        return nn.functional.cross_entropy(emissions.flatten(0, 1), batch["labels"].flatten(), ignore_index=-100)

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        emissions = self.emissions(features)
        if self.crf is not None:
            return self.crf.decode(emissions, features.mask)
        best = emissions.argmax(-1).tolist()
        return [row[:n] for row, n in zip(best, features.mask.sum(1).tolist())]
