"""``wsd``: word sense disambiguation of one target token per sentence.

``method: nearest`` is the paper's (section 5.3): the vector of each sense is the mean of the
target's feature vectors over its training contexts; a test target takes the sense, among its
lemma's senses seen in training, whose vector is nearest (cosine); a lemma never seen in training
backs off to its most frequent sense (the WordNet/SemCor table, else the training counts). Nothing
is learned by gradient; use a fixed ELMo mix (``fixed: top``, as the paper) with it.

``method: linear`` trains a linear layer over all senses, restricted at prediction time to the
lemma's training senses, with the same back-off.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from elmo_tasks.features import Features
from elmo_tasks.heads.base import Head
from elmo_tasks.schema import ConfigError


@dataclass
class WsdOptions:
    method: Literal["nearest", "linear"] = "nearest"
    # average the features of the target and its `window` neighbours on each side (0: the target
    # only, the paper's method; a window gives context-free vectors such as GloVe some context)
    window: int = 0
    dropout: float = 0.0  # linear only


class Wsd(Head):
    Options = WsdOptions
    tasks = ("wsd",)

    def __init__(self, options: WsdOptions, task, input_dim: int, output_dim: int = 0) -> None:
        super().__init__(options, task, input_dim, output_dim)
        self.iterative = options.method == "linear"
        n = len(task.labels)
        self.register_buffer("sums", torch.zeros(n, input_dim))
        self.register_buffer("counts", torch.zeros(n))
        self.dropout = nn.Dropout(options.dropout)
        self.linear = nn.Linear(input_dim, n) if self.iterative else None

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        elmo = config.features.elmo
        if config.head.options.method == "nearest" and elmo is not None and elmo.fixed is None:
            raise ConfigError("the nearest-neighbour wsd head learns no mix; set fixed (top, average, layer0..layer2)",
                              key="features.elmo.fixed")

    def targets(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        """(B, D): the mean of the features in [target - window, target + window] within the sentence."""
        x, mask = features.inputs, features.mask
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        near = (positions - batch["target"].unsqueeze(1)).abs() <= self.options.window
        weights = (near & mask).to(x.dtype)
        return (weights.unsqueeze(-1) * x).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)

    def fit(self, features: Features, batch: dict[str, Any]) -> None:
        x = self.targets(features, batch).detach()
        self.sums.index_add_(0, batch["labels"], x)
        self.counts.index_add_(0, batch["labels"], torch.ones_like(batch["labels"], dtype=self.counts.dtype))

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        return nn.functional.cross_entropy(self.linear(self.dropout(self.targets(features, batch))), batch["labels"])

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        x = self.targets(features, batch)
        if self.linear is not None:
            scores = self.linear(x)
        else:
            centroids = nn.functional.normalize(self.sums / self.counts.clamp_min(1).unsqueeze(1), dim=1)
            scores = nn.functional.normalize(x, dim=1) @ centroids.T
        index = self.task.index
        out = []
        for row, key in enumerate(batch["keys"]):
            candidates = self.task.candidates.get(key)
            if candidates:
                best = max(candidates, key=lambda s: float(scores[row, s]))
                out.append(best)
            else:  # lemma unseen in training: most frequent sense, if known
                mfs = self.task.mfs.get(key)
                out.append(index.get(mfs) if mfs is not None else None)
        return out
