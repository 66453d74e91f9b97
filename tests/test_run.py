"""``elmo-tasks run``: the run folder, metrics.json, resume after a kill, reruns, options."""

from __future__ import annotations

import json

import pytest
import yaml
from tasks_util import (
    TASK_FIXTURES,
    fixture_config,
    one_thread,  # noqa: F401  (autouse: one torch thread)
    read_jsonl,
)

from elmo_tasks.cli import main
from elmo_tasks.errors import UserError
from elmo_tasks.experiment import load_config
from elmo_tasks.training import trainer

SMALL = {"dataset.max_examples": 60, "trainer.epochs": 3, "trainer.patience": 5}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("elmo-cache")


def test_run_folder_and_metrics(tmp_path, cache):
    config = fixture_config("wnut16_elmo", cache, **SMALL)
    metrics = trainer.run(config, tmp_path, progress=False, echo=False)
    assert {p.name for p in tmp_path.iterdir()} == {"config.yaml", "log.txt", "metrics.json", "mix.json",
                                                   "predictions", "checkpoints"}
    assert [p.name for p in (tmp_path / "checkpoints").iterdir()] == ["best.pt"]  # last.pt removed when done
    on_disk = json.loads((tmp_path / "metrics.json").read_text())
    assert on_disk == metrics
    assert metrics["schema"] == 1 and metrics["name"] == "wnut16_elmo" and metrics["task"] == "tagging"
    assert metrics["features"] == ["glove", "elmo"] and metrics["head"] == "tagger"
    assert metrics["main_metric"] == "span_f1" and metrics["sizes"] == {"train": 60, "dev": 60, "test": 60}
    assert set(metrics["test"]) == {"accuracy", "span_f1", "span_precision", "span_recall"}
    assert [h["epoch"] for h in metrics["history"]] == [1, 2, 3] and metrics["epochs_run"] == 3
    assert metrics["best_epoch"] == max(metrics["history"], key=lambda h: h["dev"]["span_f1"])["epoch"]
    assert all(h["train_seconds"] > 0 for h in metrics["history"]) and metrics["seconds_per_epoch"] > 0
    (mix,) = metrics["mix"]
    assert mix["where"] == "input" and mix["trainable"] and len(mix["weights"]) == 3
    assert abs(sum(mix["weights"]) - 1) < 1e-5 and mix["weights"] != [1 / 3] * 3  # it learned
    assert json.loads((tmp_path / "mix.json").read_text()) == metrics["mix"]
    rows = read_jsonl(tmp_path / "predictions" / "test.jsonl")
    assert len(rows) == 60 and all(len(r["tokens"]) == len(r["gold"]) == len(r["pred"]) for r in rows)
    resolved = yaml.safe_load((tmp_path / "config.yaml").read_text())
    assert resolved["features"]["elmo"]["model"] == "fixture" and resolved["head"]["name"] == "tagger"
    reloaded = tmp_path / "again.yaml"  # the resolved config is a valid config of the same run
    reloaded.write_text((tmp_path / "config.yaml").read_text())
    assert load_config(reloaded).fingerprint() == config.fingerprint()
    assert "epoch 3:" in (tmp_path / "log.txt").read_text()


def test_resume_after_a_kill_gives_the_unbroken_result(tmp_path, cache, monkeypatch):
    config = fixture_config("wnut16_elmo", cache, **SMALL)
    unbroken = trainer.run(config, tmp_path / "unbroken", progress=False, echo=False)

    original = trainer.train_epoch

    def killed_in_epoch_3(model, split, config, optimizer, epoch, *args, **kwargs):
        if epoch == 3:
            raise KeyboardInterrupt
        return original(model, split, config, optimizer, epoch, *args, **kwargs)

    monkeypatch.setattr(trainer, "train_epoch", killed_in_epoch_3)
    with pytest.raises(KeyboardInterrupt):
        trainer.run(config, tmp_path / "resumed", progress=False, echo=False)
    assert not (tmp_path / "resumed" / "metrics.json").exists()
    assert (tmp_path / "resumed" / "checkpoints" / "last.pt").is_file()
    monkeypatch.undo()
    other = fixture_config("wnut16_elmo", cache, **{**SMALL, "trainer.lr": 0.5})
    with pytest.raises(UserError, match="holds an unfinished run of another config"):
        trainer.run(other, tmp_path / "resumed", progress=False, echo=False)
    resumed = trainer.run(config, tmp_path / "resumed", progress=False, echo=False)
    assert "resuming after epoch 2" in (tmp_path / "resumed" / "log.txt").read_text()
    strip = lambda hs: [{k: v for k, v in h.items() if not k.endswith("seconds")} for h in hs]  # noqa: E731
    assert strip(resumed["history"]) == strip(unbroken["history"])
    assert resumed["test"] == unbroken["test"] and resumed["mix"] == unbroken["mix"]


