"""The public file format: save -> load round trip, the weight mapping, and every error path."""

import json
import shutil

import h5py
import numpy as np
import pytest
import torch

from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.weights import load_bilm, load_bilm_dir, save_bilm
from elmo_tasks.errors import UserError

SENTENCES = [["The", "cat", "sat", "on", "the", "mat", "."], ["Résumé", "naïve", "日本"], []]


@pytest.fixture()
def model_dir(tmp_path, elmo_fixtures):
    directory = tmp_path / "model"
    directory.mkdir()
    shutil.copy(elmo_fixtures / "options.json", directory / "options.json")
    shutil.copy(elmo_fixtures / "lm_weights.hdf5", directory / "weights.hdf5")
    return directory


def layers(model):
    with torch.no_grad():
        return model(batch_to_ids(SENTENCES)).layers


def test_save_load_round_trip_is_exact(model_dir, tmp_path):
    model = load_bilm_dir(model_dir)
    save_bilm(model, tmp_path / "saved")
    again = load_bilm_dir(tmp_path / "saved")
    assert torch.equal(layers(model), layers(again))
    # the written datasets equal the original file's; the LSTM biases only to float32 rounding,
    # since the forget-gate +1 is added on load and taken off on save
    with h5py.File(model_dir / "weights.hdf5", "r") as a, h5py.File(tmp_path / "saved" / "weights.hdf5", "r") as b:
        names = []
        a.visit(lambda n: names.append(n) if isinstance(a[n], h5py.Dataset) else None)
        assert len(names) == 33
        for name in names:
            if name.endswith("/B"):
                assert np.allclose(a[name][...], b[name][...], rtol=0, atol=1e-7), name
            else:
                assert np.array_equal(a[name][...], b[name][...]), name
    options = json.loads((tmp_path / "saved" / "options.json").read_text())
    assert options["char_cnn"]["n_characters"] == 262 and options["lstm"]["cell_clip"] == 3


def test_float16_save_is_close_and_half_the_size(model_dir, tmp_path):
    model = load_bilm_dir(model_dir)
    save_bilm(model, tmp_path / "half", dtype="float16")
    half = load_bilm_dir(tmp_path / "half")
    assert (tmp_path / "half" / "weights.hdf5").stat().st_size < 0.6 * (model_dir / "weights.hdf5").stat().st_size
    assert torch.allclose(layers(model), layers(half), atol=5e-2)


def test_lstm_gate_order_and_forget_bias_follow_the_tf_cell(model_dir):
    """One step of our layer equals the TF LSTMCell formula on the raw hdf5 arrays (§4.1)."""
    model = load_bilm_dir(model_dir)
    with h5py.File(model_dir / "weights.hdf5", "r") as handle:
        prefix = "RNN_0/RNN/MultiRNNCell/Cell1/LSTMCell"
        w0, b, wp = (handle[f"{prefix}/{n}"][...].astype(np.float64) for n in ("W_0", "B", "W_P_0"))
    rng = np.random.default_rng(0)
    x, h, c = rng.normal(size=(2, 16)), rng.normal(size=(2, 16)) * 0.5, rng.normal(size=(2, 64))
    z = np.concatenate([x, h], axis=1) @ w0 + b
    i, j, f, o = np.split(z, 4, axis=1)
    sig = lambda v: 1 / (1 + np.exp(-v))
    c_new = np.clip(sig(f + 1.0) * c + sig(i) * np.tanh(j), -3, 3)
    h_new = np.clip((sig(o) * np.tanh(c_new)) @ wp, -3, 3)
    layer = model.forward_lstm.layers[1]
    state = (torch.tensor(h, dtype=torch.float32), torch.tensor(c, dtype=torch.float32))
    out, (h_got, c_got) = layer(torch.tensor(x, dtype=torch.float32).unsqueeze(1), [2], state)
    assert np.allclose(out[:, 0].numpy(), h_new, atol=1e-5)
    assert np.allclose(c_got.numpy(), c_new, atol=1e-5)


def test_missing_files(tmp_path, model_dir):
    with pytest.raises(UserError, match="model folder not found"):
        load_bilm_dir(tmp_path / "nowhere")
    (model_dir / "weights.hdf5").unlink()
    with pytest.raises(UserError, match="weights file not found: .*weights.hdf5"):
        load_bilm_dir(model_dir)
    with pytest.raises(UserError, match="options file not found"):
        load_bilm(tmp_path / "nope.json", tmp_path / "nope.hdf5")


def test_missing_dataset_is_named(model_dir):
    with h5py.File(model_dir / "weights.hdf5", "a") as handle:
        del handle["CNN_high_1/W_carry"]
    with pytest.raises(UserError, match=r"dataset 'CNN_high_1/W_carry' is missing"):
        load_bilm_dir(model_dir)


def test_options_that_do_not_match_the_weights_name_dataset_and_shapes(model_dir):
    options = json.loads((model_dir / "options.json").read_text())
    options["lstm"]["dim"] = 32
    (model_dir / "options.json").write_text(json.dumps(options))
    with pytest.raises(UserError, match=r"'RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/W_0' has shape \(32, 256\), "
                                        r"but the options file implies \(32, 128\)"):
        load_bilm_dir(model_dir)


def test_extra_layers_in_the_weights_are_reported(model_dir):
    options = json.loads((model_dir / "options.json").read_text())
    options["char_cnn"]["n_highway"] = 1
    (model_dir / "options.json").write_text(json.dumps(options))
    with pytest.raises(UserError, match="more highway layers than char_cnn.n_highway = 1"):
        load_bilm_dir(model_dir)


@pytest.mark.parametrize("edit, message", [
    (lambda o: o["lstm"].pop("dim"), "missing key 'lstm.dim'"),
    (lambda o: o["lstm"].update(dim="64"), "key 'lstm.dim' must be a number"),
    (lambda o: o["char_cnn"].update(n_characters=263), "n_characters' must be 261"),
    (lambda o: o["char_cnn"].update(filters=[[1]]), "char_cnn.filters' must be a list"),
    (lambda o: o["char_cnn"].update(activation="gelu"), "activation' must be 'relu' or 'tanh'"),
])
def test_bad_options_name_the_key(model_dir, edit, message):
    options = json.loads((model_dir / "options.json").read_text())
    edit(options)
    (model_dir / "options.json").write_text(json.dumps(options))
    with pytest.raises(UserError, match=message):
        load_bilm_dir(model_dir)


def test_not_json_and_not_hdf5(model_dir):
    (model_dir / "weights.hdf5").write_text("not hdf5")
    with pytest.raises(UserError, match="not a readable HDF5 file"):
        load_bilm_dir(model_dir)
    (model_dir / "options.json").write_text("{broken")
    with pytest.raises(UserError, match="not valid JSON"):
        load_bilm_dir(model_dir)


def test_training_time_options_with_261_characters_load(model_dir):
    options = json.loads((model_dir / "options.json").read_text())
    options["char_cnn"]["n_characters"] = 261
    (model_dir / "options.json").write_text(json.dumps(options))
    assert load_bilm_dir(model_dir).token_encoder.char_embedding.weight.shape == (262, 4)
