"""The biLM's LSTM: a cell with a projected, clipped hidden state, stacked with residual connections.

Equations (gate order i, f, g, o; the forget-gate bias of +1 is folded into ``state_linear.bias``)::

    z   = input_linear(x_t) + state_linear(h_{t-1})
    c_t = clip(sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g), cell_clip)
    h_t = clip(projection(sigmoid(o) * tanh(c_t)), proj_clip)

``nn.LSTM(proj_size=...)`` has no clipping, so it cannot reproduce the public models exactly.

These are the plain, differentiable modules (training uses them). The inference engine runs the
same equations faster in ``elmo_tasks.bilm.fast_lstm``.
"""

from __future__ import annotations

import torch
from torch import nn

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
        The input half of the gates is computed for all timesteps in one matrix product.
        """
        h, c = state
        input_gates = self.input_linear(inputs)
        steps = []
        for t, n in enumerate(batch_sizes):
            gates = input_gates[:n, t] + self.state_linear(h[:n])
            i, f, g, o = gates.chunk(4, dim=1)
            c_new = torch.sigmoid(f) * c[:n] + torch.sigmoid(i) * torch.tanh(g)
            if self.cell_clip:
                c_new = c_new.clamp(-self.cell_clip, self.cell_clip)
            h_new = self.projection(torch.sigmoid(o) * torch.tanh(c_new))
            if self.proj_clip:
                h_new = h_new.clamp(-self.proj_clip, self.proj_clip)
            steps.append(h_new)
            if n == h.shape[0]:
                h, c = h_new, c_new
            else:  # finished rows keep their final state
                h = torch.cat([h_new, h[n:]])
                c = torch.cat([c_new, c[n:]])
        outputs = inputs.new_zeros(inputs.shape[0], inputs.shape[1], self.projection_dim)
        for t, step in enumerate(steps):
            outputs[: step.shape[0], t] = step
        return outputs, (h, c)


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
        outputs, finals = [], []
        x = inputs
        for index, (layer, state) in enumerate(zip(self.layers, states)):
            if dropout and self.training:
                x = nn.functional.dropout(x, dropout, training=True)
            out, final = layer(x, batch_sizes, state)
            if index > 0 and self.use_skip_connections:
                out = out + x
            outputs.append(out)
            finals.append(final)
            x = out
        return outputs, finals
