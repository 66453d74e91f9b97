"""Evaluation does not change training; resumed runs end bit-identical; checkpoints cannot run code."""

from __future__ import annotations

import pickle
import shutil
from pathlib import Path

import pytest
import torch
import yaml

from elmo_tasks.errors import UserError
from elmo_tasks.pretrain.settings import config_from_dict
from elmo_tasks.pretrain.trainer import Trainer

ROOT = Path(__file__).resolve().parent.parent
FIXTURE_TEXT = ROOT / "tests" / "fixtures" / "pretrain"


def config(**training):
    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "tiny.yaml").read_text())
    data["corpus"] = {"train": [str(FIXTURE_TEXT / "train.txt")], "heldout": [str(FIXTURE_TEXT / "heldout.txt")]}
    data["training"].update(training)  # tiny.yaml trains with dropout 0.1: the random stream matters
    return config_from_dict(data, "tiny.yaml")


def assert_same_training_state(a: Trainer, b: Trainer) -> None:
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[name]), name
    assert torch.equal(a.softmax.weight, b.softmax.weight)
    for direction_a, direction_b in zip(a.states, b.states):
        for (h_a, c_a), (h_b, c_b) in zip(direction_a, direction_b):
            assert torch.equal(h_a, h_b) and torch.equal(c_a, c_b)


def test_interval_evaluation_does_not_change_training(tmp_path):
    quiet = Trainer(config(max_steps=14, eval_every_steps=1000), tmp_path / "quiet", progress=False)
    quiet.train()
    evaluated = Trainer(config(max_steps=14, eval_every_steps=3), tmp_path / "evaluated", progress=False)
    evaluated.train()
    assert len(evaluated.history) == 5 and len(quiet.history) == 1  # 4 interval evaluations + the final one
    assert_same_training_state(quiet, evaluated)


def test_a_finished_run_continued_equals_one_unbroken_run(tmp_path):
    # the first part ends with its final evaluation and a checkpoint, as a run stopped by max_minutes does
    whole = Trainer(config(max_steps=24, eval_every_steps=5), tmp_path / "whole", progress=False)
    whole.train()
    Trainer(config(max_steps=13, eval_every_steps=5), tmp_path / "parts", progress=False).train()
    continued = Trainer(config(max_steps=24, eval_every_steps=5), tmp_path / "parts", resume=True, progress=False)
    assert continued.step == 13
    continued.train()
    assert_same_training_state(whole, continued)


class Interrupt(Exception):
    pass


def test_killed_after_an_evaluation_and_resumed_equals_unbroken(tmp_path, monkeypatch):
    whole = Trainer(config(max_steps=20, eval_every_steps=4, checkpoint_every_steps=6), tmp_path / "whole",
                    progress=False)
    whole.train()
    original = Trainer.train_step

    def dying(self, batch):
        if self.step == 15:  # after the evaluations at 4, 8, 12 and the checkpoint at 12
            raise Interrupt()
        return original(self, batch)

    monkeypatch.setattr(Trainer, "train_step", dying)
    with pytest.raises(Interrupt):
        Trainer(config(max_steps=20, eval_every_steps=4, checkpoint_every_steps=6), tmp_path / "cut",
                progress=False).train()
    monkeypatch.setattr(Trainer, "train_step", original)
    # resumed with a different evaluation interval: evaluation must not matter either way
    resumed = Trainer(config(max_steps=20, eval_every_steps=7, checkpoint_every_steps=6), tmp_path / "cut",
                      resume=True, progress=False)
    assert resumed.step == 12
    resumed.train()
    assert_same_training_state(whole, resumed)


class _Payload:
    def __reduce__(self):
        return (Path.touch, (Path(_Payload.target),))


def test_a_crafted_checkpoint_runs_no_code(tmp_path):
    Trainer(config(max_steps=2), tmp_path / "run", progress=False).train()
    _Payload.target = str(tmp_path / "pwned")
    (tmp_path / "run" / "checkpoint.pt").write_bytes(pickle.dumps({"step": _Payload()}))
    with pytest.raises(UserError, match="cannot read the checkpoint"):
        Trainer(config(max_steps=4), tmp_path / "run", resume=True, progress=False)
    assert not (tmp_path / "pwned").exists()