def test_finished_runs_are_reused_and_other_configs_refused(tmp_path, capsys):
    config = fixture_config("glosses_glove", **{**SMALL, "trainer.epochs": 1})
    first = trainer.run(config, tmp_path, progress=False, echo=False)
    assert trainer.run(config, tmp_path, progress=False) == first
    assert "already complete" in capsys.readouterr().err
    other = fixture_config("glosses_glove", **{**SMALL, "trainer.epochs": 1, "trainer.lr": 0.5})
    with pytest.raises(UserError, match="holds a finished run of another config"):
        trainer.run(other, tmp_path, progress=False, echo=False)
    again = trainer.run(other, tmp_path, progress=False, echo=False, restart=True)
    assert again["fingerprint"] == other.fingerprint() != first["fingerprint"]


def test_early_stopping(tmp_path):
    # lr 0: nothing improves after epoch 1, so patience 1 stops after epoch 2
    config = fixture_config("glosses_glove", **{**SMALL, "trainer.epochs": 10, "trainer.patience": 1, "trainer.lr": 0.0})
    metrics = trainer.run(config, tmp_path, progress=False, echo=False)
    assert metrics["epochs_run"] == 2 and metrics["best_epoch"] == 1 and metrics["stopped_early"]


def test_command_line_seed_and_out(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {TASK_FIXTURES / 'glosses_glove.yaml'}\n"
                      "dataset: {max_examples: 40}\ntrainer: {epochs: 1}\n", encoding="utf-8")
    assert main(["run", str(config), "--seed", "3", "--quiet"]) == 0
    assert "c seed 3: dev accuracy" in capsys.readouterr().out
    metrics = json.loads((tmp_path / "runs" / "c" / "seed3" / "metrics.json").read_text())
    assert metrics["seed"] == 3
    assert main(["run", str(config), "--out", str(tmp_path / "elsewhere"), "--quiet"]) == 0
    assert json.loads((tmp_path / "elsewhere" / "metrics.json").read_text())["seed"] == 0


def test_elmo_at_input_and_output_with_chars(tmp_path, cache):
    config = fixture_config("wnut16_elmo", cache, **{**SMALL, "trainer.epochs": 1, "features.elmo.where": "both",
                                                              "features.chars": {}})
    metrics = trainer.run(config, tmp_path, progress=False, echo=False)
    assert [m["where"] for m in metrics["mix"]] == ["input", "output"]
    assert metrics["features"] == ["glove", "chars", "elmo"]


def test_a_broken_data_file_is_one_error_with_its_line(tmp_path, capsys):
    bad = tmp_path / "train.conll"
    bad.write_text("good\tO\nlonely\n\n", encoding="utf-8")
    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {TASK_FIXTURES / 'wnut16_glove.yaml'}\n"
                      f"dataset: {{files: {{train: {bad}}}}}\n", encoding="utf-8")
    assert main(["run", str(config), "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"elmo-tasks: error: {bad}, line 2") and err.count("\n") == 1


def test_run_set_changes_keys_without_editing_the_file(tmp_path, monkeypatch, capsys):
    """--set KEY=VALUE (repeatable, dotted, YAML values) lands in the resolved config.yaml; the file is untouched."""
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"extends": str(TASK_FIXTURES / "glosses_glove.yaml")}))
    before = config.read_text()
    out = tmp_path / "run"
    assert main(["run", str(config), "--set", "trainer.epochs=1", "--set", "dataset.max_examples=12",
                 "--set", "head={name: classifier, hidden: 8, pooling: mean}", "--set", "trainer.lr=0.02",
                 "--out", str(out), "--quiet"]) == 0
    resolved = yaml.safe_load((out / "config.yaml").read_text())
    assert resolved["trainer"]["epochs"] == 1 and resolved["trainer"]["lr"] == 0.02
    assert resolved["dataset"]["max_examples"] == 12
    assert resolved["head"]["hidden"] == 8 and resolved["head"]["pooling"] == "mean"
    assert len(json.loads((out / "metrics.json").read_text())["history"]) == 1
    assert config.read_text() == before
