"""The inference engine's LSTM: both directions of a ``BiLM`` at once, in place, no autograd.

The same equations as ``elmo_tasks.bilm.lstm`` (and equal to ``LSTMStack.forward`` run on each
direction up to float rounding); the two directions run concurrently (one worker thread each, see
``elmo_tasks.bilm.workers``), the input half of the gates is computed in a few large matrix
products, the matrix products run on weights prepacked for oneDNN (CPU, ``packed``) or cast to a
lower precision, and the elementwise work of each step is done in place.
"""

from __future__ import annotations

import torch

from elmo_tasks.bilm import packed
from elmo_tasks.bilm.lstm import LSTMStack, ProjectedLSTMLayer, State
from elmo_tasks.bilm.workers import run_pair

# rows (timesteps x batch rows) per matrix product for the input half of the gates: at 4096 cells a
# chunk's gates (16 MiB) stay under glibc's largest mmap threshold, so they are reused from the heap
# instead of being mapped and page-faulted anew per chunk (1024 rows: 1.2-1.4x slower in bfloat16)
INPUT_GATE_ROWS = 256


class Products:
    """The three matrix products of one cell, in one of four modes:

    * ``packed`` (float32 on a CPU with oneDNN): on weights prepacked for oneDNN
      (``elmo_tasks.bilm.packed``), the recurrent product fused with the add of the input gates;
      row counts are rounded up to buckets, the extra rows computed and dropped;
    * ``float32``: ``torch.mm``/``addmm`` on the weights as they are (GPUs, or builds without oneDNN);
    * ``packed_low`` (a lower ``dtype`` on a CPU whose oneDNN has kernels for it, ``packed.ready_low``):
      low-precision weights prepacked for oneDNN, rows bucketed as in ``packed``;
    * ``low`` (a lower ``dtype`` elsewhere): cached low-precision weight copies and ``torch.mm``.

    In both low modes each product's result is rounded to ``dtype`` and added to float32: gates,
    states and the elementwise maths stay float32.

    Converted weights are kept in ``store`` (the engine's); ``use_packed=False`` forbids packed mode.
    """

    def __init__(self, cell: ProjectedLSTMLayer, dtype: torch.dtype, device: torch.device,
                 store: packed.ConvertedWeights, use_packed: bool = True) -> None:
        self.bias = cell.state_linear.bias
        self.dtype = dtype
        if dtype != torch.float32:
            self.mode = "packed_low" if use_packed and packed.ready_low(device, dtype) else "low"
        else:
            self.mode = "packed" if use_packed and packed.ready(device) else "float32"
        weights = (cell.input_linear.weight, cell.state_linear.weight, cell.projection.weight)
        if self.mode == "packed":
            self.w_input, self.w_state, self.w_projection = store.get(
                cell, "packed", weights, lambda ws: tuple(packed.pack(w) for w in ws))
            return
        if self.mode == "packed_low":
            self.w_input, self.w_state, self.w_projection = store.get(
                cell, ("packed", dtype), weights, lambda ws: tuple(packed.pack(w.to(dtype)) for w in ws))
            return
        if self.mode == "low":
            weights = store.get(cell, dtype, weights, lambda ws: tuple(w.detach().to(dtype) for w in ws))
        self.w_input, self.w_state, self.w_projection = (w.t() for w in weights)

    def cast(self, x: torch.Tensor) -> torch.Tensor:
        return x.to(self.dtype) if self.mode in ("low", "packed_low") else x

    def rows(self, n: int, available: int) -> int:
        """How many rows to multiply when ``n`` are needed and ``available`` exist: ``n``, or in packed
        mode ``n`` rounded up to its bucket (``packed.padded_rows``) within ``available``."""
        return min(packed.padded_rows(n), available) if self.mode in ("packed", "packed_low") else n

    def input_gates(self, source: torch.Tensor) -> torch.Tensor:
        """``source @ W_input^T + bias`` (rows, 4C), a new float32 tensor."""
        if self.mode == "packed":
            return packed.linear(source, self.w_input, self.bias)
        if self.mode == "packed_low":
            return torch.add(packed.linear(source.to(self.dtype), self.w_input), self.bias)
        if self.mode == "low":
            return torch.add(torch.mm(source.to(self.dtype), self.w_input), self.bias)
        return torch.addmm(self.bias, source, self.w_input)

    def add_recurrent(self, gates: torch.Tensor, h: torch.Tensor) -> torch.Tensor:
        """``gates + h @ W_state^T``: in place, or (packed) fused into a new tensor that is returned."""
        if self.mode == "packed":
            return packed.linear_add(h, gates, self.w_state)
        if self.mode == "packed_low":
            return gates.add_(packed.linear(h, self.w_state))
        if self.mode == "low":
            return gates.add_(torch.mm(h, self.w_state))
        return gates.addmm_(h, self.w_state)

    def project(self, m: torch.Tensor, out: torch.Tensor) -> None:
        """``out = (m @ W_projection^T)[:len(out)]`` (``m`` may have extra rows in packed mode)."""
        if self.mode in ("packed", "packed_low"):
            out.copy_(packed.linear(m, self.w_projection)[: out.shape[0]])
        elif self.mode == "low":
            out.copy_(torch.mm(m, self.w_projection))
        else:
            torch.mm(m, self.w_projection, out=out)


