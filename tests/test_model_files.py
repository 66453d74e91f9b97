"""Memory from a model file: options.json is checked against fixed bounds and the weights file's
dataset shapes before anything is built, so an absurd or crafted model is a one-line error, never
gigabytes allocated; every case runs the real command under a 2 GB address-space limit."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import pytest
from cli_util import assert_user_error, run_cli

from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import check_model_files, expected_shapes
from elmo_tasks.embedder import FIXTURE_MODEL_DIR
from elmo_tasks.errors import UserError


def model_with(tmp_path: Path, change) -> Path:
    folder = tmp_path / "model"
    shutil.copytree(FIXTURE_MODEL_DIR, folder)
    options = json.loads((folder / "options.json").read_text())
    change(options)
    (folder / "options.json").write_text(json.dumps(options))
    return folder


def _set(section: str, key: str, value):
    return lambda o: o[section].__setitem__(key, value)


ABSURD = [
    ("lstm.dim 1e7", _set("lstm", "dim", 10_000_000), "lstm.dim is 10,000,000, over this toolkit's limit"),
    ("projection 1e6", _set("lstm", "projection_dim", 1_000_000), "lstm.projection_dim is 1,000,000"),
    ("1e8 filters", _set("char_cnn", "filters", [[1, 100_000_000]]), "char_cnn.filters (total count) is 100,000,000"),
    ("1e5 highways", _set("char_cnn", "n_highway", 100_000), "char_cnn.n_highway is 100,000"),
    ("1000 LSTM layers", _set("lstm", "n_layers", 1000), "lstm.n_layers is 1,000"),
    ("filter wider than a token", _set("char_cnn", "filters", [[1, 4], [60, 8]]),
     "char_cnn.filters[1] is 60 characters wide, wider than char_cnn.max_characters_per_token = 50"),
    ("within bounds, product too big", lambda o: (o["lstm"].update(dim=16384, projection_dim=8192, n_layers=16)),
     "parameters, over this toolkit's limit"),
    ("sizes the weights do not have", _set("lstm", "dim", 128), "has shape (32, 256), but the options file implies (32, 512)"),
    ("a filter bank the weights lack", _set("char_cnn", "filters", [[1, 4], [2, 8], [3, 16], [4, 32], [5, 64], [6, 8]]),
     "dataset 'CNN/W_cnn_5' is missing"),
]


@pytest.mark.parametrize("name, change, message", ABSURD, ids=[a[0] for a in ABSURD])
def test_absurd_options_are_one_line_errors_under_2gb(tmp_path, name, change, message):
    model = model_with(tmp_path, change)
    text = tmp_path / "in.txt"
    text.write_text("a few words\n", encoding="utf-8")
    result = run_cli("embed-file", text, tmp_path / "out.hdf5", "--model", model, timeout=120)
    assert_user_error(result, message, model)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "model"]  # no output, no temporary


def test_a_sparse_weights_file_claiming_gigabytes_is_refused_before_building(tmp_path):
    """A crafted HDF5 whose datasets match big options but hold no data (a few KB on disk)."""
    folder = model_with(tmp_path, lambda o: o["lstm"].update(dim=8192, projection_dim=2048))
    options = BiLMOptions.load(folder / "options.json")
    with h5py.File(folder / "weights.hdf5", "w") as handle:
        for name, shape in expected_shapes(options).items():
            handle.create_dataset(name, shape=shape, dtype="f4")  # never written: no storage
    assert (folder / "weights.hdf5").stat().st_size < 1 << 20
    with pytest.raises(UserError, match="declares .* bytes but stores only 0"):
        check_model_files(options, folder / "options.json", folder / "weights.hdf5")
    text = tmp_path / "in.txt"
    text.write_text("words\n", encoding="utf-8")
    assert_user_error(run_cli("embed-file", text, tmp_path / "o.hdf5", "--model", folder), "stores only 0")


def test_the_real_models_pass(tmp_path):
    from elmo_tasks.embedder import DEFAULT_MODEL_DIR

    for folder in (FIXTURE_MODEL_DIR, DEFAULT_MODEL_DIR):
        if (folder / "weights.hdf5").is_file():
            check_model_files(BiLMOptions.load(folder / "options.json"), folder / "options.json", folder / "weights.hdf5")


def test_a_config_size_too_large_for_memory_is_one_line_under_2gb(tmp_path):
    """Sizes in a config are the user's own, but running out of memory is still one line, not a traceback."""
    from tasks_util import TASK_FIXTURES

    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {TASK_FIXTURES / 'glosses_glove.yaml'}\ndataset: {{max_examples: 20}}\n"
                      "head: {name: classifier, hidden: 1000000000}\n", encoding="utf-8")
    result = run_cli("run", config, "--out", tmp_path / "run", "--quiet")
    assert_user_error(result, "out of memory", "too large")
    assert not (tmp_path / "run" / "metrics.json").exists() and (tmp_path / "run" / "failed.json").is_file()
