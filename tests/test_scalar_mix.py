"""ScalarMix values, masked layer norm, fixed weights, the L2 penalty, and the Elmo module."""

import numpy as np
import pytest
import torch

from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.elmo import Elmo
from elmo_tasks.scalar_mix import ScalarMix


def constant_layers(values, shape=(2, 4, 3)):
    return torch.stack([torch.full(shape, float(v)) for v in values], dim=1)  # (B, L, T, D)


def test_initial_mix_is_the_average_with_gamma_one():
    mix = ScalarMix(3)
    assert torch.allclose(mix.normalized_weights(), torch.full((3,), 1 / 3))
    assert mix.gamma.item() == 1.0 and mix.weights.requires_grad and mix.gamma.requires_grad
    assert torch.allclose(mix(constant_layers([1, 2, 6])), torch.full((2, 4, 3), 3.0))


def test_mix_follows_the_softmax_of_the_weights_and_gamma():
    mix = ScalarMix(3)
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([0.0, 1.0, 2.0]))
        mix.gamma.fill_(2.0)
    s = np.exp([0.0, 1.0, 2.0]) / np.exp([0.0, 1.0, 2.0]).sum()
    expected = 2.0 * (s * np.array([1.0, 2.0, 6.0])).sum()
    assert torch.allclose(mix(constant_layers([1, 2, 6])), torch.full((2, 4, 3), float(expected)))
    # a list of layers works the same as the stacked tensor
    as_list = [torch.full((2, 4, 3), float(v)) for v in (1, 2, 6)]
    assert torch.allclose(mix(as_list), mix(constant_layers([1, 2, 6])))


@pytest.mark.parametrize("mode, expected", [("top", 6.0), ("average", 3.0), ("layer0", 1.0), ("layer1", 2.0)])
def test_fixed_weights_freeze_weights_and_gamma(mode, expected):
    mix = ScalarMix(3, fixed=mode)
    assert not mix.weights.requires_grad and not mix.gamma.requires_grad
    assert torch.allclose(mix(constant_layers([1, 2, 6])), torch.full((2, 4, 3), expected))


def test_bad_fixed_mode_is_refused():
    with pytest.raises(ValueError, match="unknown fixed mix"):
        ScalarMix(3, fixed="layer7")


def test_masked_layer_norm_uses_one_mean_and_variance_over_unmasked_elements():
    torch.manual_seed(0)
    layers = torch.randn(2, 3, 5, 4) * 3 + 1
    mask = torch.tensor([[1, 1, 1, 0, 0], [1, 1, 1, 1, 1]], dtype=torch.bool)
    out = ScalarMix(3, do_layer_norm=True, fixed="layer1")(layers, mask)
    valid = layers[:, 1][mask].numpy()  # (8, 4)
    expected = (layers[:, 1].numpy() - valid.mean()) / np.sqrt(valid.var() + 1e-13)
    assert np.allclose(out.numpy(), expected, atol=1e-5)
    # padding values do not move the statistics
    layers2 = layers.clone()
    layers2[0, :, 3:] = 1000.0
    out2 = ScalarMix(3, do_layer_norm=True, fixed="layer1")(layers2, mask)
    assert torch.allclose(out2[mask], out[mask], atol=1e-5)


def test_l2_penalty_on_the_weights_only():
    mix = ScalarMix(3, l2_coef=0.1)
    assert mix.penalty().item() == 0.0
    with torch.no_grad():
        mix.weights.copy_(torch.tensor([1.0, -2.0, 0.5]))
        mix.gamma.fill_(5.0)
    assert mix.penalty().item() == pytest.approx(0.1 * (1 + 4 + 0.25))
    mix.penalty().backward()
    assert torch.allclose(mix.weights.grad, 0.2 * torch.tensor([1.0, -2.0, 0.5]))


def test_the_mix_learns_to_pick_a_layer():
    torch.manual_seed(0)
    layers = torch.randn(8, 3, 6, 4)
    target = layers[:, 2] * 1.5
    mix = ScalarMix(3)
    optimizer = torch.optim.Adam(mix.parameters(), lr=0.1)
    for _ in range(300):
        optimizer.zero_grad()
        loss = ((mix(layers) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
    assert mix.normalized_weights()[2] > 0.95 and abs(mix.gamma.item() - 1.5) < 0.1


def test_elmo_returns_independent_representations_and_matches_cached_layers(elmo_fixtures):
    bilm = load_bilm(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5")
    elmo = Elmo(bilm, num_output_representations=2, dropout=0.5).eval()
    sentences = [["The", "cat", "sat", "."], ["Dogs", "bark"]]
    ids = batch_to_ids(sentences)
    out = elmo(ids)
    assert len(out.representations) == 2 and out.representations[0].shape == (2, 4, 32)
    assert out.mask.tolist() == [[True] * 4, [True, True, False, False]]
    with torch.no_grad():
        cached = bilm(ids)
        elmo.scalar_mixes[1].weights.fill_(0.0)
        elmo.scalar_mixes[1].weights[2] = 3.0
    again = elmo.mix(cached.layers, cached.mask)
    assert torch.allclose(again[0], out.representations[0], atol=1e-6)
    assert not torch.allclose(again[1], again[0], atol=1e-3)
    # gradients reach the mixes, never the frozen biLM
    elmo.train()
    loss = sum(r.sum() for r in elmo(ids).representations)
    loss.backward()
    assert elmo.scalar_mixes[0].weights.grad is not None
    assert all(p.grad is None and not p.requires_grad for p in bilm.parameters())
    # dropout is active in training mode only
    assert (elmo(ids).representations[0] == 0).float().mean() > 0.3
