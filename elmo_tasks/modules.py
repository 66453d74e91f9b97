"""Small torch building blocks shared by the biLM and the task heads."""

from __future__ import annotations

import torch
from torch import nn


class Dropout(nn.Module):
    """``nn.Dropout``'s distribution (each value zeroed with probability ``p``, the rest scaled by
    1 / (1 - p)), drawn with one ``torch.rand`` call: about 3x faster on CPU than ``bernoulli_``,
    which draws element by element (10% of a task head's training step)."""

    def __init__(self, p: float = 0.5) -> None:
        super().__init__()
        if not 0.0 <= p <= 1.0:
            raise ValueError(f"dropout probability must be in [0, 1], got {p}")
        self.p = p

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training or self.p == 0.0:
            return x
        if self.p == 1.0:
            return x * 0.0
        keep = torch.rand(x.shape, device=x.device).ge_(self.p).to(x.dtype).mul_(1.0 / (1.0 - self.p))
        return x * keep

    def extra_repr(self) -> str:
        return f"p={self.p}"


def reverse_within_lengths(x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Reverse each row's first ``lengths[b]`` positions of (B, T, D); padding stays at the end.

    The permutation is its own inverse, so the same call maps outputs back.
    """
    positions = torch.arange(x.shape[1], device=x.device).unsqueeze(0)
    index = torch.where(positions < lengths.unsqueeze(1), lengths.unsqueeze(1) - 1 - positions, positions)
    return x.gather(1, index.unsqueeze(2).expand(-1, -1, x.shape[2]))


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
