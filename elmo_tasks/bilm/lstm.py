"""The biLM's LSTM: a cell with a projected, clipped hidden state, stacked with residual connections.

Equations (gate order i, f, g, o; the forget-gate bias of +1 is folded into ``state_linear.bias``)::

    z   = input_linear(x_t) + state_linear(h_{t-1})
    c_t = clip(sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g), cell_clip)
    h_t = clip(projection(sigmoid(o) * tanh(c_t)), proj_clip)

``nn.LSTM(proj_size=...)`` has no clipping, so it cannot reproduce the public models exactly.

These are the plain, differentiable modules (training uses them): ``run_stacks`` runs both
directions at once, each layer as one product for the input half of the gates plus the recurrence
with a hand-written backward (``elmo_tasks.recurrence``). The inference engine runs the same
equations faster in ``elmo_tasks.bilm.fast_lstm``.
"""

from __future__ import annotations

import torch
from torch import nn

from elmo_tasks import modules
from elmo_tasks.recurrence import run_recurrence

State = tuple[torch.Tensor, torch.Tensor]  # (h: (B, P), c: (B, C))


class ProjectedLSTMLayer(nn.Module):
    """One direction of one layer. Sequences must be sorted by length, longest first."""

    def __init__(self, input_dim: int, cell_dim: int, projection_dim: int,
                 cell_clip: float | None = 3.0, proj_clip: float | None = 3.0) -> None:
        super().__init__()
        self.cell_dim = cell_dim
        self.projection_dim = projection_dim
        self.cell_clip = cell_clip
        self.proj_clip = proj_clip
        self.input_linear = nn.Linear(input_dim, 4 * cell_dim, bias=False)
        self.state_linear = nn.Linear(projection_dim, 4 * cell_dim, bias=True)
        self.projection = nn.Linear(cell_dim, projection_dim, bias=False)

    def forward(self, inputs: torch.Tensor, batch_sizes: list[int], state: State) -> tuple[torch.Tensor, State]:
        """Run over ``inputs`` (B, T, in); ``batch_sizes[t]`` rows are still active at step t.

        Returns the outputs (B, T, P), zero at padding, and each row's state after its last step.
        """
        outputs, finals = run_stacks([[self]], inputs.transpose(0, 1).unsqueeze(0), batch_sizes, [[state]],
                                     use_skip_connections=False)
        return outputs[0][0].transpose(0, 1), finals[0][0]


class LSTMStack(nn.Module):
    """``n_layers`` ProjectedLSTMLayers in one direction; layers >= 1 add their input (residual)."""

    def __init__(self, n_layers: int, dim: int, cell_dim: int, cell_clip: float | None,
                 proj_clip: float | None, use_skip_connections: bool) -> None:
        super().__init__()
        self.layers = nn.ModuleList(
            ProjectedLSTMLayer(dim, cell_dim, dim, cell_clip, proj_clip) for _ in range(n_layers)
        )
        self.use_skip_connections = use_skip_connections

    def forward(self, inputs: torch.Tensor, batch_sizes: list[int], states: list[State],
                dropout: float = 0.0) -> tuple[list[torch.Tensor], list[State]]:
        """Returns every layer's output (B, T, P) and every layer's final state.

        ``dropout`` (training only) is applied to each layer's input, before the residual as in the
        bilm-tf recipe, so the residual adds the dropped input.
        """
        outputs, finals = run_stacks([self.layers], inputs.transpose(0, 1).unsqueeze(0), batch_sizes, [states],
                                     dropout if self.training else 0.0, self.use_skip_connections)
        return [out[0].transpose(0, 1) for out in outputs], finals[0]


def run_stacks(stacks: list, inputs: torch.Tensor, batch_sizes: list[int], states: list[list[State]],
               dropout: float = 0.0, use_skip_connections: bool = True,
               ) -> tuple[list[torch.Tensor], list[list[State]]]:
    """Several stacks of the same shape (the two directions) at once, differentiably.

    ``stacks[d]`` lists stack d's ProjectedLSTMLayers; ``inputs`` (D, T, B, P) is time-major, one
    slice per stack (the backward stack's input already reversed); ``states[d]`` holds the initial
    (h, c) of stack d's layers. Returns each layer's output (D, T, B, P), residual included (layers
    >= 1) and 0 at padding, and ``finals[d][layer]``. ``dropout`` applies to each layer's input.

    Per layer: one matrix product gives the input half of the gates for every step and stack, then
    the recurrence runs on the stacked weights (``recurrence.run_recurrence``, a hand-written
    backward). Under bfloat16 autocast the products run in bfloat16; gates, states and the
    elementwise maths stay float32.
    """
    device = inputs.device.type
    matmul_dtype = torch.get_autocast_dtype(device) if torch.is_autocast_enabled(device) else torch.float32
    d_dirs, steps, batch = inputs.shape[:3]
    x = inputs
    outputs, finals = [], [[] for _ in stacks]
    for index in range(len(stacks[0])):
        cells = [layers[index] for layers in stacks]
        if dropout:
            x = modules.dropout(x, dropout)
        # the input half of the gates, bias included, for every step at once: (D, T*B, 4C)
        w_input = torch.stack([cell.input_linear.weight for cell in cells])
        bias = torch.stack([cell.state_linear.bias for cell in cells]).unsqueeze(1)
        gates = torch.baddbmm(bias, x.reshape(d_dirs, steps * batch, -1), w_input.transpose(1, 2))
        h0 = torch.stack([states[d][index][0] for d in range(d_dirs)])
        c0 = torch.stack([states[d][index][1] for d in range(d_dirs)])
        cell = cells[0]
        out, h, c = run_recurrence(gates.view(d_dirs, steps, batch, -1), h0, c0,
                                   torch.stack([cell.state_linear.weight for cell in cells]),
                                   torch.stack([cell.projection.weight for cell in cells]),
                                   batch_sizes, cell.cell_clip, cell.proj_clip, matmul_dtype)
        if index > 0 and use_skip_connections:
            out = out + x
        outputs.append(out)
        for d in range(d_dirs):
            finals[d].append((h[d], c[d]))
        x = out
    return outputs, finals
