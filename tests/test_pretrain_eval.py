"""Evaluation does not change training; resumed runs end bit-identical; checkpoints cannot run code."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest
import torch
import yaml

from elmo_tasks.errors import UserError
from elmo_tasks.pretrain.config import config_from_dict
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
