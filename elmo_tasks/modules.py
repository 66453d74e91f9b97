"""Small torch building blocks shared by the biLM and the task heads."""

from __future__ import annotations

import torch
from torch import nn


def _check_probability(p: float) -> None:
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"dropout probability must be in [0, 1], got {p}")


def dropout(x: torch.Tensor, p: float, training: bool = True) -> torch.Tensor:
    """``nn.functional.dropout``'s distribution (each value zeroed with probability ``p``, the rest
    scaled by 1 / (1 - p)), drawn with one ``torch.rand`` call: about 3x faster on CPU than
    ``bernoulli_``, which draws element by element (it was 8-10% of a task head's training step)."""
    _check_probability(p)
    if not training or p == 0.0:
        return x
    if p == 1.0:
        return x * 0.0
    keep = torch.rand(x.shape, device=x.device).ge_(p).to(x.dtype).mul_(1.0 / (1.0 - p))
    return x * keep


class Dropout(nn.Module):
    """:func:`dropout` as a module: active in training mode, the identity in evaluation mode."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        _check_probability(p)
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return dropout(x, self.p, self.training)

    def extra_repr(self) -> str:
        return f"p={self.p}"


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` positions of (B, T, D); padding stays at the end.

    The permutation is its own inverse, so the same call maps outputs back. It moves whole (D,)
    vectors (one ``index_select`` over the B*T rows), which is cheaper than a per-element gather.
    """
    b, t, d = x.shape
    positions = torch.arange(t, device=x.device).unsqueeze(0)
    index = torch.where(positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions)
    rows = index + t * torch.arange(b, device=x.device).unsqueeze(1)
    return x.reshape(b * t, d).index_select(0, rows.reshape(-1)).reshape(b, t, d)


class BiLSTM(nn.Module):
    """A bidirectional LSTM over padded, left-aligned sentences, exact at every real token.

    The backward direction reads each sentence reversed within its length, so padding never
    reaches a real token in either direction. It runs on plain padded tensors: on CPU this is
    several times faster than packed sequences (which also pay a large first-use cost per shape).
    """

    def __init__(self, input_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        dims = [input_dim] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.backward_layers = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.dropout = Dropout(dropout)
        self.output_dim = 2 * hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1)
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            forward_out, _ = fwd(x)
            backward_out, _ = bwd(reverse_within_lengths(x, lengths))
            x = torch.cat([forward_out, reverse_within_lengths(backward_out, lengths)], dim=-1)
        return x * mask.unsqueeze(-1)
