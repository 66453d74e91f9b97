"""The rest of the AllenNLP surface: the character mapper and indexer, ``_ElmoCharacterEncoder``,
``_ElmoBiLm`` and its vocabulary cache, ``ElmoTokenEmbedder``, ``keep_sentence_boundaries``, ``module=``,
the reset path, the defaults, ``embed-file --forget-sentences`` and TF-Hub's model names. Values
come from AllenNLP's golden fixtures and from simple-elmo-pytorch (AllenNLP's own Elmo code)."""

from __future__ import annotations

import json
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from elmo_tasks.cli import main
from elmo_tasks.compat import tfhub as hub
from elmo_tasks.compat.allennlp import (
    ConfigurationError,
    Elmo,
    ELMoCharacterMapper,
    ElmoEmbedder,
    ELMoTokenCharactersIndexer,
    ElmoTokenEmbedder,
    Token,
    _ElmoBiLm,
    _ElmoCharacterEncoder,
    add_sentence_boundary_token_ids,
    batch_to_ids,
    remove_sentence_boundaries,
)
from elmo_tasks.embedder import Embedder
from elmo_tasks.errors import UserError

ELMO = Path(__file__).parent / "fixtures" / "elmo"
OPTIONS, WEIGHTS = str(ELMO / "options.json"), str(ELMO / "lm_weights.hdf5")
SENTENCES = [["The", "sentence", "."], ["ELMo", "helps", "disambiguate", "ELMo", "from", "Elmo", "."], ["Hi"]]


def padded(ids: list[int]) -> list[int]:
    return ids + [261] * (50 - len(ids))


def test_character_mapper_gives_allennlps_ids():
    mapper = ELMoCharacterMapper()
    assert mapper.convert_word_to_char_ids("<S>") == padded([259, 257, 260])
    assert mapper.convert_word_to_char_ids("</S>") == padded([259, 258, 260])
    assert mapper.convert_word_to_char_ids("the") == padded([259, 117, 105, 102, 260])
    assert mapper.convert_word_to_char_ids("") == padded([259, 260])
    assert mapper.convert_word_to_char_ids(chr(256) + "t") == padded([259, 197, 129, 117, 260])
    assert mapper.convert_word_to_char_ids("x" * 60) == [259] + [121] * 48 + [260]  # 48 bytes kept
    assert ELMoCharacterMapper.beginning_of_sentence_characters == [258, 256, 259] + [260] * 47  # raw ids
    assert ELMoCharacterMapper.end_of_sentence_characters == [258, 257, 259] + [260] * 47
    assert (ELMoCharacterMapper.bos_token, ELMoCharacterMapper.eos_token, ELMoCharacterMapper.max_word_length) == (
        "<S>", "</S>", 50)
    special = ELMoCharacterMapper(tokens_to_add={"<first>": 1, "<S>": 5})
    assert special.convert_word_to_char_ids("<first>") == padded([259, 2, 260])
    assert special.convert_word_to_char_ids("<S>") == padded([259, 6, 260])  # added tokens come first, as in AllenNLP
    assert special == ELMoCharacterMapper({"<first>": 1, "<S>": 5}) and special != mapper
    with pytest.raises(UserError, match=r"tokens_to_add\['<x>'\] = 300"):
        ELMoCharacterMapper({"<x>": 300})


def test_character_mapper_matches_the_reference_on_hard_words():
    reference = pytest.importorskip("simple_elmo_pytorch.data.elmo_indexer").ELMoCharacterMapper()
    words = ["the", "<S>", "</S>", "", "x" * 60, "é" * 30, "日本語", "\ud800x", "<s>", " ", "a\tb"]
    for word in words:
        assert ELMoCharacterMapper().convert_word_to_char_ids(word) == reference.convert_word_to_char_ids(word), word


