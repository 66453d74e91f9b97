"""``Elmo``: run the frozen biLM once, return N independently mixed representations with dropout.

Each representation has its own ScalarMix, so a task model can use ELMo at its input and at its
output (as the paper's SQuAD/SNLI models do). Concatenate a representation to the task model's
input vectors. ``mix`` does the same from precomputed layers. (Task runs read cached layers
instead: ``elmo_tasks.features.elmo_layers``.)
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from elmo_tasks.bilm.inference import InferenceEngine
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.modules import Dropout
from elmo_tasks.scalar_mix import ScalarMix


@dataclass
class ElmoOutput:
    representations: list[torch.Tensor]  # each (B, T, 2P)
    mask: torch.Tensor  # (B, T) bool


class Elmo(nn.Module):
    """Frozen biLM + ``num_output_representations`` ScalarMixes + dropout.

    Args:
        bilm: a loaded biLM; it is frozen here (no gradients reach it).
        num_output_representations: how many independent mixes to return.
        dropout: applied to each representation (the references default to 0.5).
        do_layer_norm, fixed, l2_coef: passed to each ScalarMix.
    """

    def __init__(self, bilm: BiLM, num_output_representations: int = 1, dropout: float = 0.5,
                 do_layer_norm: bool = False, fixed: str | Sequence[float] | None = None,
                 l2_coef: float = 0.0) -> None:
        super().__init__()
        self.bilm = bilm.requires_grad_(False)
        self.engine = InferenceEngine(self.bilm)  # the frozen biLM runs through the fast inference path
        self.scalar_mixes = nn.ModuleList(
            ScalarMix(bilm.num_layers, do_layer_norm=do_layer_norm, fixed=fixed, l2_coef=l2_coef)
            for _ in range(num_output_representations)
        )
        self.dropout = Dropout(dropout)

    @property
    def output_dim(self) -> int:
        return self.bilm.output_dim

    def mix(self, layers: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        """Mix precomputed layers (B, L, T, D) into the N representations."""
        layers = layers.float()
        return [self.dropout(mix(layers, mask)) for mix in self.scalar_mixes]

    def forward(self, char_ids: torch.Tensor) -> ElmoOutput:
        with torch.no_grad():
            out = self.engine(char_ids)
        return ElmoOutput(self.mix(out.layers, out.mask), out.mask)

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda()/.half(): the engine's caches belong to the old weights
        self.engine.clear_caches()
        return super()._apply(fn, *args, **kwargs)

    def penalty(self) -> torch.Tensor:
        """The summed L2 penalty of every mix's weights (add to the loss)."""
        return sum((mix.penalty() for mix in self.scalar_mixes), torch.tensor(0.0))
