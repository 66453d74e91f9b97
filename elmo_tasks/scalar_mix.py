"""ScalarMix: the paper's task-specific weighting of the biLM layers, ``gamma * sum_j softmax(w)_j * h_j``."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

# pre-softmax weights for the fixed modes; a very negative value switches a layer off
_OFF = -9e10


def fixed_weights(mode: str | Sequence[float], num_layers: int) -> list[float]:
    """Pre-softmax weights for ``"top"``, ``"average"``, ``"layerK"`` or an explicit list."""
    if not isinstance(mode, str):
        weights = [float(w) for w in mode]
        if len(weights) != num_layers:
            raise ValueError(f"fixed weights need {num_layers} values, got {len(weights)}")
        return weights
    if mode == "average":
        return [0.0] * num_layers
    if mode == "top":
        mode = f"layer{num_layers - 1}"
    if mode.startswith("layer") and mode[5:].isdigit() and int(mode[5:]) < num_layers:
        return [0.0 if j == int(mode[5:]) else _OFF for j in range(num_layers)]
    raise ValueError(f"unknown fixed mix {mode!r}: use 'top', 'average', 'layer0'..'layer{num_layers - 1}' or a list")


class ScalarMix(nn.Module):
    """Softmax-normalised layer weights ``w`` (initially 0, so a plain average) and a scale ``gamma`` (1).

    Args:
        num_layers: how many layers are mixed (3 for a 2-layer biLM).
        do_layer_norm: normalise each layer by one mean and variance over all unmasked elements
            of the batch before mixing (the references' "layer norm"; it makes outputs depend on
            the batch). Our biLM drops the sentence boundaries before mixing, so the statistics
            cover the words only, as in bilm-tf (allennlp also counts ``<S>``/``</S>``).
        fixed: pre-softmax weights or a mode (``"top"``, ``"average"``, ``"layerK"``); freezes
            ``w`` *and* ``gamma`` (= 1), as the references do.
        l2_coef: weight of the paper's ``lambda * ||w||^2`` penalty returned by ``penalty()``.
    """

    def __init__(self, num_layers: int, do_layer_norm: bool = False,
                 fixed: str | Sequence[float] | None = None, l2_coef: float = 0.0) -> None:
        super().__init__()
        self.num_layers = num_layers
        self.do_layer_norm = do_layer_norm
        self.l2_coef = l2_coef
        initial = fixed_weights(fixed, num_layers) if fixed is not None else [0.0] * num_layers
        trainable = fixed is None
        self.weights = nn.Parameter(torch.tensor(initial), requires_grad=trainable)
        self.gamma = nn.Parameter(torch.tensor(1.0), requires_grad=trainable)

    def normalized_weights(self) -> torch.Tensor:
        """The softmax weights s_j (what the paper plots)."""
        return torch.softmax(self.weights, dim=0)

    def penalty(self) -> torch.Tensor:
        """``l2_coef * sum(w^2)``: add it to the task loss (gamma is not regularised)."""
        return self.l2_coef * (self.weights ** 2).sum()

    def forward(self, layers: torch.Tensor | Sequence[torch.Tensor], mask: torch.Tensor | None = None) -> torch.Tensor:
        """Mix ``layers`` (B, L, T, D) or a list of L (B, T, D) tensors; ``mask`` (B, T) for layer norm."""
        if not isinstance(layers, torch.Tensor):
            layers = torch.stack(list(layers), dim=1)
        if layers.shape[1] != self.num_layers:
            raise ValueError(f"ScalarMix was built for {self.num_layers} layers, got {layers.shape[1]}")
        if self.do_layer_norm:
            if mask is None:
                raise ValueError("layer norm needs the mask")
            layers = self._layer_norm(layers, mask)
        s = self.normalized_weights().to(layers.dtype)
        return self.gamma.to(layers.dtype) * torch.einsum("l,bltd->btd", s, layers)

    @staticmethod
    def _layer_norm(layers: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        m = mask.to(layers.dtype)[:, None, :, None]  # (B, 1, T, 1)
        count = (m.sum() * layers.shape[-1]).clamp_min(1.0)
        mean = (layers * m).sum(dim=(0, 2, 3), keepdim=True) / count
        var = (((layers - mean) * m) ** 2).sum(dim=(0, 2, 3), keepdim=True) / count
        eps = 1e-4 if layers.dtype == torch.float16 else 1e-13
        return (layers - mean) / torch.sqrt(var + eps)