def test_indexer_gives_batch_to_ids_rows():
    indexer = ELMoTokenCharactersIndexer()
    indices = indexer.tokens_to_indices([Token("Second"), Token("."), "ELMo"], None, "elmo")
    assert list(indices) == ["elmo"] and len(indices["elmo"]) == 3
    tensor = indexer.as_padded_tensor(indices, desired_num_tokens={"elmo": 5}, padding_lengths={})["elmo"]
    assert tensor.dtype == torch.long and tensor.shape == (5, 50)
    assert torch.equal(tensor, batch_to_ids([["Second", ".", "ELMo", "x", "y"]])[0] * (torch.arange(5) < 3)[:, None])
    assert indexer.as_padded_tensor(indices, {"elmo": 2}, {})["elmo"].shape == (2, 50)  # cut, as AllenNLP pads or cuts
    assert indexer.get_padding_token() == [0] * 50 and indexer.get_padding_lengths([1]) == {}
    with pytest.raises(UserError, match="keep their text"):
        indexer.tokens_to_indices([Token(None)], None, "elmo")


def test_character_encoder_reproduces_allennlps_token_embeddings():
    words = (ELMO / "vocab_test.txt").read_text().strip().split("\n")
    with h5py.File(ELMO / "elmo_token_embeddings.hdf5", "r") as handle:
        expected = handle["embedding"][...]
    batch = batch_to_ids([words[k : k + 50] for k in range(0, len(words), 50)])  # (10, 50, 50), last row padded
    for requires_grad in (False, True):
        encoder = _ElmoCharacterEncoder(OPTIONS, WEIGHTS, requires_grad=requires_grad)
        out = encoder(batch)
        assert out["token_embedding"].shape == (10, 52, 16) and out["mask"].shape == (10, 52)
        words_only, mask = remove_sentence_boundaries(out["token_embedding"], out["mask"])
        np.testing.assert_allclose(words_only[mask].detach().numpy(), expected, atol=1e-6, rtol=0)
        assert out["mask"].sum().item() == len(words) + 20 and out["token_embedding"][-1, len(words) - 450 + 2 :].abs().sum() == 0
    bos = encoder(batch_to_ids([["<S>"]]))["token_embedding"][0]
    torch.testing.assert_close(bos[0], bos[1])  # the added <S> is the <S> token's vector
    out["token_embedding"].sum().backward()
    assert encoder._bilm.token_encoder.projection.weight.grad is not None
    assert encoder.get_output_dim() == 16


def test_boundary_helpers_are_inverses():
    ids = batch_to_ids(SENTENCES)
    lengths = torch.tensor([len(s) for s in SENTENCES])
    mask = torch.arange(ids.shape[1])[None] < lengths[:, None]
    with_ids, new_mask = add_sentence_boundary_token_ids(ids, mask, torch.tensor(ELMoCharacterMapper().
                                                         convert_word_to_char_ids("<S>")), torch.zeros(50))
    assert with_ids.shape == (3, 9, 50) and new_mask.sum(dim=1).tolist() == [5, 9, 3]
    back, back_mask = remove_sentence_boundaries(with_ids, new_mask)
    assert torch.equal(back, ids) and torch.equal(back_mask, mask)


def test_elmo_bilm_keeps_boundaries_as_the_reference():
    reference_module = pytest.importorskip("simple_elmo_pytorch.models.elmo")
    ids = batch_to_ids(SENTENCES + [[]])
    with torch.no_grad():
        reference = reference_module.ElmoBiLmSentence(OPTIONS, WEIGHTS)(ids)
    ours = _ElmoBiLm(OPTIONS, WEIGHTS)(ids)
    assert torch.equal(ours["mask"], reference["mask"].bool()) and ours["mask"].shape == (4, 9)
    assert ours["mask"][3].tolist() == [True, True] + [False] * 7  # an empty sentence keeps <S> </S>
    for got, want in zip(ours["activations"], reference["activations"]):
        assert got.shape == (4, 9, 32)
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=0)
    plain = Embedder.from_files(OPTIONS, WEIGHTS).layers(SENTENCES + [[]])  # this toolkit's layout, boundaries dropped
    for layer in range(3):
        inner, mask = remove_sentence_boundaries(ours["activations"][layer], ours["mask"])
        assert torch.equal(mask, plain.mask)
        np.testing.assert_allclose(inner.numpy(), plain.layers[:, layer].numpy(), atol=1e-6, rtol=0)