# -- continued pretraining (--init-from) and perplexity ----------------------------------------------


def test_init_from_an_exported_model_continues_it(tmp_path):
    from elmo_tasks.pretrain.perplexity import text_perplexity

    first = Trainer(config(max_steps=8, softmax="full"), tmp_path / "first", progress=False)
    first.train()
    model_dir = tmp_path / "first" / "model"
    # a different corpus: the vocabulary still comes from the model (its softmax rows are those words)
    other = tmp_path / "other.txt"
    other.write_text("completely new words here\n" * 40)
    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "tiny.yaml").read_text())
    data["corpus"] = {"train": [str(other)], "heldout": [str(FIXTURE_TEXT / "heldout.txt")]}
    data["training"].update(max_steps=3, softmax="full")
    second = Trainer(config_from_dict(data, "tiny.yaml"), tmp_path / "second", progress=False, init_from=model_dir)
    assert second.data.vocab.words == first.data.vocab.words
    for name, value in first.model.state_dict().items():
        assert torch.allclose(value, second.model.state_dict()[name]), name
    assert torch.equal(first.softmax.weight, second.softmax.weight)
    before = second.evaluate()
    exported = text_perplexity(model_dir, [str(FIXTURE_TEXT / "heldout.txt")], rows=data["training"].get(
        "eval_batch_size", 64), unroll=data["training"]["unroll_steps"])
    assert abs(before["heldout_ppl"] - exported.average) < 1e-4 * exported.average  # the same model, scored alike
    second.train()
    assert json_summary(tmp_path / "second")["init_from"] == str(model_dir)
    resumed = Trainer(config_from_dict({**data, "training": {**data["training"], "max_steps": 5}}, "tiny.yaml"),
                      tmp_path / "second", resume=True, progress=False)
    assert resumed.step == 3 and resumed.data.vocab.words == first.data.vocab.words
    resumed.train()
    assert json_summary(tmp_path / "second")["init_from"] == str(model_dir)  # the resumed run remembers its start


def json_summary(run: Path) -> dict:
    import json

    return json.loads((run / "summary.json").read_text())


def test_init_from_a_model_without_softmax_and_wrong_shapes(tmp_path, capsys):
    from elmo_tasks.cli import main

    fixture = ROOT / "elmo_tasks" / "models" / "tiny_fixture"
    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "tiny.yaml").read_text())
    data["corpus"] = {"train": [str(FIXTURE_TEXT / "train.txt")], "heldout": [str(FIXTURE_TEXT / "heldout.txt")]}
    data["training"].update(max_steps=2)
    path = tmp_path / "wrong.yaml"
    path.write_text(yaml.safe_dump(data))
    assert main(["pretrain", str(path), "--out", str(tmp_path / "run"), "--init-from", str(fixture), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "LSTM 64/16" in err and "LSTM 32/16" in err and str(path) in err  # both shapes, and the config
    assert not (tmp_path / "run" / "checkpoint.pt").exists()

    data["model"].update(lstm_dim=64, projection_dim=16, char_embedding_dim=4, n_highway=2,
                         filters=[[1, 4], [2, 8], [3, 16], [4, 32], [5, 64]])
    path.write_text(yaml.safe_dump(data))
    assert main(["pretrain", str(path), "--out", str(tmp_path / "run"), "--init-from", str(fixture), "--quiet"]) == 0
    summary = json_summary(tmp_path / "run")
    assert summary["init_from"] == str(fixture) and summary["steps"] == 2  # a fresh softmax over the built vocabulary
    assert main(["pretrain", str(path), "--out", str(tmp_path / "run"), "--resume", "--init-from", str(fixture)]) == 2


@pytest.mark.parametrize("softmax, message", [
    ({"other/W": (10, 16)}, "'softmax/W' and 'softmax/b' are missing"),
    ({"softmax/W": (10, 8), "softmax/b": (10,)}, "softmax width 8 does not match the model's projection 16"),
    ({"softmax/W": (10, 16), "softmax/b": (9,)}, "must be (V, P) and (V,)"),
    (b"not hdf5", "not a readable HDF5 file"),
])
def test_a_bad_softmax_file_is_one_line_for_init_from_and_perplexity(tmp_path, capsys, softmax, message):
    import h5py
    import numpy as np

    from elmo_tasks.cli import main

    model = tmp_path / "model"
    shutil.copytree(ROOT / "elmo_tasks" / "models" / "tiny_fixture", model)
    (model / "vocab.txt").write_text("\n".join(["<S>", "</S>", "<UNK>"] + [f"w{i}" for i in range(7)]) + "\n")
    if isinstance(softmax, bytes):
        (model / "softmax.hdf5").write_bytes(softmax)
    else:
        with h5py.File(model / "softmax.hdf5", "w") as f:
            for name, shape in softmax.items():
                f.create_dataset(name, data=np.zeros(shape, dtype=np.float32))
    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "tiny.yaml").read_text())
    data["corpus"] = {"train": [str(FIXTURE_TEXT / "train.txt")]}
    data["model"].update(lstm_dim=64, projection_dim=16, char_embedding_dim=4, n_highway=2,
                         filters=[[1, 4], [2, 8], [3, 16], [4, 32], [5, 64]])
    data["training"].update(max_steps=1)
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump(data))
    text = tmp_path / "t.txt"
    text.write_text("a few words here\n")
    for argv in (["pretrain", str(config), "--out", str(tmp_path / "run"), "--init-from", str(model), "--quiet"],
                 ["perplexity", str(text), "--model", str(model)]):
        assert main(argv) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and "Traceback" not in err and message in err and "softmax.hdf5" in err, err
    assert not (tmp_path / "run" / "checkpoint.pt").exists()


