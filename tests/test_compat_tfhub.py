"""elmo_tasks.compat.tfhub against TensorFlow's own outputs of the TF-Hub-layout module's graph."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from elmo_tasks.compat import tfhub as hub
from elmo_tasks.errors import UserError

TF = Path(__file__).parent / "fixtures" / "tf"


@pytest.fixture(scope="module")
def expected():
    return np.load(TF / "hub_expected.npz")


@pytest.fixture(scope="module", params=["hub_module", "hub_module.tar.gz"])
def module(request, tmp_path_factory):
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ELMO_TASKS_CACHE", str(tmp_path_factory.mktemp("cache")))
        yield hub.load(TF / request.param)


def test_default_signature_matches_tensorflow(module, expected):
    out = module(list(expected["sentences"]), signature="default", as_dict=True)
    assert set(out) == set(hub.OUTPUTS)
    np.testing.assert_array_equal(out["sequence_len"], expected["sequence_len"])
    for name in ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default"):
        assert out[name].shape == expected[name].shape, name
        np.testing.assert_allclose(out[name], expected[name], atol=1e-5, rtol=0, err_msg=name)


def test_elmo_and_default_equal_their_definitions(module):
    out = module(["I love to watch TV", "The cat sat"], signature="default", as_dict=True)
    w, gamma = np.array([0.3, -0.6, 0.9]), 1.7  # the module's aggregation variables
    s = np.exp(w) / np.exp(w).sum()
    layers = [np.concatenate([out["word_emb"]] * 2, axis=2), out["lstm_outputs1"], out["lstm_outputs2"]]
    elmo = gamma * sum(s[j] * layers[j] for j in range(3))
    np.testing.assert_allclose(out["elmo"], elmo, atol=1e-5, rtol=0)
    default = np.stack([out["elmo"][i, :n].mean(axis=0) for i, n in enumerate(out["sequence_len"])])
    np.testing.assert_allclose(out["default"], default, atol=1e-5, rtol=0)
    assert np.all(out["elmo"][1, 3:] == 0)  # padding
    np.testing.assert_allclose(module(["I love to watch TV", "The cat sat"]), out["default"], atol=0)


def test_tokens_signature(module, expected):
    tokens = [["I", "love", "to", "watch", "TV"], ["The", "cat", "sat", "", ""]]
    out = module({"tokens": tokens, "sequence_len": [5, 3]}, signature="tokens", as_dict=True)
    np.testing.assert_allclose(out["elmo"], expected["elmo"][:2], atol=1e-5, rtol=0)


def test_bad_inputs_are_one_line_errors(module):
    with pytest.raises(UserError, match="not one string"):
        module("I love to watch TV", signature="default")
    with pytest.raises(UserError, match="unknown signature"):
        module(["a"], signature="tokenz")
    with pytest.raises(UserError, match="sequence_len"):
        module({"tokens": [["a"]]}, signature="tokens")
