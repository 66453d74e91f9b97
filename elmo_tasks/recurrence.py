"""The LSTM recurrence with a hand-written backward pass: the biLM trainer's and the task heads' BiLSTM.

One step, for every direction at once (weights stacked on a leading direction axis D; gate order
i, f, g, o, as ``nn.LSTM`` and the biLM's weights have them)::

    z_t = gates_x[t] + h_{t-1} W_state^T          (gates_x: the input half, bias included)
    c_t = clip(sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g), cell_clip)
    m_t = sigmoid(o) * tanh(c_t)
    h_t = clip(m_t W_proj^T, proj_clip)            (no W_proj: h_t = m_t, ``nn.LSTM``'s cell)

Autograd over a per-timestep loop records ~15 small operations per step and direction, and sums
the weight gradients step by step. Here a forward step is ~8 operations for *all* directions (one
batched product each), written into buffers allocated once per call. The backward pass first
turns the saved activations of every step into the derivatives' coefficients in a few operations
over the whole sequence, so that a backward step is one product and 5 elementwise operations; the
weight gradients are one matrix product over all T x B rows each instead of T accumulations.

Rows must be sorted longest first: ``batch_sizes[t]`` rows are active at step t; a row keeps its
state after its last step and its outputs there are 0 (all rows active: the task heads' case, whose
padding steps compute values no real token reads). ``matmul_dtype`` (e.g. bfloat16) runs the
products in that type, the gates' gradient is kept in it (what autocast would give the products
that read it); gates, states, outputs and elementwise maths stay float32.
"""

from __future__ import annotations

import torch


def _clip_mask(x: torch.Tensor, clip: float) -> torch.Tensor:
    """1 where ``clamp(x, -clip, clip)`` lets the gradient through (torch's rule: inside or on the bound), else 0."""
    return ((x >= -clip) & (x <= clip)).to(x.dtype)


def _row_ends(batch_sizes: list[int], batch: int, device: torch.device) -> torch.Tensor:
    """Each row's last active step (-1 for a row that is never active)."""
    counts = torch.tensor(batch_sizes, device=device)
    return (counts.unsqueeze(1) > torch.arange(batch, device=device)).sum(0) - 1


def _at_row_ends(steps: torch.Tensor, ends: torch.Tensor, before: torch.Tensor) -> torch.Tensor:
    """(D, B, X) values of ``steps`` (D, T, B, X) at each row's last step; ``before`` where it has none."""
    rows = torch.arange(ends.shape[0], device=ends.device)
    return torch.where((ends >= 0).view(1, -1, 1), steps[:, ends.clamp(min=0), rows], before)


