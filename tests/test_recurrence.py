"""The fused LSTM recurrence (hand-written backward, directions batched) against the per-step autograd
loop it replaced, on random weights: outputs, final states and every gradient to 1e-5."""

from __future__ import annotations

import pytest
import torch

from elmo_tasks.bilm.lstm import LSTMStack, run_stacks


def reference_layer(layer, inputs, batch_sizes, state):
    """The plain path before the fused recurrence (base commit f8dac9d), step by step under autograd."""
    h, c = state
    input_gates = layer.input_linear(inputs)
    steps = []
    for t, n in enumerate(batch_sizes):
        gates = input_gates[:n, t] + layer.state_linear(h[:n])
        i, f, g, o = gates.chunk(4, dim=1)
        c_new = torch.sigmoid(f) * c[:n] + torch.sigmoid(i) * torch.tanh(g)
        if layer.cell_clip:
            c_new = c_new.clamp(-layer.cell_clip, layer.cell_clip)
        h_new = layer.projection(torch.sigmoid(o) * torch.tanh(c_new))
        if layer.proj_clip:
            h_new = h_new.clamp(-layer.proj_clip, layer.proj_clip)
        steps.append(h_new)
        if n == h.shape[0]:
            h, c = h_new, c_new
        else:
            h = torch.cat([h_new, h[n:]])
            c = torch.cat([c_new, c[n:]])
    outputs = inputs.new_zeros(inputs.shape[0], inputs.shape[1], layer.projection_dim)
    for t, step in enumerate(steps):
        outputs[: step.shape[0], t] = step
    return outputs, (h, c)


def reference_stack(stack, inputs, batch_sizes, states):
    outputs, finals, x = [], [], inputs
    for index, (layer, state) in enumerate(zip(stack.layers, states)):
        out, final = reference_layer(layer, x, batch_sizes, state)
        if index > 0 and stack.use_skip_connections:
            out = out + x
        outputs.append(out)
        finals.append(final)
        x = out
    return outputs, finals


def make_stack(seed, clip, p=6, c=10):
    torch.manual_seed(seed)
    stack = LSTMStack(2, p, c, clip, clip, True)
    with torch.no_grad():
        for parameter in stack.parameters():
            parameter.uniform_(-0.6, 0.6)  # large enough for the clips to bite
    return stack


def grads(modules, tensors):
    params = [p for m in modules for p in m.parameters()] + tensors
    return [p.grad.clone() for p in params]


@pytest.mark.parametrize("clip", [3.0, 0.5, None])
@pytest.mark.parametrize("batch_sizes", [[5, 5, 5, 5], [5, 5, 4, 2, 1, 1]])
def test_fused_pair_equals_per_step_autograd(clip, batch_sizes):
    b, steps, p, c = 5, len(batch_sizes), 6, 10
    stacks = [make_stack(1, clip), make_stack(2, clip)]
    torch.manual_seed(3)
    x = torch.randn(2, b, steps, p)
    states = [[(torch.randn(b, p) * 0.5, torch.randn(b, c) * 0.5) for _ in range(2)] for _ in range(2)]
    weight_out = torch.randn(2, 2, b, steps, p)  # a loss that reads every output and final state
    weight_h, weight_c = torch.randn(2, 2, b, p), torch.randn(2, 2, b, c)

    def loss_of(outputs, finals):
        total = sum((out * weight_out[d, k]).sum() for d in range(2) for k, out in enumerate(outputs[d]))
        total = total + sum((h * weight_h[d, k]).sum() + (cc * weight_c[d, k]).sum()
                            for d in range(2) for k, (h, cc) in enumerate(finals[d]))
        return total

    # reference: each direction on its own, step by step
    xr = x.clone().requires_grad_()
    ref = [reference_stack(stacks[d], xr[d], batch_sizes, states[d]) for d in range(2)]
    loss_of([r[0] for r in ref], [r[1] for r in ref]).backward()
    ref_grads = grads(stacks, [xr])
    for stack in stacks:
        stack.zero_grad()

    xf = x.clone().requires_grad_()
    outputs, finals = run_stacks([s.layers for s in stacks], xf.transpose(1, 2), batch_sizes, states)
    fused_outputs = [[out[d].transpose(0, 1) for out in outputs] for d in range(2)]
    for d in range(2):
        for k in range(2):
            assert torch.allclose(fused_outputs[d][k], ref[d][0][k], atol=1e-5), (d, k)
            assert torch.allclose(finals[d][k][0], ref[d][1][k][0], atol=1e-5)
            assert torch.allclose(finals[d][k][1], ref[d][1][k][1], atol=1e-5)
    for row, n in enumerate(batch_sizes):  # padding outputs are exactly 0
        assert (fused_outputs[0][0][n:, row] == 0).all()
    loss_of(fused_outputs, finals).backward()
    for fused, reference in zip(grads(stacks, [xf]), ref_grads):
        assert torch.allclose(fused, reference, atol=1e-5, rtol=1e-5), (fused - reference).abs().max()


