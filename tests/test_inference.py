"""The inference engine's settings: every trick off equals the plain ``BiLM``, and each field
changes the path the engine takes (seen in its caches, its converted weights, its threads)."""

import dataclasses

import pytest
import torch

from elmo_tasks.bilm import packed, workers
from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.inference import InferenceEngine, InferenceSettings
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.embedder import Embedder

ATOL = 1e-6
PACKED = packed.ready(torch.device("cpu"))
PACKED_BF16 = packed.ready_low(torch.device("cpu"), torch.bfloat16)


def load(elmo_fixtures, stateful=False):
    return load_bilm(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5", stateful=stateful)


def sentences_of(fixture_sentences):
    return [s.split() for k in range(3) for s in fixture_sentences[k]] + [[], ["<S>", "x" * 60]]


def test_every_trick_off_equals_the_plain_forward(elmo_fixtures, fixture_sentences):
    model = load(elmo_fixtures)
    ids = batch_to_ids(sentences_of(fixture_sentences))
    with torch.no_grad():
        want = model(ids)
        off = InferenceEngine(model, InferenceSettings.every_trick_off())
        got = off(ids)
        plain = InferenceEngine(model, InferenceSettings(fast_forward=False))(ids)
    assert torch.equal(got.mask, want.mask)
    assert torch.allclose(got.layers, want.layers, atol=ATOL)
    assert len(off.token_cache) == 0 and off.converted.kinds() == []
    assert torch.equal(plain.layers, want.layers)  # the plain path is BiLM.forward itself


def test_stateful_engine_carries_the_same_states_as_the_plain_model(elmo_fixtures, fixture_sentences):
    plain, engine = load(elmo_fixtures, stateful=True), InferenceEngine(load(elmo_fixtures, stateful=True))
    for i in range(3):
        ids = batch_to_ids([fixture_sentences[k][i].split() for k in range(3)])
        with torch.no_grad():
            assert torch.allclose(engine(ids).layers, plain(ids).layers, atol=ATOL)
    for (h1, c1), (h2, c2) in zip(engine.bilm._states, plain._states):
        assert torch.allclose(h1, h2, atol=ATOL) and torch.allclose(c1, c2, atol=ATOL)


def run_with(elmo_fixtures, sentences, **changes):
    engine = InferenceEngine(load(elmo_fixtures), InferenceSettings(**changes))
    ids = batch_to_ids(sentences)
    with torch.no_grad():
        first, second = engine(ids), engine(ids)
    return engine, first, second


def test_token_cache_size_and_fast_forward_change_the_path(elmo_fixtures, fixture_sentences):
    sentences = sentences_of(fixture_sentences)
    cached, a, b = run_with(elmo_fixtures, sentences)
    assert cached.token_cache.hits > 0 and len(cached.token_cache) > 0 and torch.equal(a.layers, b.layers)
    uncached, c, _ = run_with(elmo_fixtures, sentences, token_cache_size=0)
    assert uncached.token_cache.hits == uncached.token_cache.misses == 0 and len(uncached.token_cache) == 0
    assert torch.allclose(c.layers, a.layers, atol=ATOL)
    plain, d, _ = run_with(elmo_fixtures, sentences, fast_forward=False)
    assert plain.token_cache.misses == 0 and plain.converted.kinds() == []
    assert torch.allclose(d.layers, a.layers, atol=ATOL)


def test_packed_products_fused_cnn_and_precision_change_the_converted_weights(elmo_fixtures, fixture_sentences):
    sentences = sentences_of(fixture_sentences)
    default, a, _ = run_with(elmo_fixtures, sentences)
    n_cells = 2 * 2  # two directions x two layers
    assert default.converted.kinds().count("packed") == (n_cells if PACKED else 0)
    assert default.converted.kinds().count("fused") == (1 if PACKED else 0)
    per_filter, b, _ = run_with(elmo_fixtures, sentences, fused_cnn=False)
    assert "fused" not in per_filter.converted.kinds()
    assert per_filter.converted.kinds().count("packed") == (n_cells if PACKED else 0)
    mm, c, _ = run_with(elmo_fixtures, sentences, packed_products=False)
    assert mm.converted.kinds() == []  # torch.mm on the weights as they are, and no fused CNN
    low, d, _ = run_with(elmo_fixtures, sentences, precision="bfloat16")
    assert low.converted.kinds() == [("packed", torch.bfloat16) if PACKED_BF16 else torch.bfloat16] * n_cells
    low_mm, e, _ = run_with(elmo_fixtures, sentences, precision="bfloat16", packed_products=False)
    assert low_mm.converted.kinds() == [torch.bfloat16] * n_cells  # torch.mm on bfloat16 copies
    for other in (b, c):
        assert torch.allclose(other.layers, a.layers, atol=ATOL)
    for low_layers in (d, e):
        assert 1e-4 < float((low_layers.layers - a.layers).abs().max()) < 0.05


def test_workers_setting_uses_the_helper_thread_or_not(elmo_fixtures, fixture_sentences, monkeypatch):
    submitted = []
    helper = workers._helper

    class Counting:
        def submit(self, job):
            submitted.append(job)
            return helper().submit(job)

    monkeypatch.setattr(workers, "_helper", lambda: Counting())
    previous = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        sentences = sentences_of(fixture_sentences)
        _, two, _ = run_with(elmo_fixtures, sentences, workers=2)
        assert len(submitted) > 0
        submitted.clear()
        _, one, _ = run_with(elmo_fixtures, sentences, workers=1)
        assert submitted == [] and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert torch.allclose(one.layers, two.layers, atol=ATOL)


def test_sort_by_length_orders_the_embedder_batches(elmo_fixtures, fixture_sentences):
    sentences = [s.split() for s in fixture_sentences[0]]
    by_length = Embedder(load(elmo_fixtures), batch_size=2)
    in_order = Embedder(load(elmo_fixtures), batch_size=2, settings=InferenceSettings(sort_by_length=False))
    sorted_run = list(by_length.embed_indexed(sentences))
    plain_run = list(in_order.embed_indexed(sentences))
    assert [i for i, _ in plain_run] == list(range(len(sentences)))
    lengths = [len(sentences[i]) for i, _ in sorted_run]
    assert lengths == sorted(lengths, reverse=True) and [i for i, _ in sorted_run] != list(range(len(sentences)))
    # a stateful model always runs in input order, whatever the setting
    stateful = Embedder(load(elmo_fixtures, stateful=True), batch_size=2)
    assert [i for i, _ in stateful.embed_indexed(sentences)] == list(range(len(sentences)))


def test_settings_are_validated_and_set_replaces_them(elmo_fixtures):
    with pytest.raises(ValueError, match="workers must be 1 or 2"):
        InferenceSettings(workers=3)
    with pytest.raises(ValueError, match="token_cache_size must be >= 0"):
        InferenceSettings(token_cache_size=-1)
    engine = InferenceEngine(load(elmo_fixtures))
    engine.set(token_cache_size=4, fused_cnn=False)
    assert engine.token_cache.capacity == 4
    assert dataclasses.asdict(engine.settings) == {**dataclasses.asdict(InferenceSettings()),
                                                   "token_cache_size": 4, "fused_cnn": False}
