"""Small torch building blocks shared by the biLM and the task heads."""

from __future__ import annotations

import torch
from torch import nn

from elmo_tasks.recurrence import run_recurrence


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


class _PermuteRows(torch.autograd.Function):
    """``x.index_select(0, index)`` for a permutation ``index``, whose gradient is the gather by ``inverse``
    (``index_select``'s own backward scatters with ``index_add_``, several times slower on CPU)."""

    @staticmethod
    def forward(ctx, x, index, inverse):
        ctx.inverse = inverse
        return x.index_select(0, index)

    @staticmethod
    def backward(ctx, grad):
        return grad.index_select(0, ctx.inverse), None, None


def direction_frames(lengths: torch.Tensor, steps: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Where a BiLSTM's two directions read and write, as permutations of rows.

    ``to_frames`` (2*T*B,) lists, for each (direction d, step t, row b) in that order, the row of the
    batch-major (B, T, 2) layout it reads: (b, t, 0) forward, (b, reversed position of t, 1) backward,
    reversed within the row's length so that padding stays at the end. ``to_batch`` is its inverse.
    """
    batch = lengths.shape[0]
    positions = torch.arange(steps, device=lengths.device).unsqueeze(1)  # (T, 1)
    ends = lengths.unsqueeze(0)
    reverse = torch.where(positions < ends, ends - 1 - positions, positions)  # (T, B), its own inverse
    rows = torch.arange(batch, device=lengths.device).unsqueeze(0) * steps  # (1, B)
    to_frames = torch.stack([(rows + positions) * 2, (rows + reverse) * 2 + 1])  # (2, T, B)
    columns = torch.arange(batch, device=lengths.device).unsqueeze(0)
    to_batch = torch.stack([positions * batch + columns, (steps + reverse) * batch + columns], dim=2)  # (T, B, 2)
    return to_frames.reshape(-1), to_batch.transpose(0, 1).reshape(-1)


class BiLSTM(nn.Module):
    """A bidirectional LSTM over padded, left-aligned sentences, exact at every real token.

    The backward direction reads each sentence reversed within its length, so padding never
    reaches a real token in either direction. The weights live in one ``nn.LSTM`` per layer and
    direction, which run by default (oneDNN on a CPU, cuDNN on a GPU). ``fused=True`` trains on a
    CPU with both directions in one recurrence with a hand-written backward
    (``recurrence.run_recurrence``): 1.7x faster forward+backward on benchmarks/bilstm_speed.py's
    batch, but 0.93x on the WNUT-16 tagger's epoch and 0.87x on polarity's on an AVX-512/AMX Xeon
    (benchmarks/head_speed.py), so it is not the default; without gradients ``nn.LSTM`` always runs
    (batch-invariant results).
    """

    def __init__(self, input_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0, fused: bool = False) -> None:
        super().__init__()
        self.fused = fused
        dims = [input_dim] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.backward_layers = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.dropout = Dropout(dropout)
        self.hidden = hidden
        self.output_dim = 2 * hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        lengths = mask.sum(dim=1)
        # At inference the nn.LSTM calls run, whose per-row results do not depend on the batch's other
        # rows (TaskModel's and the server's batch invariance, to 1e-6; the fused steps differ by ~1e-5).
        fused = self.fused and x.device.type == "cpu" and torch.is_grad_enabled()
        if fused:
            to_frames, to_batch = direction_frames(lengths, x.shape[1])
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            if fused:
                x = self._fused_layer(x, fwd, bwd, to_frames, to_batch)
            else:
                forward_out, _ = fwd(x)
                backward_out, _ = bwd(reverse_within_lengths(x, lengths))
                x = torch.cat([forward_out, reverse_within_lengths(backward_out, lengths)], dim=-1)
        return x * mask.unsqueeze(-1)

    def _fused_layer(self, x: torch.Tensor, fwd: nn.LSTM, bwd: nn.LSTM, to_frames: torch.Tensor,
                     to_batch: torch.Tensor) -> torch.Tensor:
        """One layer, both directions in one recurrence: (B, T, in) -> (B, T, 2H)."""
        batch, steps, _ = x.shape
        h = self.hidden
        w_input = torch.cat([fwd.weight_ih_l0, bwd.weight_ih_l0])  # (8H, in): [forward; backward]
        bias = torch.cat([fwd.bias_ih_l0 + fwd.bias_hh_l0, bwd.bias_ih_l0 + bwd.bias_hh_l0])
        gates = nn.functional.linear(x, w_input, bias).reshape(batch * steps * 2, 4 * h)  # (B, T, 2, 4H) rows
        gates = _PermuteRows.apply(gates, to_frames, to_batch).view(2, steps, batch, 4 * h)
        device = x.device.type
        dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
        zeros = gates.new_zeros(2, batch, h, dtype=torch.float32)
        out, _, _ = run_recurrence(gates, zeros, zeros, torch.stack([fwd.weight_hh_l0, bwd.weight_hh_l0]), None,
                                   [batch] * steps, matmul_dtype=dtype)
        return _PermuteRows.apply(out.reshape(2 * steps * batch, h), to_batch, to_frames).view(batch, steps, 2 * h)
