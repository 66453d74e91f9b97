"""The inference engine's fast paths against the plain (differentiable) ``BiLM`` and allennlp's golden fixtures.

Fast paths: the distinct-token, length-cut CNN with its bounded cache; the joint bidirectional
in-place LSTM (``fast_lstm.run_bidirectional``); the Embedder's length-sorted batching. Each is
held to the reference tests' bar: ``allclose(atol=1e-6)``.
"""

import copy

import h5py
import numpy as np
import pytest
import torch

from elmo_tasks.bilm import fast_lstm, fused_cnn, packed
from elmo_tasks.bilm.char_ids import batch_to_ids, token_to_char_ids
from elmo_tasks.bilm.fast_lstm import run_bidirectional
from elmo_tasks.bilm.inference import InferenceEngine, InferenceSettings
from elmo_tasks.bilm.lstm import LSTMStack
from elmo_tasks.bilm.model import BiLM, reverse_within_lengths
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.bilm.workers import run_pair
from elmo_tasks.embedder import Embedder

ATOL = 1e-6
# long tokens (43..60 bytes, multi-byte characters) exercise the full-width CNN chunk
ODD_TOKENS = ["a" * 41, "b" * 42, "c" * 43, "d" * 44, "e" * 48, "f" * 60, "日本語" * 9, "Résumé", "<S>", "</S>", "x"]


