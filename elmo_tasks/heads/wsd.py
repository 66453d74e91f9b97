"""``wsd``: word sense disambiguation of one target token per sentence.

``method: nearest`` follows the paper (section 5.3): the vector of each sense is the mean of the
target's feature vectors over its training contexts, and a test target takes the sense, among its
lemma's senses seen in training, whose vector is nearest (cosine). With several features (GloVe +
ELMo) each feature's vectors are unit-normalised apart, so the similarity is the mean of the
per-feature cosines and neither feature drowns the other by its scale. Nothing is learned by
gradient; use a fixed ELMo mix (``fixed: layer1``, ``top``...) with it.

* ``window``: the target's vector of a feature is its mean over the target and ``n`` neighbours on
  each side. A number applies to every feature; a mapping sets it per feature (``{glove: 3,
  elmo: 0}``: a GloVe vector is the same in every context, so it gets the words around it; an ELMo
  vector is contextual already); a feature not named gets 0.
* ``mfs_threshold``: the lemma's most frequent sense (the SemCor table, else the training counts)
  is a candidate too: it is chosen when no training sense is at least this similar. ``dev`` picks
  the threshold with the best dev score once the senses are fitted (dev only; test is never
  read); ``null`` never backs off for a lemma seen in training (the paper's pure 1-NN). A lemma
  never seen in training always takes its most frequent sense.

``method: linear`` trains a linear layer over all senses, restricted at prediction time to the
lemma's training senses, with the same back-off for unseen lemmas.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Literal

import torch
from torch import nn

from elmo_tasks.features import FEATURES, Features
from elmo_tasks.heads.base import Head
from elmo_tasks.modules import Dropout
from elmo_tasks.schema import ConfigError


@dataclass
class WsdOptions:
    method: Literal["nearest", "linear"] = "nearest"
    # context window: one number for every feature, or feature name -> number (see the module docstring)
    window: int | dict[str, int] = 0
    # nearest only: back off to the most frequent sense below this cosine; "dev": chosen on dev; null: never
    mfs_threshold: float | Literal["dev"] | None = None
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
        fixed = options.mfs_threshold if isinstance(options.mfs_threshold, (int, float)) else -math.inf
        self.register_buffer("threshold", torch.tensor(float(fixed)))  # -inf: never back off
        self.dropout = Dropout(options.dropout)
        self.linear = nn.Linear(input_dim, n) if self.iterative else None

    @classmethod
    def check_config(cls, config: Any) -> None:
        super().check_config(config)
        options = config.head.options
        elmo = config.features.elmo
        if options.method == "nearest" and elmo is not None and elmo.fixed is None:
            raise ConfigError("the nearest-neighbour wsd head learns no mix; set fixed (top, average, layer0..layer2)",
                              key="features.elmo.fixed")
        windows = options.window if isinstance(options.window, dict) else {"": options.window}
        for name, size in windows.items():
            key = f"head.window.{name}" if name else "head.window"
            if name and name not in FEATURES:
                raise ConfigError(f"no feature {name!r} (features are {', '.join(FEATURES)})", key=key)
            if size < 0:
                raise ConfigError(f"must not be negative, got {size}", key=key)
        if options.mfs_threshold is not None and options.method != "nearest":
            raise ConfigError("only the nearest method backs off by similarity; use null", key="head.mfs_threshold")
        if isinstance(options.mfs_threshold, float) and not -1.0 <= options.mfs_threshold <= 1.0:
            raise ConfigError(f"a cosine similarity in [-1, 1] or 'dev', got {options.mfs_threshold}",
                              key="head.mfs_threshold")

    def window_of(self, feature: str) -> int:
        window = self.options.window
        return window.get(feature, 0) if isinstance(window, dict) else window

    def targets(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        """(B, D): per feature, the mean of its vectors in [target - window, target + window] within
        the sentence; for the nearest method each feature's part unit-normalised."""
        x, mask = features.inputs, features.mask
        positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
        distance = (positions - batch["target"].unsqueeze(1)).abs()
        spans = features.spans or {"": (0, x.shape[-1])}
        parts = []
        for name, (start, end) in spans.items():
            weights = ((distance <= self.window_of(name)) & mask).to(x.dtype)
            part = (weights.unsqueeze(-1) * x[..., start:end]).sum(1) / weights.sum(1, keepdim=True).clamp_min(1)
            parts.append(nn.functional.normalize(part, dim=-1) if self.linear is None else part)
        return torch.cat(parts, dim=-1)

    def fit(self, features: Features, batch: dict[str, Any]) -> None:
        x = self.targets(features, batch).detach()
        self.sums.index_add_(0, batch["labels"], x)
        self.counts.index_add_(0, batch["labels"], torch.ones_like(batch["labels"], dtype=self.counts.dtype))

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        return nn.functional.cross_entropy(self.linear(self.dropout(self.targets(features, batch))).float(), batch["labels"])

    def scores(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        """(B, senses): the linear scores, or the mean per-feature cosine to each sense's mean vector."""
        x = self.targets(features, batch)
        if self.linear is not None:
            return self.linear(x)
        centroids = self.sums / self.counts.clamp_min(1).unsqueeze(1)
        spans = features.spans or {"": (0, x.shape[-1])}
        parts = [nn.functional.normalize(centroids[:, start:end], dim=-1) for start, end in spans.values()]
        return x @ torch.cat(parts, dim=-1).T / len(spans)

    def nearest(self, features: Features, batch: dict[str, Any]) -> list[tuple[int | None, float, int | None]]:
        """Per sentence: (best training sense or None, its score, the most frequent sense or None)."""
        scores = self.scores(features, batch)
        index = self.task.index
        out = []
        for row, key in enumerate(batch["keys"]):
            mfs = self.task.mfs.get(key)
            mfs_id = index.get(mfs) if mfs is not None else None
            candidates = self.task.candidates.get(key)
            if candidates:
                best = max(candidates, key=lambda s: float(scores[row, s]))
                out.append((best, float(scores[row, best]), mfs_id))
            else:
                out.append((None, -math.inf, mfs_id))
        return out

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        threshold = float(self.threshold)
        return [choose(best, score, mfs, threshold) for best, score, mfs in self.nearest(features, batch)]

    def calibrate(self, dev: list[tuple[Features, dict[str, Any]]]) -> None:
        """With ``mfs_threshold: dev``: keep the threshold with the most right answers on dev."""
        if self.options.mfs_threshold != "dev" or self.linear is not None:
            return
        items = [(item, int(gold)) for features, batch in dev
                 for item, gold in zip(self.nearest(features, batch), batch["labels"])]
        self.threshold.fill_(pick_threshold(items))

    def report(self) -> dict[str, Any]:
        """The back-off threshold in use (for metrics.json)."""
        value = float(self.threshold)
        return {"mfs_threshold": None if math.isinf(value) else round(value, 6)}


def choose(best: int | None, score: float, mfs: int | None, threshold: float) -> int | None:
    """The MFS candidate rule: the nearest training sense unless it is less similar than
    ``threshold`` and a most frequent sense is known; no training sense: the most frequent one."""
    if best is None:
        return mfs
    if mfs is not None and score < threshold:
        return mfs
    return best


def pick_threshold(items: list[tuple[tuple[int | None, float, int | None], int]]) -> float:
    """The threshold that gets most dev items right under :func:`choose` (ties: the lowest, i.e.
    the fewest back-offs; -inf = never back off). ``items``: ((best, score, mfs), gold) pairs."""
    contested = [(score, best == gold, mfs == gold) for (best, score, mfs), gold in items
                 if best is not None and mfs is not None and best != mfs]
    right = sum(nn_right for _, nn_right, _ in contested)  # threshold -inf: every item keeps its nearest sense
    best_right, best_threshold = right, -math.inf
    change: dict[float, int] = {}  # raising the threshold just past a score backs off every item with it
    for score, nn_right, mfs_right in contested:
        change[score] = change.get(score, 0) + int(mfs_right) - int(nn_right)
    scores = sorted(change)
    for k, score in enumerate(scores):
        right += change[score]
        if right > best_right:  # halfway to the next score: robust to float noise between batches
            best_right = right
            best_threshold = (score + scores[k + 1]) / 2 if k + 1 < len(scores) else score + 1e-4
    return best_threshold