def test_perplexity_command_and_its_errors(tmp_path, capsys):
    import json

    from elmo_tasks.cli import main

    Trainer(config(max_steps=3, softmax="full"), tmp_path / "run", progress=False).train()
    model = tmp_path / "run" / "model"
    heldout = str(FIXTURE_TEXT / "heldout.txt")
    assert main(["perplexity", heldout, "--model", str(model), "--quiet", "--device", "cpu", "--unroll", "10"]) == 0
    result = json.loads(capsys.readouterr().out)
    final = json_summary(tmp_path / "run")["final_heldout"]
    assert result["tokens"] == final["heldout_tokens"]
    assert abs(result["average"] - final["heldout_ppl"]) < 1e-4 * final["heldout_ppl"]  # the same scoring
    assert result["forward"] > 1 and result["backward"] > 1

    empty, latin, blank = tmp_path / "empty.txt", tmp_path / "latin.txt", tmp_path / "blank.txt"
    empty.write_text("")
    blank.write_text("\n \n")
    latin.write_bytes("caf\xe9\n".encode("latin-1"))
    cases = [([str(empty)], str(empty)), ([str(blank)], "no sentences"), ([str(latin)], "line 1: not valid UTF-8"),
             ([heldout, "--model", str(ROOT / "elmo_tasks" / "models" / "tiny_fixture")], "no softmax.hdf5"),
             ([str(tmp_path)], "is a folder"), ([heldout, "--rows", "0"], "--rows")]
    for arguments, words in cases:
        assert main(["perplexity", *arguments, "--quiet"]) == 2
        err = capsys.readouterr().err
        assert words in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_init_from_the_shipped_default_model(tmp_path):
    from elmo_tasks.model_folder import DEFAULT_MODEL_DIR

    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "default.yaml").read_text())
    data["corpus"] = {"train": [str(FIXTURE_TEXT / "train.txt")], "heldout": [str(FIXTURE_TEXT / "heldout.txt")]}
    data["training"].update(batch_size=4, unroll_steps=10, max_steps=1, eval_every_steps=100)
    trainer = Trainer(config_from_dict(data, "default.yaml"), tmp_path / "run", progress=False, init_from="default")
    assert trainer.data.vocab.words == (DEFAULT_MODEL_DIR / "vocab.txt").read_text().split("\n")[:-1]
    before = trainer.evaluate()
    assert before["heldout_ppl"] < 0.1 * len(trainer.data.vocab)  # a trained model (a fresh one scores ~ the vocabulary)
    assert trainer.train()["init_from"] == "default"
