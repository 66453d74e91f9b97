"""The projected, clipped LSTM recurrence with a hand-written backward pass, for training.

The equations are those of ``lstm.ProjectedLSTMLayer`` (gate order i, f, g, o)::

    z_t = gates_x[t] + h_{t-1} W_state^T          (gates_x: the input half, bias included)
    c_t = clip(sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g), cell_clip)
    h_t = clip((sigmoid(o) * tanh(c_t)) W_proj^T, proj_clip)

Autograd over a per-timestep loop records ~15 small operations per step and direction, and sums
the weight gradients step by step. Here a step is ~12 operations for *all* directions at once
(weights stacked on a leading direction axis D, one batched product each), the activations are
written into buffers allocated once per call, and the backward pass (truncated BPTT over the
window) collects the gradient of every step's gates and projection input so that the weight
gradients are two matrix products over all T x B rows instead of T accumulations.

Rows must be sorted longest first: ``batch_sizes[t]`` rows are active at step t; a row keeps its
state after its last step and its outputs there are 0, as in ``ProjectedLSTMLayer.forward``.
``matmul_dtype`` (e.g. bfloat16) runs the two products of each step in that type; the gates,
states, elementwise maths and gradients stay float32.
"""

from __future__ import annotations

import torch


def _clip_mask(x: torch.Tensor, clip: float | None) -> torch.Tensor | None:
    """Where ``clamp(x, -clip, clip)`` lets the gradient through (torch's rule: inside or on the bound)."""
    return None if not clip else (x >= -clip) & (x <= clip)


