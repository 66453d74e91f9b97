"""The biLM against allennlp's golden fixtures, and the state semantics.

The reference tests compare with ``numpy.allclose(..., atol=1e-6)`` (numpy's default rtol 1e-5);
we hold the same bar.
"""

import h5py
import numpy as np
import torch

from elmo_tasks.bilm.char_ids import batch_to_ids, token_to_char_ids
from elmo_tasks.bilm.weights import load_bilm

ATOL = 1e-6


def load(elmo_fixtures, stateful=False):
    return load_bilm(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5", stateful=stateful)


def run(model, sentences):
    with torch.no_grad():
        return model(batch_to_ids(sentences))


def test_token_encoder_matches_fixture_vocabulary(elmo_fixtures):
    model = load(elmo_fixtures)
    vocab = (elmo_fixtures / "vocab_test.txt").read_text().splitlines()
    with h5py.File(elmo_fixtures / "elmo_token_embeddings.hdf5", "r") as handle:
        expected = handle["embedding"][...]
    assert len(vocab) == expected.shape[0] == 458
    with torch.no_grad():
        got = model.token_encoder(torch.tensor([token_to_char_ids(t) for t in vocab])).numpy()
    assert np.allclose(got, expected, atol=ATOL)


def test_stateful_reproduces_all_ten_reference_batches(elmo_fixtures, fixture_sentences, expected_top_layers):
    model = load(elmo_fixtures, stateful=True)
    worst = 0.0
    for i in range(10):
        batch = [fixture_sentences[k][i].split() for k in range(3)]
        out = run(model, batch)
        assert out.mask.sum(dim=1).tolist() == [len(s) for s in batch]
        for k in range(3):
            got = out.layers[k, 2, : len(batch[k])].numpy()
            assert np.allclose(got, expected_top_layers[k][i], atol=ATOL), f"batch {i}, row {k}"
            worst = max(worst, float(np.abs(got - expected_top_layers[k][i]).max()))
    assert worst < 2e-6


def test_stateless_equals_the_first_reference_batch_and_differs_later(elmo_fixtures, fixture_sentences, expected_top_layers):
    model = load(elmo_fixtures)
    first = run(model, [fixture_sentences[k][0].split() for k in range(3)])
    for k in range(3):
        n = len(fixture_sentences[k][0].split())
        assert np.allclose(first.layers[k, 2, :n].numpy(), expected_top_layers[k][0], atol=ATOL)
    # later batches were produced with carried states, which a stateless model does not have
    second = run(model, [fixture_sentences[k][1].split() for k in range(3)])
    n = len(fixture_sentences[0][1].split())
    assert np.abs(second.layers[0, 2, :n].numpy() - expected_top_layers[0][1]).max() > 1e-3


def test_stateless_is_batch_invariant(elmo_fixtures, fixture_sentences):
    model = load(elmo_fixtures)
    sentences = [s.split() for s in fixture_sentences[0][:6]]
    alone = [run(model, [s]).layers[0] for s in sentences]
    together = run(model, sentences)
    shuffled_order = [4, 1, 5, 0, 3, 2]
    shuffled = run(model, [sentences[i] for i in shuffled_order])
    big = run(model, sentences * 3)
    for i, s in enumerate(sentences):
        n = len(s)
        ref = alone[i][:, :n]
        assert torch.allclose(together.layers[i, :, :n], ref, atol=ATOL)
        assert torch.allclose(shuffled.layers[shuffled_order.index(i), :, :n], ref, atol=ATOL)
        assert torch.allclose(big.layers[i + 6, :, :n], ref, atol=ATOL)
    # and it does not depend on what ran before
    again = run(model, [sentences[0]]).layers[0]
    assert torch.allclose(again, alone[0], atol=0)


def test_output_layers_shapes_mask_and_padding(elmo_fixtures):
    model = load(elmo_fixtures)
    out = run(model, [["a", "b", "c"], ["d"], []])
    assert out.layers.shape == (3, 3, 3, 32)
    assert out.mask.tolist() == [[True] * 3, [True, False, False], [False] * 3]
    assert out.layers[1, :, 1:].abs().max() == 0 and out.layers[2].abs().max() == 0
    # layer 0 is the token vector duplicated; it is context-free
    assert torch.equal(out.layers[0, 0, :, :16], out.layers[0, 0, :, 16:])
    assert torch.allclose(out.layers[0, 0, 0], run(model, [["a"]]).layers[0, 0, 0], atol=ATOL)
    # the LSTM layers are contextual
    assert not torch.allclose(out.layers[0, 2, 0], run(model, [["a"]]).layers[0, 2, 0], atol=1e-3)


def test_a_batch_of_only_empty_sentences(elmo_fixtures):
    out = run(load(elmo_fixtures), [[], []])
    assert out.layers.shape == (2, 3, 0, 32) and out.mask.shape == (2, 0)


def test_literal_boundary_strings_map_to_the_boundary_arrays(elmo_fixtures):
    # as in the references, the user string "<S>" is the sentence-begin token
    model = load(elmo_fixtures)
    with_literal = run(model, [["<S>", "hello"]]).layers[0, 0, 0]
    assert torch.allclose(with_literal[:16], model.token_encoder(torch.tensor([token_to_char_ids("<S>")]))[0], atol=ATOL)


def test_stateful_rows_grow_shrink_and_reset(elmo_fixtures, fixture_sentences):
    s = [fixture_sentences[0][0].split(), fixture_sentences[1][0].split(), fixture_sentences[2][0].split()]
    fresh = run(load(elmo_fixtures), [s[0]]).layers[0]
    model = load(elmo_fixtures, stateful=True)
    first = run(model, [s[0]]).layers[0]
    assert torch.allclose(first, fresh, atol=ATOL)  # a cold stateful model equals stateless
    warm = run(model, [s[0], s[1], s[2]])  # row 0 carries state, rows 1-2 are new (zero)
    n0 = len(s[0])
    assert not torch.allclose(warm.layers[0, :, :n0], fresh, atol=1e-4)
    alone1 = run(load(elmo_fixtures), [s[1]]).layers[0]
    n1 = len(s[1])
    assert torch.allclose(warm.layers[1, :, :n1], alone1[:, :n1], atol=ATOL)
    run(model, [s[0]])  # a smaller batch updates row 0 only; rows 1-2 keep their states
    assert model._states[0][0].shape[0] == 3
    model.reset_states()
    assert torch.allclose(run(model, [s[0]]).layers[0], fresh, atol=ATOL)