@torch.no_grad()
def run_bidirectional(forward_stack: LSTMStack, backward_stack: LSTMStack, inputs: torch.Tensor | None,
                      batch_sizes: list[int], states: list[State], store: packed.ConvertedWeights,
                      matmul_dtype: torch.dtype = torch.float32,
                      token_rows: tuple[torch.Tensor, torch.Tensor] | None = None,
                      use_packed: bool = True, parallel: bool = True) -> tuple[list[torch.Tensor], list[State]]:
    """Both stacks over time-major ``inputs`` (T, B, 2, P): ``[:, :, 0]`` feeds the forward stack,
    ``[:, :, 1]`` the backward stack (already reversed within each row's length).

    Instead of ``inputs``, ``token_rows = (table, index)`` may give each position's input as a row of
    ``table`` (U, P), ``index`` (T, B, 2) (the distinct tokens of the batch): the first layer's input
    half of the gates is then computed once per distinct token and gathered.

    Rows must be sorted longest first; ``batch_sizes[t]`` rows are active at step t. ``states``
    lists the initial (h, c) of the forward layers, then the backward layers. Returns each layer's
    output (T, B, 2, P) in the same frames (residual included, 0 at padding) and the final states
    in the order of ``states``. Inference only (no autograd); equal to ``LSTMStack.forward`` run on
    each direction up to float rounding.

    The directions never meet (each layer reads the previous layer of its own direction), so each
    runs start to finish in its own worker thread (``workers.run_pair``; one after the other unless
    ``parallel``), writing its half of the shared output buffers. Converted weights are kept in
    ``store``; ``use_packed=False`` runs plain ``torch.mm``. ``matmul_dtype=torch.bfloat16`` runs
    the matrix products in bfloat16 (an opt-in speed/accuracy trade; results and states stay float32).
    """
    n_layers = len(forward_stack.layers)
    like = inputs if inputs is not None else token_rows[0]
    total_steps, batch = (inputs if inputs is not None else token_rows[1]).shape[:2]
    p_dim = forward_stack.layers[0].projection_dim
    outputs = [like.new_zeros(total_steps, batch, 2, p_dim) for _ in range(n_layers)]
    finals: list[State | None] = [None] * (2 * n_layers)

    def direction(d: int) -> None:
        stack = (forward_stack, backward_stack)[d]
        for index, cell in enumerate(stack.layers):
            source = (inputs[:, :, d] if inputs is not None else None) if index == 0 else outputs[index - 1][:, :, d]
            rows = token_rows if index == 0 and inputs is None else None
            finals[d * n_layers + index] = _run_cell(cell, source, rows, d, outputs[index][:, :, d], batch_sizes,
                                                     states[d * n_layers + index],
                                                     Products(cell, matmul_dtype, like.device, store, use_packed))
            if index > 0 and stack.use_skip_connections:
                outputs[index][:, :, d] += source

    run_pair(direction, parallel=parallel and like.device.type == "cpu")
    return outputs, finals  # type: ignore[return-value]


def _run_cell(cell: ProjectedLSTMLayer, source: torch.Tensor | None, token_rows: tuple[torch.Tensor, torch.Tensor] | None,
              d: int, out: torch.Tensor, batch_sizes: list[int], state: State, products: Products) -> State:
    """One direction of one layer over (T, B, P) ``source`` (or ``token_rows``), writing the pre-residual
    outputs into ``out`` (T, B, P); returns each row's state after its last step."""
    c_dim = cell.cell_dim
    batch = out.shape[1]
    steps = min(out.shape[0], len(batch_sizes))
    h0 = state[0].to(out.dtype)
    c = state[1].to(out.dtype).clone()
    m = out.new_zeros(batch, c_dim)
    distinct_gates = None
    if token_rows is not None:  # the input half of the gates once per distinct token, then gathered
        table, token_index = token_rows
        distinct_gates = products.input_gates(table)
    chunk = max(1, INPUT_GATE_ROWS // max(1, batch))
    for t0 in range(0, steps, chunk):
        t1 = min(steps, t0 + chunk)
        n0 = products.rows(batch_sizes[t0], batch)  # the rows past batch_sizes[t] are computed and ignored
        if distinct_gates is not None:
            gates = distinct_gates[token_index[t0:t1, :n0, d]]
        else:
            gates = products.input_gates(source[t0:t1, :n0].reshape(-1, source.shape[2])).view(t1 - t0, n0, 4 * c_dim)
        for t in range(t0, t1):
            n = batch_sizes[t]
            rows = products.rows(n, n0)
            z = products.add_recurrent(gates[t - t0, :rows], products.cast(out[t - 1, :rows] if t > 0 else h0[:rows]))[:n]
            # z: (n, 4C), gate order i, f, g, o
            z[:, : 2 * c_dim].sigmoid_()
            z[:, 2 * c_dim : 3 * c_dim].tanh_()
            z[:, 3 * c_dim :].sigmoid_()
            c_t = c[:n]
            c_t.mul_(z[:, c_dim : 2 * c_dim]).addcmul_(z[:, :c_dim], z[:, 2 * c_dim : 3 * c_dim])
            if cell.cell_clip:
                c_t.clamp_(-cell.cell_clip, cell.cell_clip)
            torch.tanh(c_t, out=m[:n]).mul_(z[:, 3 * c_dim :])
            h_t = out[t, :n]
            products.project(products.cast(m[:rows]), h_t)  # rows past n: stale, computed and dropped
            if cell.proj_clip:
                h_t.clamp_(-cell.proj_clip, cell.proj_clip)
    # each row's state after its last step: c stopped changing there; h is that step's output
    row_lengths = torch.tensor([sum(1 for n in batch_sizes if n > b) for b in range(batch)], device=out.device)
    h_final = out[(row_lengths - 1).clamp(min=0), torch.arange(batch, device=out.device)]
    h_final = torch.where((row_lengths > 0).unsqueeze(1), h_final, h0)
    return h_final, c