def test_stateful_elmo_bilm_reproduces_the_golden_fixtures_and_resets(fixture_sentences, expected_top_layers):
    bilm = _ElmoBiLm(OPTIONS, WEIGHTS, stateful=True)
    for i in range(10):
        batch = [fixture_sentences[k][i].split() for k in range(3)]
        out = bilm(batch_to_ids(batch))
        top, _ = remove_sentence_boundaries(out["activations"][2], out["mask"])
        for k in range(3):
            np.testing.assert_allclose(top[k, : len(batch[k])].numpy(), expected_top_layers[k][i], atol=1e-5, rtol=0)
    first = [fixture_sentences[k][0].split() for k in range(3)]
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, stateful=True)
    fresh = elmo(batch_to_ids(first))["elmo_representations"][0]
    carried = elmo(batch_to_ids(first))["elmo_representations"][0]
    assert (carried - fresh).abs().max() > 1e-3  # the state was carried
    elmo.reset_states(torch.tensor([False, True, False]))  # AllenNLP's per-row reset
    partial = elmo(batch_to_ids(first))["elmo_representations"][0]
    torch.testing.assert_close(partial[1], fresh[1], atol=1e-6, rtol=0)
    assert (partial[0] - fresh[0]).abs().max() > 1e-3
    elmo._elmo_lstm._elmo_lstm.reset_states()  # AllenNLP's private path, as user scripts call it
    torch.testing.assert_close(elmo(batch_to_ids(first))["elmo_representations"][0], fresh, atol=1e-6, rtol=0)


def vocabulary_and_ids(vocab_sentences, sentences):
    """AllenNLP's layout: padding, unknown, then the words; ids of ``sentences`` (unknown -> 1)."""
    words = ["@@PADDING@@", "@@UNKNOWN@@"] + sorted({w for s in vocab_sentences for w in s})
    index = {w: i for i, w in enumerate(words)}
    width = max(len(s) for s in sentences)
    ids = torch.tensor([[index.get(w, 1) for w in s] + [0] * (width - len(s)) for s in sentences])
    return words, ids


@pytest.mark.parametrize("requires_grad", [False, True])
def test_vocab_to_cache_looks_word_ids_up(monkeypatch, requires_grad):
    words, word_ids = vocabulary_and_ids(SENTENCES, SENTENCES)
    chars = batch_to_ids(SENTENCES)
    cached = _ElmoBiLm(OPTIONS, WEIGHTS, requires_grad=requires_grad, vocab_to_cache=words)
    uncached = _ElmoBiLm(OPTIONS, WEIGHTS)
    expected = uncached(chars)
    table = cached._word_embedding.weight
    assert table.shape == (len(words), 16) and table[0].abs().sum() == 0 and table.requires_grad == requires_grad
    encoded = []  # every call into the character CNN, by number of tokens
    monkeypatch.setattr(cached._engine, "encode_tokens", lambda ids: encoded.append(len(ids)) or uncached._engine.encode_tokens(ids))
    cached._elmo_lstm.token_encoder.register_forward_hook(lambda module, args, out: encoded.append(len(args[0])))
    for char_ids in (chars, torch.zeros_like(chars)):  # with character ids, and with word ids alone
        out = cached(char_ids, word_ids)
        assert torch.equal(out["mask"], expected["mask"]) and encoded == []  # no CNN at all: every word is cached
        for got, want in zip(out["activations"], expected["activations"]):
            np.testing.assert_allclose(got.detach().numpy(), want.numpy(), atol=1e-5, rtol=0)
    if requires_grad:
        out["activations"][2].sum().backward()
        assert table.grad is not None and table.grad[word_ids[0, 0]].abs().sum() > 0


