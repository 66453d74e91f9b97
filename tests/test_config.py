"""Experiment configs: loading, extends, defaults, and one clear error per mistake."""

from __future__ import annotations

import shutil
from pathlib import Path

import h5py
import pytest
from tasks_util import TASK_FIXTURES

from elmo_tasks.cli import main
from elmo_tasks.experiment import load_config
from elmo_tasks.heads import HEADS
from elmo_tasks.heads.tagger import TaggerOptions
from elmo_tasks.model_folder import FIXTURE_MODEL_DIR
from elmo_tasks.schema import ConfigError


def _datasets(group: h5py.Group) -> list[str]:
    names: list[str] = []
    group.visititems(lambda name, item: names.append(name) if isinstance(item, h5py.Dataset) else None)
    return names


def write(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


BASE = f"""
head: {{name: tagger, hidden: 16}}
dataset:
  source: files
  format: conll
  files: {{train: {TASK_FIXTURES}/wnut16/train.conll, dev: {TASK_FIXTURES}/wnut16/dev.conll,
          test: {TASK_FIXTURES}/wnut16/test.conll}}
features:
  glove: {{source: {TASK_FIXTURES}/glove.fixture.50d.txt}}
"""


def test_fixture_configs_load_with_defaults_filled_in():
    config = load_config(TASK_FIXTURES / "wnut16_glove.yaml")
    assert config.name == "wnut16_glove"
    assert config.output == str(Path("runs") / "wnut16_glove")
    assert config.dataset.files["train"] == str((TASK_FIXTURES / "wnut16" / "train.conll").resolve())
    assert config.features.glove.trainable is False and config.features.elmo is None
    assert isinstance(config.head.options, TaggerOptions)
    assert (config.head.options.hidden, config.head.options.output) == (32, "crf")
    assert config.trainer.epochs == 3 and config.trainer.grad_norm == 5.0


def test_extends_merges_key_by_key_and_null_removes():
    elmo = load_config(TASK_FIXTURES / "wnut16_elmo.yaml")
    assert elmo.name == "wnut16_elmo"
    assert elmo.features.names() == ["glove", "elmo"]  # the parent's glove kept, elmo added
    assert (elmo.features.elmo.model, elmo.features.elmo.dropout, elmo.features.elmo.l2) == ("fixture", 0.2, 0.001)
    assert elmo.features.elmo.where == "input" and elmo.features.elmo.cache_dtype == "float16"
    probe = load_config(TASK_FIXTURES / "wnut16_probe.yaml")
    assert probe.features.names() == ["elmo"]  # glove: null removed the parent's glove
    assert probe.head.name == "probe"  # another head replaces the parent's head options
    assert probe.trainer.batch_size == 16


def test_overrides_and_fingerprint():
    a = load_config(TASK_FIXTURES / "wnut16_glove.yaml")
    b = load_config(TASK_FIXTURES / "wnut16_glove.yaml", {"trainer.seed": 3})
    assert b.trainer.seed == 3
    assert a.fingerprint() != b.fingerprint()
    c = load_config(TASK_FIXTURES / "wnut16_glove.yaml", {"output": "elsewhere"})
    assert a.fingerprint() == c.fingerprint()  # the output folder does not change training


def test_fingerprint_follows_the_elmo_model_content(tmp_path):
    # a run of model "X" must not be reused once the files behind "X" have changed (a retrained default)
    model = tmp_path / "model"
    shutil.copytree(FIXTURE_MODEL_DIR, model)
    config = lambda: load_config(TASK_FIXTURES / "wnut16_elmo.yaml", {"features.elmo.model": str(model)})  # noqa: E731
    before = config().fingerprint()
    assert config().fingerprint() == before
    with h5py.File(model / "weights.hdf5", "r+") as f:
        name = next(n for n in _datasets(f) if f[n].size > 1)
        f[name][...] = f[name][...] + 1.0
    assert config().fingerprint() != before


@pytest.mark.parametrize("text, message", [
    (BASE + "trainer: {epoch: 3}\n", "trainer.epoch: unknown key (known here: epochs, patience"),
    (BASE + "optimizer: adam\n", "optimizer: unknown key"),
    (BASE.replace("hidden: 16", "hiden: 16"), "head.hiden: unknown key (known here: hidden, layers, dropout, output)"),
    (BASE + "trainer: {epochs: ten}\n", "trainer.epochs: must be an integer, got 'ten' (str)"),
    (BASE + "trainer: {lr: true}\n", "trainer.lr: must be a number, got True (bool)"),
    (BASE.replace("hidden: 16", "output: crfs"), "head.output: must be one of 'softmax', 'crf', got 'crfs'"),
    (BASE + "  elmo: {model: fixture, where: middle}\n", "features.elmo.where: must be one of 'input', 'output', 'both'"),
    (BASE + "  elmo: {model: fixture, fixed: layer5}\n", "features.elmo.fixed: unknown fixed mix 'layer5'"),
    (BASE + "  elmo: {model: fixture, fixed: [1, 2]}\n", "features.elmo.fixed: fixed weights need 3 values, got 2"),
    (BASE + "  elmo: {model: no/such/model}\n", "features.elmo.model: "),
    (BASE.replace("glove.fixture.50d.txt", "glove.missing.txt"), "features.glove.source: file not found"),
    (BASE.replace("wnut16/dev.conll", "wnut16/nope.conll"), "dataset.files.dev: file not found"),
    (BASE.replace("head: {name: tagger, hidden: 16}", "head: {name: parser}"), "head.name: unknown head 'parser' (known: tagger"),
    (BASE.replace("head: {name: tagger, hidden: 16}", "head: {hidden: 16}"), "head.name: missing"),
    (BASE.replace("features:\n  glove:", "features: 3\nx:\n  glove:"), "features: must be a mapping"),
    (BASE.replace("head: {name: tagger, hidden: 16}", "head: {name: probe}") + "  elmo: {model: fixture, where: output}\n",
     "features.elmo.where: the probe head has no encoder output"),
    (BASE.replace("head: {name: tagger, hidden: 16}", "head: {name: wsd}") + "  elmo: {model: fixture}\n",
     "features.elmo.fixed: the nearest-neighbour wsd head learns no mix"),
    ("dataset: {source: prepared, name: no-such-set}\nfeatures: {glove: {}}\nhead: {name: tagger}\n",
     "dataset.name: unknown prepared set 'no-such-set'"),
    ("features: {glove: {}}\nhead: {name: tagger}\n", "dataset: missing"),
    (BASE + "trainer: [1]\n", "trainer: must be a mapping, got a list"),
])
def test_each_mistake_is_one_error_naming_the_file_and_key(tmp_path, text, message):
    path = write(tmp_path, "bad.yaml", text)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    assert str(info.value).startswith(f"{path}: ")
    assert message in str(info.value)


def test_error_names_the_file_that_set_the_key(tmp_path):
    parent = write(tmp_path, "parent.yaml", BASE + "trainer: {epochs: many}\n")
    child = write(tmp_path, "child.yaml", "extends: parent.yaml\nhead: {hidden: 8}\n")
    with pytest.raises(ConfigError, match=r"parent\.yaml: trainer\.epochs: must be an integer"):
        load_config(child)
    write(tmp_path, "child2.yaml", "extends: parent.yaml\ntrainer: {epochs: 2, patiense: 1}\n")
    with pytest.raises(ConfigError, match=r"child2\.yaml: trainer\.patiense: unknown key"):
        load_config(tmp_path / "child2.yaml")
    assert parent.is_file()


def test_extends_problems(tmp_path):
    write(tmp_path, "a.yaml", "extends: b.yaml\n")
    write(tmp_path, "b.yaml", "extends: a.yaml\n")
    with pytest.raises(ConfigError, match="extends itself"):
        load_config(tmp_path / "a.yaml")
    write(tmp_path, "c.yaml", "extends: missing.yaml\n")
    with pytest.raises(ConfigError, match=r"c\.yaml: extends: file not found"):
        load_config(tmp_path / "c.yaml")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "dataset:\n  source: [files\nhead: x\n")
    with pytest.raises(ConfigError, match=r"broken\.yaml, line \d+: not valid YAML"):
        load_config(path)