class LSTMRecurrence(torch.autograd.Function):
    """``apply(gates_x (D,T,B,4C), h0 (D,B,P), c0 (D,B,C), w_state (D,4C,P), w_proj (D,P,C), batch_sizes,
    cell_clip, proj_clip, matmul_dtype) -> (outputs (D,T,B,P), h_final (D,B,P), c_final (D,B,C))``."""

    @staticmethod
    def forward(ctx, gates_x, h0, c0, w_state, w_proj, batch_sizes, cell_clip, proj_clip, matmul_dtype):
        c_dim = c0.shape[-1]
        w_state_t = w_state.transpose(1, 2).to(matmul_dtype)  # (D, P, 4C)
        w_proj_t = w_proj.transpose(1, 2).to(matmul_dtype)  # (D, C, P)
        steps = gates_x.shape[1]
        gates = gates_x.detach().to(torch.float32, copy=True)  # becomes the activated gates, step by step
        cells = c0.new_zeros(c0.shape[0], steps, *c0.shape[1:])  # c_t before clipping
        tanh_cells = torch.zeros_like(cells)
        hidden_m = torch.zeros_like(cells)  # sigmoid(o) * tanh(c_t), the projection's input
        projected = h0.new_zeros(h0.shape[0], steps, *h0.shape[1:])  # h_t before clipping
        outputs = torch.zeros_like(projected)
        h, c = h0.detach().clone(), c0.detach().clone()  # each row's running state
        for t, n in enumerate(batch_sizes):
            z = gates[:, t, :n]
            _add_product(z, h[:, :n], w_state_t)
            z[..., : 2 * c_dim].sigmoid_()
            z[..., 2 * c_dim : 3 * c_dim].tanh_()
            z[..., 3 * c_dim :].sigmoid_()
            i, f, g, o = z.split(c_dim, dim=2)
            c_raw = torch.mul(f, c[:, :n], out=cells[:, t, :n]).addcmul_(i, g)
            _clamp_into(c[:, :n], c_raw, cell_clip)
            torch.mul(torch.tanh(c[:, :n], out=tanh_cells[:, t, :n]), o, out=hidden_m[:, t, :n])
            p = projected[:, t, :n]
            p.copy_(torch.bmm(hidden_m[:, t, :n].to(matmul_dtype), w_proj_t))
            _clamp_into(h[:, :n], p, proj_clip)
            outputs[:, t, :n] = h[:, :n]
        ctx.save_for_backward(h0, c0, w_state, w_proj, gates, cells, tanh_cells, hidden_m, projected, outputs)
        ctx.batch_sizes, ctx.clips, ctx.matmul_dtype = list(batch_sizes), (cell_clip, proj_clip), matmul_dtype
        return outputs, h, c

    @staticmethod
    def backward(ctx, d_outputs, d_h_final, d_c_final):
        h0, c0, w_state, w_proj, gates, cells, tanh_cells, hidden_m, projected, outputs = ctx.saved_tensors
        cell_clip, proj_clip = ctx.clips
        dtype = ctx.matmul_dtype
        c_dim = cells.shape[-1]
        w_state_low, w_proj_low = w_state.to(dtype), w_proj.to(dtype)  # (D,4C,P), (D,P,C)
        d_gates = torch.zeros_like(gates)  # d loss / d z_t
        d_projected = torch.zeros_like(projected)  # d loss / d (m_t W_proj^T), the clip's mask applied
        dh = d_h_final.clone()  # d loss / d (state after step t), for every row
        dc = d_c_final.clone()
        for t in range(len(ctx.batch_sizes) - 1, -1, -1):
            n = ctx.batch_sizes[t]
            i, f, g, o = gates[:, t, :n].split(c_dim, dim=2)
            tanh_c = tanh_cells[:, t, :n]
            dp = torch.add(dh[:, :n], d_outputs[:, t, :n], out=d_projected[:, t, :n])
            if proj_clip:
                dp.mul_(_clip_mask(projected[:, t, :n], proj_clip))
            dm = torch.bmm(dp.to(dtype), w_proj_low).float()  # d loss / d m_t
            dz = d_gates[:, t, :n]
            di, df, dg, do = dz.split(c_dim, dim=2)
            torch.mul(dm, tanh_c, out=do).mul_(o * (1 - o))
            # d c_t: from the state after this step and, through tanh(c_t), from m_t
            dct = dm.mul_(o).mul_(1 - tanh_c * tanh_c).add_(dc[:, :n])
            if cell_clip:
                dct.mul_(_clip_mask(cells[:, t, :n], cell_clip))
            c_prev = c0[:, :n] if t == 0 else _clamped(cells[:, t - 1, :n], cell_clip)
            torch.mul(dct, g, out=di).mul_(i * (1 - i))
            torch.mul(dct, c_prev, out=df).mul_(f * (1 - f))
            torch.mul(dct, i, out=dg).mul_(1 - g * g)
            dc[:, :n] = dct.mul_(f)
            dh[:, :n] = torch.bmm(dz.to(dtype), w_state_low)
        # the weight gradients: one product over every (step, row) each
        d_dirs, steps, batch = gates.shape[:3]
        h_prev = torch.cat([h0.unsqueeze(1), outputs], dim=1)[:, :steps]  # (D,T,B,P); dz is 0 past a row's end
        flat = lambda x: x.reshape(d_dirs, steps * batch, x.shape[-1])
        d_w_state = torch.bmm(flat(d_gates).transpose(1, 2), flat(h_prev))
        d_w_proj = torch.bmm(flat(d_projected).transpose(1, 2), flat(hidden_m))
        return d_gates, dh, dc, d_w_state, d_w_proj, None, None, None, None


def _add_product(z: torch.Tensor, h: torch.Tensor, w_t: torch.Tensor) -> None:
    """``z += h @ w_t`` (batched over directions), the product in ``w_t``'s type."""
    if w_t.dtype == z.dtype:
        z.baddbmm_(h, w_t)
    else:
        z.add_(torch.bmm(h.to(w_t.dtype), w_t))


def _clamp_into(out: torch.Tensor, x: torch.Tensor, clip: float | None) -> None:
    if clip:
        torch.clamp(x, -clip, clip, out=out)
    else:
        out.copy_(x)


def _clamped(x: torch.Tensor, clip: float | None) -> torch.Tensor:
    return x.clamp(-clip, clip) if clip else x


def run_recurrence(gates_x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_state: torch.Tensor,
                   w_proj: torch.Tensor, batch_sizes: list[int], cell_clip: float | None, proj_clip: float | None,
                   matmul_dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differentiable in every tensor argument; see ``LSTMRecurrence``. Runs with autocast off (the
    products' type is ``matmul_dtype``), on float32 gates and states (``gates_x`` may be bfloat16: it
    is copied to float32 once, and its gradient is cast back by autograd)."""
    with torch.autocast(gates_x.device.type, enabled=False):
        return LSTMRecurrence.apply(gates_x, h0.float(), c0.float(), w_state.float(), w_proj.float(),
                                    batch_sizes, cell_clip, proj_clip, matmul_dtype)