def test_vocab_cache_encodes_untrusted_ids_from_their_characters(monkeypatch):
    """An out-of-vocabulary word (id 1, @@UNKNOWN@@) or an id beyond the table gets its own vector."""
    oov = [["This", "is", "OOV"], ["so", "is", "this"]]
    words, word_ids = vocabulary_and_ids([["here", "is"], ["a", "vocab"]], oov)
    word_ids[1, 2] = 999  # beyond the table
    cached = _ElmoBiLm(OPTIONS, WEIGHTS, vocab_to_cache=words)
    expected = _ElmoBiLm(OPTIONS, WEIGHTS)(batch_to_ids(oov))
    encoded = []
    encode = cached._engine.encode_tokens
    monkeypatch.setattr(cached._engine, "encode_tokens", lambda ids: encoded.append(len(ids)) or encode(ids))
    out = cached(batch_to_ids(oov), word_ids)
    assert encoded == [4]  # This, OOV, so (unknown: id 1) and the id 999; both "is" come from the table
    for got, want in zip(out["activations"], expected["activations"]):
        np.testing.assert_allclose(got.numpy(), want.numpy(), atol=1e-5, rtol=0)
    with pytest.raises(UserError, match=r"word id 999 at \(1, 2\) is beyond the cached vocabulary"):
        cached(torch.zeros(2, 3, 50, dtype=torch.long), word_ids)
    with pytest.raises(UserError, match="must match the character ids"):
        cached(batch_to_ids(oov), word_ids[:, :2])
    with pytest.raises(UserError, match="non-empty list of strings"):
        _ElmoBiLm(OPTIONS, WEIGHTS, vocab_to_cache=["a", 3])


def test_elmo_with_cache_takes_higher_dimensional_word_ids():
    words, word_ids = vocabulary_and_ids(SENTENCES, SENTENCES)
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, vocab_to_cache=words)
    single = elmo(batch_to_ids(SENTENCES), word_ids)
    stacked = elmo(torch.stack([batch_to_ids(SENTENCES)] * 2, dim=1), torch.stack([word_ids] * 2, dim=1))
    assert stacked["elmo_representations"][0].shape == (3, 2, 7, 32) and stacked["mask"].shape == (3, 2, 7)
    for copy in range(2):
        torch.testing.assert_close(stacked["elmo_representations"][0][:, copy], single["elmo_representations"][0])
    plain = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0)(batch_to_ids(SENTENCES))  # word ids without a cache: ignored
    torch.testing.assert_close(plain["elmo_representations"][0], single["elmo_representations"][0], atol=1e-5, rtol=0)


def test_keep_sentence_boundaries_module_and_layer_norm():
    reference_module = pytest.importorskip("simple_elmo_pytorch.models.elmo")
    ids = batch_to_ids(SENTENCES)
    kept = Elmo(OPTIONS, WEIGHTS, 2, dropout=0.0, keep_sentence_boundaries=True)(ids)
    with torch.no_grad():
        reference = reference_module.Elmo(OPTIONS, WEIGHTS, 2, dropout=0.0, keep_sentence_boundaries=True)(ids)
    assert torch.equal(kept["mask"], reference["mask"].bool()) and kept["mask"].shape == (3, 9)
    for got, want in zip(kept["elmo_representations"], reference["elmo_representations"]):
        assert got.shape == (3, 9, 32)
        np.testing.assert_allclose(got.detach().numpy(), want.numpy(), atol=1e-5, rtol=0)

    bilm = _ElmoBiLm(OPTIONS, WEIGHTS)
    with_module = Elmo(None, None, 2, dropout=0.0, module=bilm)(ids)
    with_files = Elmo(OPTIONS, WEIGHTS, 2, dropout=0.0)(ids)
    for got, want in zip(with_module["elmo_representations"], with_files["elmo_representations"]):
        torch.testing.assert_close(got, want)
    with pytest.raises(UserError, match="options_file=None and weight_file=None"):
        Elmo(OPTIONS, None, 1, module=bilm)

    # layer norm: one mean and variance per layer over every unmasked element, <S>/</S> included (AllenNLP's)
    normed = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, do_layer_norm=True)(ids)["elmo_representations"][0]
    out = bilm(ids)
    m = out["mask"].float()[..., None]
    layers = []
    for h in out["activations"]:
        count = m.sum() * h.shape[-1]
        mean = (h * m).sum() / count
        layers.append((h - mean) / torch.sqrt((((h - mean) * m) ** 2).sum() / count + 1e-12))
    expected, _ = remove_sentence_boundaries(sum(layers) / 3, out["mask"])
    torch.testing.assert_close(normed, expected, atol=1e-5, rtol=0)