def test_paths_are_relative_to_the_config_file(tmp_path):
    (tmp_path / "sub").mkdir()
    text = BASE.replace(f"{TASK_FIXTURES}/glove.fixture.50d.txt", "../vectors.txt")
    (tmp_path / "vectors.txt").write_text("the 0.1 0.2\n", encoding="utf-8")
    config = load_config(write(tmp_path / "sub", "c.yaml", text))
    assert config.features.glove.source == str((tmp_path / "vectors.txt").resolve())


def test_command_line_reports_a_config_error_in_one_line(tmp_path, capsys):
    path = write(tmp_path, "bad.yaml", BASE + "trainer: {epoch: 3}\n")
    assert main(["run", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and err.startswith(f"elmo-tasks: error: {path}: trainer.epoch: unknown key")


@pytest.mark.parametrize("path", sorted((Path(__file__).parent.parent / "configs" / "tasks").glob("*.yaml")),
                         ids=lambda p: p.name)
def test_shipped_task_configs_load(path):
    config = load_config(path)
    assert config.name == path.stem and config.features.names()


def test_every_head_has_options_and_tasks():
    for name, cls in HEADS.items():
        assert cls.__module__ == f"elmo_tasks.heads.{name}"
        assert cls.Options.__dataclass_fields__ is not None
        assert set(cls.tasks) <= {"tagging", "classification", "wsd"}
