"""The shared pieces of the reshaped package: the typed loader's section defaults, the model
folder, the one "cache this config's data set" path, head checks as config errors, features by name."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from tasks_util import fixture_config

from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.errors import UserError
from elmo_tasks.features import FEATURES, FeatureStack, build_features
from elmo_tasks.features.base import BuildContext
from elmo_tasks.heads.wsd import Wsd
from elmo_tasks.model_folder import FIXTURE_MODEL_DIR, resolve_model
from elmo_tasks.pretrain.settings import config_from_dict
from elmo_tasks.schema import ConfigError
from elmo_tasks.training import trainer
from elmo_tasks.training.splits import cache_dataset


def test_pretrain_model_section_starts_from_the_small_model(tmp_path):
    train = tmp_path / "train.txt"
    train.write_text("a b c\n")
    config = config_from_dict({"corpus": {"train": [str(train)]}, "model": {"lstm_dim": 64}}, base=tmp_path)
    assert isinstance(config.model, BiLMOptions)
    assert (config.model.lstm_dim, config.model.projection_dim, config.model.n_highway) == (64, 128, 1)
    assert config.model.filters == [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]]
    assert list(config.to_dict()["model"]) == ["lstm_dim", "projection_dim", "n_layers", "cell_clip", "proj_clip",
                                               "use_skip_connections", "char_embedding_dim", "filters", "n_highway",
                                               "activation"]
    with pytest.raises(UserError, match="unknown key 'model.n_characters'"):
        config_from_dict({"corpus": {"train": [str(train)]}, "model": {"n_characters": 261}}, base=tmp_path)


def test_options_json_keeps_unknown_fields_and_reads_whole_floats(tmp_path):
    options = json.loads((FIXTURE_MODEL_DIR / "options.json").read_text())
    options["lstm"]["dim"] = float(options["lstm"]["dim"])
    options["lstm"]["future"] = 1
    options["note"] = "kept"
    loaded = BiLMOptions.from_dict(options)
    assert isinstance(loaded.lstm_dim, int) and loaded.extra == {"note": "kept", "lstm.future": 1}
    assert loaded.to_dict()["lstm"]["future"] == 1 and loaded.to_dict()["note"] == "kept"
    options["lstm"]["dim"] = 3.5
    with pytest.raises(UserError, match="key 'lstm.dim' must be an integer"):
        BiLMOptions.from_dict(options, source="o.json")


def test_resolve_model(tmp_path):
    fixture = resolve_model("fixture")
    assert fixture.is_fixture and fixture.path == FIXTURE_MODEL_DIR
    assert resolve_model(str(FIXTURE_MODEL_DIR)) == fixture
    assert fixture.shape() == (3, 2 * fixture.options().projection_dim)
    assert len(fixture.digest()) == 64
    with pytest.raises(UserError, match="model folder not found"):
        resolve_model(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    shutil.copy(FIXTURE_MODEL_DIR / "options.json", tmp_path / "half")
    with pytest.raises(UserError, match=r"half/weights.hdf5 not found"):
        resolve_model(tmp_path / "half")


def test_cache_dataset_builds_once_then_reports_the_cache(tmp_path):
    config = fixture_config("wnut16_elmo", tmp_path / "cache", **{"dataset.max_examples": 5})
    first = cache_dataset(config, progress=False)
    assert [c.split for c in first] == ["train", "dev", "test"] and all(c.built for c in first)
    again = cache_dataset(config, progress=False)
    assert not any(c.built for c in again)
    assert [(c.path, c.tokens, c.nbytes) for c in again] == [(c.path, c.tokens, c.nbytes) for c in first]
    dim = resolve_model("fixture").shape()
    assert all(c.nbytes == c.tokens * dim[0] * dim[1] * 2 for c in first)  # float16


def test_head_check_is_a_config_error_naming_the_key():
    config = fixture_config("wsd_elmo", **{"features.elmo.fixed": None, "head.method": "linear"})
    config.head.options.method = "nearest"
    with pytest.raises(ConfigError) as info:
        Wsd.check_config(config)
    assert info.value.key == "features.elmo.fixed"


def test_features_by_name_prepare_and_collate_their_own_inputs(tmp_path):
    config = fixture_config("wnut16_elmo", tmp_path / "cache", **{"features.chars": {}})
    tokens = {"train": [["a", "tiny", "test"], ["two"]]}
    stack = build_features(config.features.selected(), tokens, BuildContext(progress=False, log=lambda m: None))
    assert isinstance(stack, FeatureStack) and list(stack.features) == [n for n in FEATURES if n in stack.features]
    inputs = stack.prepare("train", tokens["train"])
    assert set(inputs) == set(stack.features)
    collated = stack.collate(inputs, [0, 1], 3)
    mask = torch.tensor([[True, True, True], [True, False, False]])
    out = stack({"mask": mask, "inputs": collated})
    assert out.inputs.shape == (2, 3, stack.input_dim)
    assert stack.input_dim == sum(f.output_dim for f in stack.features.values())
    assert float(out.inputs[1, 1:].detach().abs().sum()) == 0.0  # padding stays zero


def test_recomputing_the_bilm_gives_the_cached_layers(tmp_path):
    config = fixture_config("wnut16_elmo", tmp_path / "cache", **{"dataset.max_examples": 4, "features.glove": None,
                                                                 "features.elmo.cache_dtype": "float32",
                                                                 "features.elmo.dropout": 0.0})
    quiet = {"progress": False, "log": lambda m: None}
    _, cached_splits, cached, _ = trainer.prepare(config, **quiet)
    _, recomputed_splits, recomputed, _ = trainer.prepare(config, recompute_elmo=True, **quiet)
    recomputed.load_state_dict(cached.state_dict(), strict=False)
    cached.eval(), recomputed.eval()
    rows = list(range(len(cached_splits["dev"])))
    a = cached.features(cached_splits["dev"].collate(rows, cached.features))
    b = recomputed.features(recomputed_splits["dev"].collate(rows, recomputed.features))
    assert a.inputs.shape == b.inputs.shape and torch.allclose(a.inputs, b.inputs, atol=1e-5)