def test_stack_forward_keeps_its_api_and_bfloat16_stays_close():
    stack = make_stack(4, 3.0)
    torch.manual_seed(5)
    x = torch.randn(3, 7, 6, requires_grad=True)
    states = [(torch.zeros(3, 6), torch.zeros(3, 10)) for _ in range(2)]
    outputs, _finals = stack(x, [3] * 7, states)
    ref_outputs, _ = reference_stack(stack, x, [3] * 7, states)
    assert outputs[1].shape == (3, 7, 6) and torch.allclose(outputs[1], ref_outputs[1], atol=1e-5)
    outputs[1].sum().backward()
    exact, x.grad = x.grad, None
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low, _ = stack(x, [3] * 7, states)
    assert low[1].dtype == torch.float32
    assert (low[1] - outputs[1]).abs().max() < 0.1  # bfloat16 products: close, not equal
    low[1].sum().backward()
    assert x.grad is not None and x.grad.dtype == torch.float32 and torch.isfinite(x.grad).all()
    assert (x.grad - exact).norm() < 0.05 * exact.norm()  # the bfloat16 gates' gradient, cast back, stays close


def test_golden_model_forward_and_gradients_equal_the_per_step_loop(elmo_fixtures, fixture_sentences, monkeypatch):
    """The allennlp fixture model through BiLM.forward (both directions fused) against the same model
    with each stack run by the per-step reference loop: layers and every gradient to 1e-5."""
    from elmo_tasks.bilm import model as model_module
    from elmo_tasks.bilm.char_ids import batch_to_ids
    from elmo_tasks.bilm.weights import load_bilm

    sentences = [s.split() for k in range(3) for s in fixture_sentences[k][:2]]
    ids = batch_to_ids(sentences)

    def run(use_reference: bool):
        model = load_bilm(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5").requires_grad_(True)
        if use_reference:
            def reference_run_stacks(stacks, inputs, batch_sizes, states, dropout=0.0, use_skip_connections=True):
                outputs, finals = [], []
                for d, layers in enumerate(stacks):
                    holder = type("Stack", (), {"layers": layers, "use_skip_connections": use_skip_connections})
                    outs, fin = reference_stack(holder, inputs[d].transpose(0, 1), batch_sizes, states[d])
                    outputs.append([o.transpose(0, 1) for o in outs])
                    finals.append(fin)
                return [torch.stack([outputs[0][k], outputs[1][k]]) for k in range(len(outputs[0]))], finals

            monkeypatch.setattr(model_module, "run_stacks", reference_run_stacks)
        layers = model(ids).layers
        monkeypatch.undo()
        torch.manual_seed(0)
        (layers * torch.randn_like(layers)).sum().backward()
        return layers.detach(), {name: p.grad.clone() for name, p in model.named_parameters() if p.grad is not None}

    fused, fused_grads = run(False)
    reference, reference_grads = run(True)
    assert (fused - reference).abs().max() < 1e-5
    assert fused_grads.keys() == reference_grads.keys() and len(fused_grads) > 10
    for name, grad in fused_grads.items():
        assert torch.allclose(grad, reference_grads[name], atol=1e-5, rtol=1e-5), name


def _reference_bilstm(lstm, x, mask):
    """The two-``nn.LSTM`` path of ``modules.BiLSTM`` (what runs on a GPU), for comparison."""
    from elmo_tasks.modules import reverse_within_lengths

    lengths = mask.sum(dim=1)
    for i, (fwd, bwd) in enumerate(zip(lstm.forward_layers, lstm.backward_layers)):
        if i:
            x = lstm.dropout(x)
        forward_out, _ = fwd(x)
        backward_out, _ = bwd(reverse_within_lengths(x, lengths))
        x = torch.cat([forward_out, reverse_within_lengths(backward_out, lengths)], dim=-1)
    return x * mask.unsqueeze(-1)


@pytest.mark.parametrize("layers,dropout,lengths", [(1, 0.0, [1]), (1, 0.0, [5, 3, 1]), (2, 0.3, [6, 6, 2]),
                                                    (3, 0.0, [4, 1])])
def test_fused_bilstm_equals_nn_lstm(layers, dropout, lengths):
    from elmo_tasks.modules import BiLSTM

    torch.manual_seed(0)
    lstm = BiLSTM(7, 5, layers=layers, dropout=dropout, fused=True)
    steps = max(lengths)
    mask = torch.tensor([[t < n for t in range(steps)] for n in lengths])
    x = torch.randn(len(lengths), steps, 7)
    results = []
    for run in (lstm.forward, lambda a, m: _reference_bilstm(lstm, a, m)):
        torch.manual_seed(1)  # the same dropout masks in both
        xi = x.clone().requires_grad_()
        out = run(xi, mask)
        (out * torch.linspace(-1, 1, out.numel()).view_as(out)).sum().backward()
        grads = [xi.grad] + [p.grad.clone() for p in lstm.parameters()]
        lstm.zero_grad()
        results.append((out.detach(), grads))
    (out_a, grads_a), (out_b, grads_b) = results
    torch.testing.assert_close(out_a, out_b, atol=1e-5, rtol=1e-5)
    for a, b in zip(grads_a, grads_b):
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)


def test_fused_bilstm_under_bfloat16_autocast():
    from elmo_tasks.modules import BiLSTM

    torch.manual_seed(0)
    lstm = BiLSTM(8, 6, layers=2, fused=True)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=torch.bool)
    x = torch.randn(2, 4, 8)
    reference = _reference_bilstm(lstm, x, mask)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        out = lstm(x, mask)
        out.float().sum().backward()
    assert torch.isfinite(lstm.forward_layers[0].weight_hh_l0.grad).all()
    assert (out.float() - reference).abs().max() < 0.05
    assert (out[1, 2:] == 0).all()
