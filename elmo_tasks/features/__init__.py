"""Task features: the name a config's ``features:`` uses -> the class. One file per feature.

Adding a feature: write ``elmo_tasks/features/NAME.py`` (copy ``char_cnn.py``; ``base.py`` has
the interface) and add one line to ``FEATURES``. The task model's input is the concatenation of
the features in the config's order; a feature whose ``places`` include ``"output"`` (ELMo with
``where: output|both``) hands that vector to the head for its encoder's output instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from elmo_tasks.features.base import BuildContext, Feature
from elmo_tasks.features.char_cnn import CharCNN
from elmo_tasks.features.elmo_layers import ElmoFeature
from elmo_tasks.features.glove import GloveEmbedding

FEATURES: dict[str, type[Feature]] = {
    "glove": GloveEmbedding,
    "chars": CharCNN,
    "elmo": ElmoFeature,
}


@dataclass
class Features:
    inputs: torch.Tensor  # (B, T, input_dim)
    output: torch.Tensor | None  # (B, T, output_dim): ELMo for the encoder's output, if configured
    mask: torch.Tensor  # (B, T) bool
    spans: dict[str, tuple[int, int]] = field(default_factory=dict)  # feature name -> its columns of inputs


class FeatureStack(nn.Module):
    """The configured features, by name, in order: prepares splits, collates batches, concatenates."""

    def __init__(self, features: dict[str, Feature]) -> None:
        super().__init__()
        self.features = nn.ModuleDict(features)
        self.input_dim = sum(f.output_dim for f in features.values() for p in f.places if p == "input")
        self.output_dim = sum(f.output_dim for f in features.values() for p in f.places if p == "output")

    def prepare(self, split: str, tokens: list[list[str]]) -> dict[str, Any]:
        """Each feature's input for one split's sentences (what ``Split.inputs`` holds)."""
        return {name: feature.prepare(split, tokens) for name, feature in self.features.items()}

    def collate(self, inputs: dict[str, Any], rows: list[int], width: int) -> dict[str, Any]:
        return {name: feature.collate(inputs[name], rows, width) for name, feature in self.features.items()}

    def forward(self, batch: dict[str, Any]) -> Features:
        mask = batch["mask"]
        pieces = batch.get("pieces")  # dataset.normalize: the features read pieces of tokens
        parts: dict[str, list[torch.Tensor]] = {"input": [], "output": []}
        spans, width = {}, 0
        for name, feature in self.features.items():
            for place, vector in zip(feature.places, feature(batch["inputs"][name], mask if pieces is None
                                                             else pieces["mask"])):
                parts[place].append(vector)
                if place == "input":
                    spans[name] = (width, width + vector.shape[-1])
                    width += vector.shape[-1]
        inputs = torch.cat(parts["input"], dim=-1)
        output = torch.cat(parts["output"], dim=-1) if parts["output"] else None
        if pieces is not None:
            pool = pooling(pieces["owners"], mask.shape[1]).to(inputs.dtype)
            inputs = pool @ inputs
            output = pool @ output if output is not None else None
        return Features(inputs * mask.unsqueeze(-1), output, mask, spans)

    def penalty(self) -> torch.Tensor:
        return sum((f.penalty() for f in self.features.values()), torch.tensor(0.0))

    def mix_report(self) -> list[dict] | None:
        """The learned layer mixes of the features that have one (ELMo), or None."""
        mixes = [m for f in self.features.values() if (m := f.mix_report()) is not None]
        return [entry for m in mixes for entry in m] if mixes else None

    def report(self) -> dict[str, Any]:
        """Facts worth recording (GloVe coverage, the ELMo model and its caches)."""
        info: dict[str, Any] = {}
        for feature in self.features.values():
            info.update(feature.report())
        return info


def pooling(owners: torch.Tensor, width: int) -> torch.Tensor:
    """(B, width, P): averages the pieces of each token; ``owners`` (B, P) is each piece's token (-1: padding)."""
    tokens = torch.arange(width, device=owners.device)
    member = (owners.unsqueeze(1) == tokens.view(1, -1, 1)).float()
    return member / member.sum(-1, keepdim=True).clamp_min(1)


def build_features(options: dict[str, Any], tokens: dict[str, list[list[str]]],
                   context: BuildContext | None = None) -> FeatureStack:
    """The stack of the configured features (name -> options) for a task with ``tokens``, in the
    order of ``FEATURES``."""
    context = context or BuildContext()
    return FeatureStack({name: cls.build(options[name], tokens, context) for name, cls in FEATURES.items()
                         if options.get(name) is not None})
