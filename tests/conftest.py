"""Shared fixtures: the vendored allennlp ELMo test files (see tests/fixtures/elmo/NOTICE)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("ELMO_TASKS_OFFLINE", "1")  # no test reaches the internet; tests/http_util.py serves 127.0.0.1
torch.set_num_threads(min(2, torch.get_num_threads()))

ELMO_FIXTURES = Path(__file__).parent / "fixtures" / "elmo"


@pytest.fixture(scope="session")
def elmo_fixtures() -> Path:
    return ELMO_FIXTURES


@pytest.fixture(scope="session")
def fixture_sentences() -> list[list[str]]:
    """The 3 lists of 10 sentences, as strings."""
    return json.loads((ELMO_FIXTURES / "sentences.json").read_text())


@pytest.fixture(scope="session")
def expected_top_layers() -> list[list[np.ndarray]]:
    """expected[k][i]: top layer (n, 2P) of sentence k of batch i, [forward; backward] halves."""
    result = []
    for k in range(3):
        with h5py.File(ELMO_FIXTURES / f"lm_embeddings_{k}.hdf5", "r") as handle:
            result.append([np.concatenate(handle[str(i)][...], axis=1) for i in range(10)])
    return result