def test_elmo_token_embedder():
    ids = batch_to_ids(SENTENCES)
    embedder = ElmoTokenEmbedder(OPTIONS, WEIGHTS, dropout=0.0)
    assert isinstance(embedder, torch.nn.Module) and embedder.get_output_dim() == 32
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0)
    torch.testing.assert_close(embedder(ids), elmo(ids)["elmo_representations"][0])
    projected = ElmoTokenEmbedder(OPTIONS, WEIGHTS, dropout=0.0, projection_dim=20)
    assert projected.get_output_dim() == 20
    out = projected(ids)
    linear = projected._projection
    torch.testing.assert_close(out, elmo(ids)["elmo_representations"][0] @ linear.weight.T + linear.bias)
    assert projected(ids.unsqueeze(1)).shape == (3, 1, 7, 20)
    for requires_grad in (False, True):
        tuned = ElmoTokenEmbedder(OPTIONS, WEIGHTS, requires_grad=requires_grad)
        tuned(ids).sum().backward()
        grads = {name: p.grad for name, p in tuned.named_parameters() if "_elmo_lstm" in name}
        assert len(grads) == len(list(tuned._elmo.bilm.parameters())) > 0  # every biLM weight, named as in AllenNLP
        assert all((g is not None) == requires_grad for g in grads.values())
        assert tuned._elmo.scalar_mix_0.gamma.grad is not None


def test_default_urls_offline_are_one_line_errors(monkeypatch, tmp_path):
    # the defaults are AllenNLP's original model's URLs: downloaded once (tests/test_download.py serves them on
    # 127.0.0.1); offline and not cached, a one-line error names the URL at once
    monkeypatch.setenv("ELMO_TASKS_OFFLINE", "1")
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path))
    with pytest.raises(UserError, match="forbids the network") as error:
        ElmoEmbedder()
    message = str(error.value)
    assert "\n" not in message and "2x4096_512_2048cnn_2xhighway" in message and "local path" in message
    with pytest.raises(ConfigurationError, match="not in the cache"):
        Elmo("https://allennlp.s3.amazonaws.com/models/elmo/x_options.json", WEIGHTS, 1)
    with pytest.raises(UserError, match="not in the cache"):
        ElmoTokenEmbedder()
    assert ConfigurationError is UserError


def test_elmo_embedder_has_allennlps_bilm_and_reset_path(fixture_sentences, expected_top_layers):
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS, stateful=True)
    assert isinstance(embedder.elmo_bilm, _ElmoBiLm)
    for i in range(2):
        vectors = list(embedder.embed_sentences([fixture_sentences[k][i].split() for k in range(3)], batch_size=3))
        np.testing.assert_allclose(vectors[1][2], expected_top_layers[1][i], atol=1e-5, rtol=0)
    embedder.elmo_bilm._elmo_lstm.reset_states()
    np.testing.assert_allclose(embedder.embed_sentence(fixture_sentences[0][0].split())[2], expected_top_layers[0][0],
                               atol=1e-5, rtol=0)
    assert embedder.embed_sentence([]).shape == (3, 0, 32)  # the model's width (AllenNLP hard-codes 1024)


def test_tfhub_module_takes_model_names():
    sentences = ["I love to watch TV", "The cat sat"]
    for name in ("fixture", "default"):
        module = hub.Module(name)
        layers = Embedder.from_dir(name).embed_batch([s.split() for s in sentences])
        out = module(sentences, signature="default", as_dict=True)
        np.testing.assert_allclose(out["lstm_outputs2"][1, :3], layers[1][2], atol=1e-5, rtol=0)
        assert out["default"].shape == (2, layers[0].shape[2])
    assert hub.load("fixture").embedder.output_dim == 32


def test_embed_file_forget_sentences(tmp_path):
    source = tmp_path / "in.txt"
    source.write_text("Michael went to the store .\ntest / this is a first sentence\n")
    arrays = {}
    for flag in ([], ["--forget-sentences"]):
        output = tmp_path / f"out{len(flag)}.hdf5"
        assert main(["embed-file", str(source), str(output), "--options", OPTIONS, "--weights", WEIGHTS,
                     "--quiet", *flag]) == 0
        with h5py.File(output, "r") as handle:
            assert set(handle) == ({"0", "1"} if flag else {"0", "1", "sentence_to_index"})
            arrays[bool(flag)] = [handle[k][...] for k in ("0", "1")]
            if not flag:
                assert json.loads(handle["sentence_to_index"][0])["test / this is a first sentence"] == "1"
    for forgot, kept in zip(arrays[True], arrays[False]):
        np.testing.assert_array_equal(forgot, kept)