class LSTMRecurrence(torch.autograd.Function):
    """``apply(gates_x (D,T,B,4C), h0 (D,B,P), c0 (D,B,C), w_state (D,4C,P), w_proj (D,P,C) or None,
    batch_sizes, cell_clip, proj_clip, matmul_dtype, needs_grad) -> (outputs (D,T,B,P), h_final (D,B,P),
    c_final (D,B,C))`` (P = C without ``w_proj``; ``needs_grad``: keep what the backward pass reads)."""

    @staticmethod
    def forward(ctx, gates_x, h0, c0, w_state, w_proj, batch_sizes, cell_clip, proj_clip, matmul_dtype, needs_grad):
        dirs, steps, batch, four_c = gates_x.shape
        c_dim, p_dim = four_c // 4, h0.shape[-1]
        low = matmul_dtype != torch.float32
        ragged = any(n != batch for n in batch_sizes)
        new = torch.zeros if ragged else torch.empty  # the weight gradients read every row: zeros where none ran
        f32 = dict(dtype=torch.float32, device=gates_x.device)
        # tanh(z) = 2 sigmoid(2 z) - 1: the g quarter is doubled (exactly) so that one sigmoid covers all four
        # gates (torch's CPU tanh costs 6x its sigmoid)
        scale = gates_x.new_ones(four_c, dtype=torch.float32)
        scale[2 * c_dim : 3 * c_dim] = 2.0
        w_state_t = (w_state * scale.unsqueeze(1)).transpose(1, 2).to(matmul_dtype)  # (D, P, 4C)
        w_proj_t = None if w_proj is None else w_proj.transpose(1, 2).to(matmul_dtype)  # (D, C, P)
        gates = torch.empty(dirs, steps, batch, four_c, **f32)  # time-major whatever the layout of gates_x
        torch.mul(gates_x.detach(), scale, out=gates)  # becomes [s_i, s_f, g, s_o], step by step
        cells = new(dirs, steps, batch, c_dim, **f32)  # c_t (clipped): the state
        raw_cells = new(dirs, steps, batch, c_dim, **f32) if cell_clip else cells  # before the clip
        tanh_cells = new(dirs, steps, batch, c_dim, **f32)
        outputs = new(dirs, steps, batch, p_dim, **f32)
        hidden_m = outputs if w_proj is None else new(dirs, steps, batch, c_dim, **f32)  # the projection's input
        projected = new(dirs, steps, batch, p_dim, **f32) if w_proj is not None and proj_clip else outputs
        # h_{t-1} of every step in the products' type (step 0: h0), for the products and the weight gradient
        h_prev = new(dirs, steps + 1, batch, p_dim, dtype=matmul_dtype, device=gates_x.device)
        h_prev[:, 0] = h0
        # the backward pass's coefficients, made while the step's values are in cache:
        # d z_t = [dc K_i, dc K_f, dc K_g, dm K_o] and d c_t = dm A + (d c_{t+1} f_{t+1}), dm = d m_t
        coef = new(dirs, steps, batch, four_c, **f32) if needs_grad else None
        a = new(dirs, steps, batch, c_dim, **f32) if needs_grad else None
        one, minus_one = gates.new_ones(()), gates.new_full((), -1.0)
        cut = (lambda x, n: x[:, :n]) if ragged else (lambda x, n: x)
        z_at, c_at, raw_at, tanh_at, out_at, m_at, p_at, hp_at = (
            x.unbind(1) for x in (gates, cells, raw_cells, tanh_cells, outputs, hidden_m, projected, h_prev))
        i_at, f_at, g_at, o_at = (x.unbind(1) for x in gates.split(c_dim, dim=3))
        if needs_grad:
            k_at, a_at = coef.unbind(1), a.unbind(1)
            ki_at, kf_at, kg_at, ko_at = (x.unbind(1) for x in coef.split(c_dim, dim=3))
        for t, n in enumerate(batch_sizes):
            z = cut(z_at[t], n)
            if low:
                z.add_(torch.bmm(cut(hp_at[t], n), w_state_t))
            else:
                z.baddbmm_(cut(hp_at[t], n), w_state_t)
            z.sigmoid_()
            i, f, g, o = cut(i_at[t], n), cut(f_at[t], n), cut(g_at[t], n), cut(o_at[t], n)
            torch.add(minus_one, g, alpha=2, out=g)  # tanh(z_g)
            c_prev = cut(c0 if t == 0 else c_at[t - 1], n)
            c = torch.mul(f, c_prev, out=cut(raw_at[t], n)).addcmul_(i, g)
            if cell_clip:
                c = torch.clamp(c, -cell_clip, cell_clip, out=cut(c_at[t], n))
            tanh_c = torch.mul(c, 2, out=cut(tanh_at[t], n)).sigmoid_()
            torch.add(minus_one, tanh_c, alpha=2, out=tanh_c)
            m = torch.mul(o, tanh_c, out=cut(m_at[t], n))
            if w_proj_t is not None:
                p = cut(p_at[t], n)
                p.copy_(torch.bmm(m.to(matmul_dtype), w_proj_t))
                if proj_clip:
                    torch.clamp(p, -proj_clip, proj_clip, out=cut(out_at[t], n))
            if low or w_proj_t is not None:
                cut(hp_at[t + 1], n).copy_(cut(out_at[t], n))
            else:
                cut(hp_at[t + 1], n).copy_(m)
            if needs_grad:
                torch.addcmul(z, z, z, value=-1, out=cut(k_at[t], n))  # s (1 - s), the sigmoids' derivatives
                cut(ki_at[t], n).mul_(g)
                cut(kf_at[t], n).mul_(c_prev)
                torch.addcmul(one, g, g, value=-1, out=cut(kg_at[t], n)).mul_(i)
                cut(ko_at[t], n).mul_(tanh_c)
                torch.addcmul(one, tanh_c, tanh_c, value=-1, out=cut(a_at[t], n)).mul_(o)
        if ragged:
            ends = _row_ends(batch_sizes, batch, gates_x.device)
            h_final, c_final = _at_row_ends(outputs, ends, h0), _at_row_ends(cells, ends, c0)
        else:
            ends = None
            h_final, c_final = outputs[:, -1].clone(), cells[:, -1].clone()
        if needs_grad:
            carry_factor = gates[..., c_dim : 2 * c_dim]  # f_t: d c_{t-1} = d c_t f_t, then the clip of c_{t-1}
            cell_mask = None
            if cell_clip:
                cell_mask = _clip_mask(raw_cells, cell_clip)
                a.mul_(cell_mask)
                carry_factor = carry_factor.clone()
                carry_factor[:, 1:].mul_(cell_mask[:, :-1])
            p_mask = _clip_mask(projected, proj_clip) if w_proj is not None and proj_clip else None
            ctx.save_for_backward(c0, w_state, w_proj, coef, a, carry_factor, cell_mask, p_mask,
                                  hidden_m if w_proj is not None else None, h_prev)
        ctx.batch_sizes, ctx.matmul_dtype, ctx.ends = list(batch_sizes), matmul_dtype, ends
        return outputs, h_final, c_final

    @staticmethod
    def backward(ctx, d_outputs, d_h_final, d_c_final):
        c0, w_state, w_proj, coef, a, carry_factor, cell_mask, p_mask, hidden_m, h_prev = ctx.saved_tensors
        dtype, batch_sizes = ctx.matmul_dtype, ctx.batch_sizes
        dirs, steps, batch, four_c = coef.shape
        c_dim = four_c // 4
        ragged = ctx.ends is not None
        cut = (lambda x, n: x[:, :n]) if ragged else (lambda x, n: x)
        w_state_low = w_state.to(dtype)  # (D, 4C, P)
        w_proj_low = None if w_proj is None else w_proj.to(dtype)  # (D, P, C)
        carry = d_c_final.float().clone()  # d loss / d c_t from step t + 1 (or the final state), every row
        if cell_mask is not None:
            carry.mul_(_at_row_ends(cell_mask, ctx.ends, carry.new_ones(()).expand_as(carry)) if ragged
                       else cell_mask[:, -1])
        d_out = d_outputs.float()
        if p_mask is not None:
            d_out = d_out * p_mask
        new = torch.zeros if ragged else torch.empty
        d_gates = new(dirs, steps, batch, four_c, dtype=dtype, device=coef.device)
        d_projected = None if w_proj is None else new(dirs, steps, batch, w_proj.shape[1], device=coef.device)
        dm_buffer, dc_buffer = torch.empty_like(carry), torch.empty_like(carry)
        dh = d_h_final.float().clone()  # d loss / d h_t from step t + 1 (or the final state), every row
        dz_at, k_at, a_at, f_at, dout_at = (x.unbind(1) for x in (d_gates, coef, a, carry_factor, d_out))
        gate_grads = [x.unbind(1) for x in d_gates.split(c_dim, dim=3)]
        gate_coefs = [x.unbind(1) for x in coef.split(c_dim, dim=3)]
        dp_at = d_projected.unbind(1) if d_projected is not None else None
        pm_at = p_mask.unbind(1) if p_mask is not None else None
        for t in range(steps - 1, -1, -1):
            n = batch_sizes[t]
            rec = cut(dh, n)
            if w_proj_low is not None:
                dp = cut(dp_at[t], n)
                if pm_at is not None:
                    torch.addcmul(cut(dout_at[t], n), rec, cut(pm_at[t], n), out=dp)
                else:
                    torch.add(cut(dout_at[t], n), rec, out=dp)
                dm = torch.bmm(dp.to(dtype), w_proj_low)
            else:
                dm = torch.add(cut(dout_at[t], n), rec, out=cut(dm_buffer, n))
            dc = torch.addcmul(cut(carry, n), dm, cut(a_at[t], n), out=cut(dc_buffer, n))  # d loss / d c_t (raw)
            for k in range(3):  # i, f, g
                torch.mul(dc, cut(gate_coefs[k][t], n), out=cut(gate_grads[k][t], n))
            torch.mul(dm, cut(gate_coefs[3][t], n), out=cut(gate_grads[3][t], n))
            torch.mul(dc, cut(f_at[t], n), out=cut(carry, n))
            if ragged:
                dh[:, :n] = torch.bmm(dz_at[t][:, :n], w_state_low)
            else:
                dh = torch.bmm(dz_at[t], w_state_low)
        # the weight gradients: one product over every (step, row) each (d_gates is 0 past a row's end);
        # (h^T dz)^T runs twice as fast as dz^T h here (no copy of the transposed gradient)
        flat = lambda x: x.reshape(dirs, -1, x.shape[-1])
        d_w_state = torch.bmm(flat(h_prev[:, :-1]).transpose(1, 2), flat(d_gates)).transpose(1, 2).float()
        d_w_proj = None
        if w_proj is not None:
            d_w_proj = torch.bmm(flat(hidden_m).to(dtype).transpose(1, 2), flat(d_projected).to(dtype)).transpose(1, 2).float()
        return d_gates, dh.float(), carry, d_w_state, d_w_proj, None, None, None, None, None


def run_recurrence(gates_x: torch.Tensor, h0: torch.Tensor, c0: torch.Tensor, w_state: torch.Tensor,
                   w_proj: torch.Tensor | None, batch_sizes: list[int], cell_clip: float | None = None,
                   proj_clip: float | None = None, matmul_dtype: torch.dtype = torch.float32,
                   ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Differentiable in every tensor argument; see ``LSTMRecurrence``. Runs with autocast off (the
    products' type is ``matmul_dtype``), on float32 gates and states (``gates_x`` may be bfloat16: it
    is copied to float32 once, and its gradient comes back in ``matmul_dtype``)."""
    tensors = (gates_x, h0, c0, w_state, w_proj)
    needs_grad = torch.is_grad_enabled() and any(x is not None and x.requires_grad for x in tensors)
    with torch.autocast(gates_x.device.type, enabled=False):
        return LSTMRecurrence.apply(gates_x, h0.float(), c0.float(), w_state.float(),
                                    None if w_proj is None else w_proj.float(),
                                    batch_sizes, cell_clip, proj_clip, matmul_dtype, needs_grad)
