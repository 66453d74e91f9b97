"""Pretraining: config validation, corpus and vocabulary, batching, softmaxes, end-to-end training,
export, resume after an interruption, and bad input. Tiny real text, CPU, seconds in total."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.weights import load_bilm_dir
from elmo_tasks.cli import main
from elmo_tasks.errors import UserError
from elmo_tasks.pretrain.batches import build_streams, epoch_order
from elmo_tasks.pretrain.settings import config_from_dict, load_config
from elmo_tasks.pretrain.softmax import IGNORE, LogUniformSampler, Softmax
from elmo_tasks.pretrain.text_source import BOS_TYPE, EOS_TYPE, TypeTable, encode_files, encode_lines
from elmo_tasks.pretrain.trainer import Trainer
from elmo_tasks.pretrain.vocab import Vocabulary

ROOT = Path(__file__).resolve().parent.parent
TINY = ROOT / "configs" / "pretrain" / "tiny.yaml"
FIXTURE_TEXT = ROOT / "tests" / "fixtures" / "pretrain"


def tiny_config(tmp_path: Path, **training) -> dict:
    data = yaml.safe_load(TINY.read_text())
    data["corpus"] = {"train": [str(FIXTURE_TEXT / "train.txt")], "heldout": [str(FIXTURE_TEXT / "heldout.txt")]}
    data["training"].update(training)
    return data


def write_config(tmp_path: Path, data: dict, name: str = "c.yaml") -> Path:
    path = tmp_path / name
    path.write_text(yaml.safe_dump(data))
    return path


def losses(run: Path) -> list[float]:
    return [r["loss"] for r in map(json.loads, (run / "log.jsonl").read_text().splitlines()) if "loss" in r]


# -- config ----------------------------------------------------------------------------------------


def test_shipped_configs_load():
    for path in (ROOT / "configs" / "pretrain").glob("*.yaml"):
        if "{cache}" in path.read_text() and not (Path.home() / ".cache" / "elmo-tasks" / "corpus" / "train.txt").is_file():
            continue  # default.yaml names the built corpus, which a fresh checkout does not have
        load_config(path)


@pytest.mark.parametrize("change, words", [
    ({"training": {"batch_sise": 3}}, ["unknown key 'training.batch_sise'"]),
    ({"training": {"batch_size": "big"}}, ["training.batch_size", "int"]),
    ({"training": {"state_mode": "sometimes"}}, ["training.state_mode"]),
    ({"model": {"filters": [[1]]}}, ["model.filters"]),
    ({"corpus": {"train": ["no/such/file.txt"]}}, ["corpus.train", "file not found"]),
    ({"vocab": {"file": "missing_vocab.txt"}}, ["vocab.file", "file not found"]),
    ({"colour": 1}, ["unknown key 'colour'"]),
])
def test_config_errors_name_key_and_file(tmp_path, change, words):
    data = tiny_config(tmp_path)
    for section, values in change.items():
        if isinstance(values, dict) and isinstance(data.get(section), dict):
            data[section].update(values)
        else:
            data[section] = values
    path = write_config(tmp_path, data)
    with pytest.raises(UserError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message
    for word in words:
        assert word in message


def test_config_missing_corpus_and_bad_yaml(tmp_path):
    with pytest.raises(UserError, match="missing key 'corpus'"):
        load_config(write_config(tmp_path, {"training": {"max_steps": 3}}))
    bad = tmp_path / "bad.yaml"
    bad.write_text("corpus: [unclosed\n")
    with pytest.raises(UserError, match="not valid YAML"):
        load_config(bad)
    with pytest.raises(UserError, match="config file not found"):
        load_config(tmp_path / "none.yaml")


def test_cli_config_error_is_one_line(tmp_path, capsys):
    data = tiny_config(tmp_path)
    data["training"]["learning_rate"] = "fast"
    assert main(["pretrain", str(write_config(tmp_path, data)), "--out", str(tmp_path / "run")]) == 2
    err = capsys.readouterr().err
    assert "training.learning_rate" in err and "Traceback" not in err


# -- corpus, vocabulary, batches ------------------------------------------------------------------


def test_bad_corpus_inputs(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    with pytest.raises(UserError, match=str(empty)):
        encode_files([str(empty)], TypeTable())
    blank = tmp_path / "blank.txt"
    blank.write_text("\n  \n\t\n")
    with pytest.raises(UserError, match="no sentences"):
        encode_files([str(blank)], TypeTable())
    binary = tmp_path / "latin1.txt"
    binary.write_bytes("good line\nanother one\ncaf\xe9 au lait\n".encode("latin-1"))
    with pytest.raises(UserError, match=rf"{binary}, line 3: not valid UTF-8"):
        encode_files([str(binary)], TypeTable())


def test_very_long_line_trains(tmp_path):
    text = (FIXTURE_TEXT / "train.txt").read_text()
    long_line = " ".join(f"w{i % 97}" for i in range(10_000))
    corpus = tmp_path / "long.txt"
    corpus.write_text(text + long_line + "\n" + "x" * 5000 + " y\n")
    data = tiny_config(tmp_path, max_steps=3, eval_every_steps=100)
    data["corpus"]["train"] = [str(corpus)]
    trainer = Trainer(config_from_dict(data, "t.yaml"), tmp_path / "run", progress=False)
    assert trainer.data.train.long_lines == 1
    summary = trainer.train()
    assert summary["steps"] == 3 and math.isfinite(summary["final_heldout"]["heldout_ppl"])


def test_vocabulary_by_frequency_and_file(tmp_path):
    types = TypeTable()
    text = encode_lines(["b a b", "c b a", "<UNK> d"], types, "t")
    vocab = Vocabulary.build(text, types, max_size=5)
    assert vocab.words == ["<S>", "</S>", "<UNK>", "b", "a"]
    target = vocab.target_map(types)
    assert target[types.index["c"]] == vocab.unk and target[types.index["<UNK>"]] == vocab.unk
    assert target[BOS_TYPE] == vocab.bos and target[EOS_TYPE] == vocab.eos
    path = tmp_path / "vocab.txt"
    vocab.save(path)
    assert Vocabulary.load(path).words == vocab.words
    path.write_text("<S>\n</S>\nthe\n")
    with pytest.raises(UserError, match="<UNK> is missing"):
        Vocabulary.load(path)


def _stream_setup(per_sentence: bool, unroll: int = 4, rows: int = 2):
    types = TypeTable()
    text = encode_lines(["a b c", "d e", "f g h i j", "k"], types, "t")
    vocab = Vocabulary.build(text, types, max_size=100)
    streams = build_streams(text, np.arange(text.n_sentences), vocab.target_map(types), rows, unroll, per_sentence)
    word = lambda ids: [types.strings[i] for i in ids]  # noqa: E731
    target = lambda ids: [vocab.words[i] if i >= 0 else "-" for i in ids]  # noqa: E731
    return streams, word, target


def test_stream_layout_stateful():
    streams, word, target = _stream_setup(per_sentence=False)
    # 4 sentences, 11 words -> 15 positions -> 2 rows of 4 (one batch each of 4 steps) = 8 used... rows of 4
    assert streams.n_batches == 1
    row0 = streams.fwd_inputs[0]
    assert word(row0) == ["<S>", "a", "b", "c"]
    assert target(streams.fwd_targets[0]) == ["a", "b", "c", "</S>"]
    assert word(streams.bwd_inputs[0]) == ["</S>", "c", "b", "a"]
    assert target(streams.bwd_targets[0]) == ["c", "b", "a", "<S>"]
    assert word(streams.fwd_inputs[1]) == ["<S>", "d", "e", "<S>"]  # the next sentence follows in the row
    assert target(streams.fwd_targets[1]) == ["d", "e", "</S>", "f"]


def test_stream_layout_per_sentence_pads_and_resets():
    streams, word, target = _stream_setup(per_sentence=True, unroll=4, rows=1)
    inputs = word(streams.fwd_inputs[0])
    assert inputs[:8] == ["<S>", "a", "b", "c", "<S>", "d", "e", ""]  # padded to the window
    assert target(streams.fwd_targets[0])[:8] == ["a", "b", "c", "</S>", "d", "e", "</S>", "-"]
    assert [streams.batch(k, True).reset[0] for k in range(4)] == [True, True, True, False]


def test_epoch_order_is_seeded():
    assert (epoch_order(50, 3, 1) == epoch_order(50, 3, 1)).all()
    assert not (epoch_order(50, 3, 1) == epoch_order(50, 3, 2)).all()


# -- softmax ---------------------------------------------------------------------------------------


def test_log_uniform_sampler():
    sampler = LogUniformSampler(1000, 100)
    generator = torch.Generator().manual_seed(0)
    ids, tries = sampler.draw(generator)
    assert len(ids) == 100 and len(set(ids.tolist())) == 100 and tries >= 100
    assert ids.min() >= 0 and ids.max() < 1000
    p = sampler.probability(torch.arange(1000))
    assert abs(float(p.sum()) - 1.0) < 1e-9 and (p[:-1] > p[1:]).all()
    counts = sampler.expected_count(ids, tries)
    assert ((counts > 0) & (counts <= 1)).all()
    # frequent ids are drawn far more often than rare ones
    hits = torch.zeros(1000)
    for _ in range(200):
        hits[sampler.draw(generator)[0]] += 1
    assert hits[:10].mean() > 5 * hits[500:].mean()


def test_sampled_softmax_approaches_full_softmax():
    torch.manual_seed(0)
    softmax = Softmax(60, 8)
    hidden = torch.randn(32, 8)
    targets = torch.randint(0, 60, (32,))
    targets[3] = IGNORE
    full = softmax.full_nll(hidden, targets)
    assert full[3] == 0
    # with (nearly) every class sampled, the sampled loss tracks the full loss closely
    sampled = softmax.sampled_nll(hidden, targets, LogUniformSampler(60, 59), torch.Generator().manual_seed(1))
    assert sampled[3] == 0
    keep = targets != IGNORE
    assert (sampled - full)[keep].abs().mean() < 0.2
    assert torch.corrcoef(torch.stack([sampled[keep], full[keep]]))[0, 1] > 0.98
    # with few samples: exactly the corrected-logit formula, accidental hits removed
    sampler = LogUniformSampler(60, 5)
    few = softmax.sampled_nll(hidden, targets, sampler, torch.Generator().manual_seed(1))
    ids, tries = sampler.draw(torch.Generator().manual_seed(1))
    with torch.no_grad():
        for row in range(32):
            if row == 3:
                continue
            t = int(targets[row])
            logit = lambda k, row=row: float(hidden[row] @ softmax.weight[k] + softmax.bias[k]  # noqa: E731
                                    - torch.log(sampler.expected_count(torch.tensor([k]), tries)))
            others = [logit(int(k)) for k in ids if int(k) != t]
            expected = math.log(sum(math.exp(v) for v in [logit(t), *others])) - logit(t)
            assert abs(float(few[row]) - expected) < 1e-4


def test_length_cut_encoding_equals_full_encoding():
    from elmo_tasks.bilm.distinct_tokens import encode_by_length
    from elmo_tasks.bilm.model import BiLM
    from elmo_tasks.pretrain.initialise import bilm_options, init_bilm

    config = config_from_dict(tiny_config(None), "c.yaml")
    torch.manual_seed(0)
    model = BiLM(bilm_options(config))
    init_bilm(model)
    tokens = ["a", "the", "<S>", "</S>", "extraordinarily", "x" * 45, "é" * 30, "", "Hello,", "ab"]
    chars = batch_to_ids([tokens])[0]
    chars[7] = 0  # an all-zero (padding) token
    with torch.enable_grad():
        full = model.token_encoder.encode_plain(chars) if hasattr(model.token_encoder, "encode_plain") \
            else model.token_encoder(chars)
        cut = encode_by_length(model.token_encoder, chars, max_width=3, group_size=4)
    assert (full - cut).abs().max() < 1e-6


def test_unigram_perplexity_by_hand():
    from elmo_tasks.pretrain.evaluate import heldout_streams, unigram_perplexity

    types = TypeTable()
    train = encode_lines(["a a b", "a"], types, "train")
    held = encode_lines(["a b"], types, "held")
    vocab = Vocabulary.build(train, types, max_size=10)
    streams = heldout_streams(held, vocab.target_map(types), rows=1, unroll=3, per_sentence=False)
    result = unigram_perplexity(train, vocab.target_map(types), len(vocab), vocab.bos, vocab.eos, streams)
    # forward counts (+1): a 3+1, b 1+1, </S> 2+1, <UNK> 0+1, <S> excluded -> total 10; targets a, b, </S>
    expected = math.exp(-(math.log(4 / 10) + math.log(2 / 10) + math.log(3 / 10)) / 3)
    assert result.tokens == 3 and abs(result.forward - expected) < 1e-9
    assert abs(result.backward - expected) < 1e-9  # backward targets b, a, <S>: the same counts


# -- training end to end ---------------------------------------------------------------------------


def test_pretrain_end_to_end_export_and_reload(tmp_path):
    config_path = write_config(tmp_path, tiny_config(tmp_path, max_steps=100, softmax="full", dropout=0.0))
    out = tmp_path / "run"
    assert main(["pretrain", str(config_path), "--out", str(out), "--quiet", "--device", "cpu"]) == 0
    curve = losses(out)
    assert curve[-1] < curve[0] - 0.5, curve  # the loss falls
    summary = json.loads((out / "summary.json").read_text())
    assert summary["steps"] == 100 and summary["state_mode"] == "stateful"
    assert summary["final_heldout"]["heldout_ppl"] > 1
    options = json.loads((out / "model" / "options.json").read_text())
    assert options["char_cnn"]["n_characters"] == 262 and options["lstm"]["cell_clip"] == 3.0
    assert options["n_tokens_vocab"] == summary["vocab_size"]

    # the exported files reproduce the trained model's outputs
    trainer = Trainer(config_from_dict(tiny_config(tmp_path, max_steps=100, softmax="full", dropout=0.0), "c.yaml"),
                      out, resume=True, progress=False)
    trained = trainer.model.eval()
    loaded = load_bilm_dir(out / "model")
    sentences = [line.split() for line in (FIXTURE_TEXT / "heldout.txt").read_text().splitlines()[:4]]
    with torch.no_grad():
        a = trained(batch_to_ids(sentences)).layers
        b = loaded(batch_to_ids(sentences)).layers
    assert (a - b).abs().max() < 1e-6

    # the run folder is not overwritten by accident
    assert main(["pretrain", str(config_path), "--out", str(out), "--quiet"]) == 2


def test_no_clipping_exports_zero(tmp_path):
    data = tiny_config(tmp_path, max_steps=2, softmax="full")
    data["model"].update(cell_clip=None, proj_clip=0)
    Trainer(config_from_dict(data, "c.yaml"), tmp_path / "run", progress=False).train()
    options = json.loads((tmp_path / "run" / "model" / "options.json").read_text())
    assert options["lstm"]["cell_clip"] == 0 and options["lstm"]["proj_clip"] == 0


class Interrupt(Exception):
    pass


@pytest.mark.parametrize("state_mode", ["stateful", "per_sentence"])
def test_resume_after_interruption_matches_uninterrupted_run(tmp_path, monkeypatch, state_mode):
    def config():
        return config_from_dict(tiny_config(tmp_path, max_steps=30, checkpoint_every_steps=10, eval_every_steps=15,
                                            state_mode=state_mode), "c.yaml")

    whole = Trainer(config(), tmp_path / "whole", progress=False)
    whole.train()

    original = Trainer.train_step

    def dying(self, batch):
        if self.step == 17:
            raise Interrupt()
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dying)
    with pytest.raises(Interrupt):
        Trainer(config(), tmp_path / "cut", progress=False).train()
    monkeypatch.setattr(Trainer, "train_step", original)
    resumed = Trainer(config(), tmp_path / "cut", resume=True, progress=False)
    assert resumed.step == 10  # the last checkpoint; steps 11..17 are redone
    resumed.train()

    for name, value in whole.model.state_dict().items():
        assert torch.equal(value, resumed.model.state_dict()[name]), name
    assert torch.equal(whole.softmax.weight, resumed.softmax.weight)
    drop = lambda r: {k: v for k, v in r.items() if not k.endswith("_s")}  # noqa: E731
    assert [drop(r) for r in whole.history] == [drop(r) for r in resumed.history]


def test_resume_needs_a_checkpoint_and_the_same_config(tmp_path):
    with pytest.raises(UserError, match="no checkpoint"):
        Trainer(config_from_dict(tiny_config(tmp_path), "c.yaml"), tmp_path / "none", resume=True, progress=False)
    Trainer(config_from_dict(tiny_config(tmp_path, max_steps=2), "c.yaml"), tmp_path / "run", progress=False).train()
    changed = tiny_config(tmp_path, max_steps=4)
    changed["model"]["lstm_dim"] = 48
    with pytest.raises(UserError, match="different model"):
        Trainer(config_from_dict(changed, "c.yaml"), tmp_path / "run", resume=True, progress=False)
    config_path = write_config(tmp_path, tiny_config(tmp_path, max_steps=4))
    (tmp_path / "run" / "model" / "weights.hdf5").unlink()
    assert main(["pretrain", str(config_path), "--out", str(tmp_path / "run"), "--resume", "--export-only"]) == 0
    assert load_bilm_dir(tmp_path / "run" / "model").options.lstm_dim == 32
    longer = Trainer(config_from_dict(tiny_config(tmp_path, max_steps=4), "c.yaml"), tmp_path / "run", resume=True,
                     progress=False)
    assert longer.step == 2 and longer.train()["steps"] == 4


def test_full_softmax_training_and_dataset_input(tmp_path):
    data = tiny_config(tmp_path, max_steps=5, softmax="full")
    data["corpus"] = {"dataset": {"path": "text", "data_files": {"train": str(FIXTURE_TEXT / "train.txt"),
                                                               "heldout": str(FIXTURE_TEXT / "heldout.txt")},
                                  "split": "train", "heldout_split": "heldout", "column": "text"}}
    trainer = Trainer(config_from_dict(data, "c.yaml"), tmp_path / "run", progress=False)
    assert not trainer.sampled and trainer.data.train.n_tokens == 512
    assert trainer.train()["final_heldout"]["heldout_tokens"] > 0


# -- the shipped default model ---------------------------------------------------------------------


def test_shipped_default_model_separates_contexts():
    from elmo_tasks.embedder import DEFAULT_MODEL_DIR, Embedder
    from elmo_tasks.pretrain.softmax import SOFTMAX_NAME, load_softmax

    assert (DEFAULT_MODEL_DIR / "weights.hdf5").is_file(), "the default model ships in elmo_tasks/models/default"
    options = json.loads((DEFAULT_MODEL_DIR / "options.json").read_text())
    assert options["char_cnn"]["n_characters"] == 262
    vocab = Vocabulary.load(DEFAULT_MODEL_DIR / "vocab.txt")
    softmax = load_softmax(DEFAULT_MODEL_DIR / SOFTMAX_NAME)
    assert softmax.vocab_size == len(vocab) == options["n_tokens_vocab"]
    assert softmax.weight.shape[1] == options["lstm"]["projection_dim"]

    embedder = Embedder.from_dir(DEFAULT_MODEL_DIR)
    first, second = embedder.embed_batch([["I", "love", "to", "watch", "TV"], ["I", "am", "wearing", "a", "wrist", "watch"]])
    u, v = first[:, 3], second[:, 5]
    cosine = (u * v).sum(axis=1) / (np.linalg.norm(u, axis=1) * np.linalg.norm(v, axis=1))
    assert cosine[0] > 0.9999  # layer 0 is context-free
    assert cosine[1] < cosine[0] - 0.05 and cosine[2] < cosine[0] - 0.05