def load(elmo_fixtures, stateful=False):
    """The plain model."""
    return load_bilm(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5", stateful=stateful)


def engine(elmo_fixtures, stateful=False, **settings):
    """The fixture model run by the inference engine."""
    return InferenceEngine(load(elmo_fixtures, stateful), InferenceSettings(**settings))


def char_rows(tokens):
    return torch.tensor([token_to_char_ids(t) for t in tokens])


def run(model, sentences):
    with torch.no_grad():
        return model(batch_to_ids(sentences))


# -- token encoder ----------------------------------------------------------------------------------


def test_token_encoder_inference_path_matches_plain_path_and_fixture(elmo_fixtures):
    eng = engine(elmo_fixtures)
    vocab = (elmo_fixtures / "vocab_test.txt").read_text().splitlines()
    with h5py.File(elmo_fixtures / "elmo_token_embeddings.hdf5", "r") as handle:
        expected = torch.from_numpy(handle["embedding"][...])
    ids = char_rows(vocab + ODD_TOKENS)
    with torch.no_grad():
        plain = eng.bilm.token_encoder(ids)
        fast = eng.encode_tokens(ids)
        cached = eng.encode_tokens(ids)  # every row now comes from the cache
    assert eng.token_cache.hits >= len(set(vocab + ODD_TOKENS))
    assert torch.allclose(plain[: len(vocab)], expected, atol=ATOL)
    assert torch.allclose(fast[: len(vocab)], expected, atol=ATOL)
    assert torch.allclose(fast, plain, atol=ATOL)
    assert torch.equal(cached, fast)


def test_fused_cnn_runs_for_short_tokens_and_matches_the_plain_path(elmo_fixtures, monkeypatch):
    """The one-product CNN (``fused_cnn.encode_fused``) runs on chunks whose longest token leaves an
    all-padding tail (where the build has oneDNN's packed products; never otherwise); longer tokens
    take the per-filter path. Both equal the plain path."""
    fused_available = packed.ready(torch.device("cpu"))
    vocab = (elmo_fixtures / "vocab_test.txt").read_text().splitlines()
    with h5py.File(elmo_fixtures / "elmo_token_embeddings.hdf5", "r") as handle:
        expected = torch.from_numpy(handle["embedding"][...])
    calls = []
    original = fused_cnn.encode_fused
    monkeypatch.setattr(fused_cnn, "encode_fused",
                        lambda encoder, ids, fused: calls.append(ids.shape) or original(encoder, ids, fused))
    eng = engine(elmo_fixtures, token_cache_size=0)
    enc = eng.bilm.token_encoder
    with torch.no_grad():
        fast = eng.encode_tokens(char_rows(vocab))
        assert bool(calls) == fused_available and all(shape[1] <= 50 for shape in calls)
        calls.clear()
        long_only = eng.encode_tokens(char_rows(ODD_TOKENS[3:6]))  # 44..60 bytes + 2 marks: no all-padding tail
        assert torch.allclose(fast, expected, atol=ATOL)
        assert torch.allclose(fast, enc(char_rows(vocab)), atol=ATOL)
        assert torch.allclose(long_only, enc(char_rows(ODD_TOKENS[3:6])), atol=ATOL)
    assert calls == []  # the per-filter path ran for them


def test_a_tokens_vector_does_not_depend_on_its_batch():
    """A short token takes the fused product whatever else its batch holds: batched with a token too
    long for it (which takes the per-filter path), its vector is the one it gets alone (a group mixing
    both once went per-filter whole, 2.6e-6 apart on the default model; the token cache kept either).
    Without oneDNN's packed products every token takes the per-filter path, and the same holds."""
    eng = Embedder.from_dir().engine.set(token_cache_size=0)
    words = ["watch", "TV", "wrist", "Résumé", "x", "elephants", "I", "love"]
    with torch.no_grad():
        alone = torch.cat([eng.encode_tokens(char_rows([w])) for w in words])
        mixed = eng.encode_tokens(char_rows(words + ODD_TOKENS[:6]))
    assert (alone - mixed[:len(words)]).abs().max() <= 1e-7


def test_fused_cnn_on_the_standard_2048_filter_cnn():
    """The released shapes' CNN (7 widths, 2048 filters, 2 highways), random weights, real-length
    tokens (the longest, 40 bytes + 2 word marks, leaves the all-padding tail the fused CNN needs)."""
    torch.manual_seed(0)
    model = BiLM(BiLMOptions(lstm_dim=64, projection_dim=32, n_highway=2))
    eng = InferenceEngine(model, InferenceSettings(token_cache_size=0))
    words = ["a", "of", "the", "watch", "television", "characteristically", "Résumé", "日本語", "x" * 40]
    ids = char_rows(words)
    with torch.no_grad():
        fused = fused_cnn.fused_weights(model.token_encoder, eng.converted)
        assert (fused is not None) == packed.ready(torch.device("cpu"))
        got = eng.encode_tokens(ids)  # the fused product where available, else the per-filter path
        want = model.token_encoder(ids)
    assert torch.allclose(got, want, atol=1e-5, rtol=1e-5)


def test_duplicate_tokens_are_encoded_once_and_scattered_back(elmo_fixtures):
    eng = engine(elmo_fixtures)
    tokens = ["the", "cat", "the", "the", "sat", "cat"]
    with torch.no_grad():
        out = eng.encode_tokens(char_rows(tokens))
        assert eng.token_cache.misses == 3 and len(eng.token_cache) == 3
        assert torch.equal(out[0], out[2]) and torch.equal(out[0], out[3]) and torch.equal(out[1], out[5])
        assert torch.allclose(out, eng.bilm.token_encoder(char_rows(tokens)), atol=ATOL)


def test_token_cache_bound_and_lru_order(elmo_fixtures):
    eng = engine(elmo_fixtures, token_cache_size=8)
    enc, cache = eng.encode_tokens, eng.token_cache
    words = [f"word{i}" for i in range(30)]
    with torch.no_grad():
        first = enc(char_rows(words))  # more distinct tokens than the cache holds
        assert len(cache) == 8 and cache._table.shape[0] == 8
        cache.clear()
        for word in words:  # one at a time: the cache ends with words 22..29
            enc(char_rows([word]))
        assert len(cache) == 8 and cache._table.shape[0] == 8
        hits, misses = cache.hits, cache.misses
        enc(char_rows(["word22"]))  # a hit, and now the most recently used
        for i in range(100, 107):  # seven new words evict the seven least recently used: 23..29
            enc(char_rows([f"word{i}"]))
        enc(char_rows(["word22"]))
        assert (cache.hits, cache.misses) == (hits + 2, misses + 7)
        enc(char_rows(["word23"]))
        assert cache.misses == misses + 8 and len(cache) == 8
        again = enc(char_rows(words))
        assert torch.allclose(again, first, atol=ATOL)
        assert torch.allclose(again, eng.bilm.token_encoder(char_rows(words)), atol=ATOL)


def test_token_cache_is_dropped_when_the_weights_change(elmo_fixtures):
    eng = engine(elmo_fixtures)
    enc = eng.bilm.token_encoder
    ids = char_rows(["alpha", "beta"])
    with torch.no_grad():
        before = eng.encode_tokens(ids)
        enc.projection.bias.add_(1.0)  # an in-place update, as an optimiser step makes
        after = eng.encode_tokens(ids)
        assert torch.allclose(after, before + 1.0, atol=ATOL)
        assert torch.allclose(after, enc(ids), atol=ATOL)


def test_padded_rows_are_bounded_buckets():
    assert [packed.padded_rows(n) for n in (1, 16, 17, 31, 33, 63, 64, 65, 1000)] == [1, 16, 18, 32, 36, 64, 64, 72, 1024]
    for n in range(1, 5000):
        assert n <= packed.padded_rows(n) <= n * 9 / 8
    assert len({packed.padded_rows(n) for n in range(1, 4097)}) <= 16 + 8 * 8


def test_converted_lstm_weights_follow_in_place_updates(elmo_fixtures, fixture_sentences):
    """The inference path's packed (or low-precision) copies of the LSTM weights are remade after an
    in-place change to the weights, as an optimiser step makes between evaluations."""
    fast, plain = engine(elmo_fixtures), load(elmo_fixtures)
    sentences = [s.split() for s in fixture_sentences[0]]  # token lists (a list of strings is refused)
    run(fast, sentences)
    for model in (fast.bilm, plain):
        with torch.no_grad():
            model.backward_lstm.layers[1].state_linear.weight.mul_(1.5)
    got, want = run(fast, sentences).layers, run(plain, sentences).layers
    assert torch.allclose(got, want, atol=ATOL)
    # the converted copies live in the engine, not the model: it still deep-copies after inference
    copied = InferenceEngine(copy.deepcopy(fast.bilm))
    assert torch.equal(run(copied, sentences).layers, run(fast, sentences).layers)


def test_the_plain_model_is_differentiable(elmo_fixtures):
    model = load(elmo_fixtures)
    model.requires_grad_(True)
    enc = model.token_encoder
    vectors = enc(char_rows(["the", "cat", "the"]))
    assert vectors.requires_grad
    vectors.sum().backward()
    assert enc.highways[0].carry.weight.grad is not None
    out = model(batch_to_ids([["the", "cat"], ["sat"]]))
    assert out.layers.requires_grad
    out.layers.sum().backward()
    assert model.forward_lstm.layers[1].state_linear.weight.grad.abs().sum() > 0


# -- the joint bidirectional LSTM ---------------------------------------------------------------------


@pytest.mark.parametrize("products", ["packed", "float32"])
@pytest.mark.parametrize("skip,clip", [(True, 3.0), (False, None)])
def test_run_bidirectional_matches_two_plain_stacks(skip, clip, products, monkeypatch):
    """Both ways of doing the matrix products: oneDNN on prepacked weights (the CPU default where the
    build has oneDNN; a build without it falls back to ``torch.mm``) and plain ``torch.mm``."""
    store, use_packed = packed.ConvertedWeights(), products == "packed"
    expected_mode = products if packed.ready(torch.device("cpu")) else "float32"
    assert fast_lstm.Products(LSTMStack(1, 2, 3, None, None, False).layers[0], torch.float32,
                              torch.device("cpu"), store, use_packed).mode == expected_mode
    torch.manual_seed(0)
    p, c, n_layers = 6, 10, 2
    stacks = [LSTMStack(n_layers, p, c, clip, clip, skip) for _ in range(2)]
    for stack in stacks:
        for param in stack.parameters():
            torch.nn.init.normal_(param, std=0.6)  # large enough for the clips to bind
    # sorted, longest first; 45 rows, so that packed products pad 17..44 active rows up to a bucket
    lengths = torch.tensor([7, 7, 5, 2, 1] + sorted(torch.randint(1, 9, (40,)).tolist(), reverse=True))
    lengths = lengths.sort(descending=True).values
    batch, steps = len(lengths), int(lengths[0])
    x = torch.randn(batch, steps, p) * (torch.arange(steps) < lengths.unsqueeze(1)).unsqueeze(2)
    sizes = [int((lengths > t).sum()) for t in range(steps)]
    states = [(torch.randn(batch, p), torch.randn(batch, c)) for _ in range(2 * n_layers)]
    with torch.no_grad():
        fwd, fwd_final = stacks[0](x, sizes, states[:n_layers])
        bwd, bwd_final = stacks[1](reverse_within_lengths(x, lengths), sizes, states[n_layers:])
        inputs = torch.stack([x, reverse_within_lengths(x, lengths)], dim=2).transpose(0, 1).contiguous()
        outputs, finals = run_bidirectional(stacks[0], stacks[1], inputs, sizes, states, store, use_packed=use_packed)
    assert len(outputs) == n_layers
    for layer in range(n_layers):
        assert torch.allclose(outputs[layer][:, :, 0].transpose(0, 1), fwd[layer], atol=ATOL)
        assert torch.allclose(outputs[layer][:, :, 1].transpose(0, 1), bwd[layer], atol=ATOL)
    for got, want in zip(finals, fwd_final + bwd_final):
        assert torch.allclose(got[0], want[0], atol=ATOL) and torch.allclose(got[1], want[1], atol=ATOL)
    if clip:
        assert max(out.abs().max() for out in fwd) > 2.0  # the clip was reached somewhere


@pytest.mark.parametrize("use_packed", [True, False])
def test_run_bidirectional_in_bfloat16_stays_close_on_both_product_paths(use_packed):
    """bfloat16 products on oneDNN packed weights (where the CPU has the kernels) or ``torch.mm``:
    close to float32 (not equal), and the two paths agree to bfloat16 rounding."""
    cell = LSTMStack(1, 2, 3, None, None, False).layers[0]
    expected = "packed_low" if use_packed and packed.ready_low(torch.device("cpu"), torch.bfloat16) else "low"
    assert fast_lstm.Products(cell, torch.bfloat16, torch.device("cpu"), packed.ConvertedWeights(),
                              use_packed).mode == expected
    torch.manual_seed(1)
    p, c, n_layers = 16, 24, 2
    stacks = [LSTMStack(n_layers, p, c, 3.0, 3.0, True) for _ in range(2)]
    lengths = sorted(torch.randint(1, 9, (40,)).tolist(), reverse=True)
    batch, steps = len(lengths), lengths[0]
    x = torch.randn(steps, batch, 2, p) * (torch.arange(steps).unsqueeze(1) < torch.tensor(lengths)).view(steps, batch, 1, 1)
    sizes = [sum(1 for n in lengths if n > t) for t in range(steps)]
    states = [(torch.randn(batch, p), torch.randn(batch, c)) for _ in range(2 * n_layers)]
    with torch.no_grad():
        exact, _ = run_bidirectional(stacks[0], stacks[1], x, sizes, states, packed.ConvertedWeights())
        low, finals = run_bidirectional(stacks[0], stacks[1], x, sizes, states, packed.ConvertedWeights(),
                                        matmul_dtype=torch.bfloat16, use_packed=use_packed)
        other, _ = run_bidirectional(stacks[0], stacks[1], x, sizes, states, packed.ConvertedWeights(),
                                     matmul_dtype=torch.bfloat16, use_packed=not use_packed)
    assert all(out.dtype == torch.float32 for out in low) and finals[0][0].dtype == torch.float32
    for layer in range(n_layers):
        assert 1e-4 < float((low[layer] - exact[layer]).abs().max()) < 0.1
        assert float((low[layer] - other[layer]).abs().max()) < 0.1


# -- the whole biLM ---------------------------------------------------------------------------------


def test_stateless_fast_path_matches_plain_path_and_first_reference_batch(elmo_fixtures, fixture_sentences,
                                                                          expected_top_layers):
    fast, plain = engine(elmo_fixtures), load(elmo_fixtures)
    # all 30 sentences in one unsorted batch, plus an empty one and odd tokens
    sentences = [s.split() for k in range(3) for s in fixture_sentences[k]] + [[], ODD_TOKENS]
    got, want = run(fast, sentences), run(plain, sentences)
    assert torch.equal(got.mask, want.mask)
    assert torch.allclose(got.layers, want.layers, atol=ATOL)
    first = run(fast, [fixture_sentences[k][0].split() for k in range(3)])
    for k in range(3):
        n = len(fixture_sentences[k][0].split())
        assert np.allclose(first.layers[k, 2, :n].numpy(), expected_top_layers[k][0], atol=ATOL)


def test_extra_padding_columns_do_not_change_the_fast_path(elmo_fixtures):
    model = engine(elmo_fixtures)
    sentences = [["a", "short", "one"], ["and", "a", "slightly", "longer", "one"]]
    ids = batch_to_ids(sentences)
    padded = torch.cat([ids, torch.zeros(2, 3, 50, dtype=ids.dtype)], dim=1)
    with torch.no_grad():
        a, b = model(ids), model(padded)
    assert b.layers.shape == (2, 3, 8, 32) and b.layers[:, :, 5:].abs().max() == 0
    assert torch.allclose(b.layers[:, :, :5], a.layers, atol=ATOL)


def test_stateful_fast_path_reproduces_the_reference_and_the_plain_states(elmo_fixtures, fixture_sentences,
                                                                          expected_top_layers):
    fast, plain = engine(elmo_fixtures, stateful=True), load(elmo_fixtures, stateful=True)
    worst = 0.0
    for i in range(10):
        batch = [fixture_sentences[k][i].split() for k in range(3)]
        if i == 4:  # a smaller batch in between: only rows 0-1 are used and updated
            run(fast, batch[:2])
            run(plain, batch[:2])
        got = run(fast, batch)
        assert torch.allclose(got.layers, run(plain, batch).layers, atol=ATOL)
        for k in range(3):
            worst = max(worst, float(np.abs(got.layers[k, 2, : len(batch[k])].numpy() - expected_top_layers[k][i]).max()))
        for (h_fast, c_fast), (h_plain, c_plain) in zip(fast.bilm._states, plain._states):
            assert torch.allclose(h_fast, h_plain, atol=ATOL) and torch.allclose(c_fast, c_plain, atol=ATOL)
    # batch 4 ran after an extra call, so it no longer matches the reference; the others do
    assert worst > 1e-3
    fast.bilm.reset_states()
    for i in range(10):
        got = run(fast, [fixture_sentences[k][i].split() for k in range(3)])
        for k in range(3):
            n = len(fixture_sentences[k][i].split())
            assert np.allclose(got.layers[k, 2, :n].numpy(), expected_top_layers[k][i], atol=ATOL), (i, k)


def test_fast_path_on_a_random_model_without_skip_or_clipping():
    torch.manual_seed(1)
    options = BiLMOptions(lstm_dim=12, projection_dim=5, cell_clip=None, proj_clip=None, use_skip_connections=False,
                          char_embedding_dim=3, filters=[[1, 4], [3, 6]], n_highway=1)
    plain = BiLM(options).eval()
    fast = InferenceEngine(BiLM(options).eval())
    fast.bilm.load_state_dict(plain.state_dict())
    sentences = [["one"], ["two", "words"], [], ["three", "words", "here", "and", "more"]]
    assert torch.allclose(run(fast, sentences).layers, run(plain, sentences).layers, atol=ATOL)


# -- the Embedder's length-sorted batching ---------------------------------------------------------------


def test_embedder_sorts_by_length_and_restores_the_order(elmo_fixtures, fixture_sentences):
    sentences = [s.split() for k in range(3) for s in fixture_sentences[k]] + [[], ["one"]]
    sorted_embedder = Embedder(load(elmo_fixtures), batch_size=4)
    arrays = list(sorted_embedder.embed_sentences(sentences))
    assert len(arrays) == len(sentences)
    one_by_one = Embedder(load(elmo_fixtures), batch_size=1, settings=InferenceSettings(fast_forward=False))
    for sentence, array in zip(sentences, arrays):
        want = one_by_one.embed_batch([sentence])[0]
        assert array.shape == (3, len(sentence), 32)
        assert np.allclose(array, want, atol=ATOL)


# -- opt-in bfloat16 ------------------------------------------------------------------------------------


def test_bfloat16_precision_is_close_but_not_exact_and_validated(elmo_fixtures, fixture_sentences):
    sentences = [s.split() for s in fixture_sentences[0]]
    exact = run(engine(elmo_fixtures), sentences).layers
    model = engine(elmo_fixtures)
    model.set(precision="bfloat16")
    low = run(model, sentences).layers
    assert model.settings.precision == "bfloat16" and low.dtype == torch.float32
    diff = float((low - exact).abs().max())
    assert 1e-4 < diff < 0.1 * float(exact.abs().max())
    model.set(precision="float32")  # back to exact, and the token cache does not mix the two
    assert torch.allclose(run(model, sentences).layers, exact, atol=ATOL)
    with pytest.raises(ValueError, match="precision must be one of"):
        model.set(precision="float16")
    with pytest.raises(ValueError, match="precision must be one of"):
        InferenceSettings(precision="float16")


# -- the two workers -------------------------------------------------------------------------------------


@pytest.fixture()
def two_threads():
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    yield
    torch.set_num_threads(previous)


def test_run_pair_runs_both_jobs_on_half_the_threads_and_restores_them(two_threads):
    seen = []
    run_pair(lambda i: seen.append((i, torch.get_num_threads(), torch.is_grad_enabled())))
    assert sorted(seen) == [(0, 1, True), (1, 1, True)] and torch.get_num_threads() == 2
    with torch.inference_mode():
        run_pair(lambda i: seen.append(torch.is_inference_mode_enabled()))
    assert seen[-2:] == [True, True]

    def fail(i):
        if i == 1:
            raise ValueError("from the helper thread")

    with pytest.raises(ValueError, match="helper thread"):
        run_pair(fail)
    assert torch.get_num_threads() == 2


def test_two_workers_equal_one_thread(elmo_fixtures, fixture_sentences, two_threads):
    sentences = [s.split() for k in range(3) for s in fixture_sentences[k]]
    two = run(engine(elmo_fixtures), sentences).layers
    one_worker = run(engine(elmo_fixtures, workers=1), sentences).layers
    torch.set_num_threads(1)
    one = run(engine(elmo_fixtures), sentences).layers
    assert torch.allclose(one, two, atol=ATOL) and torch.allclose(one_worker, two, atol=ATOL)
