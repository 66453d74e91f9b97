"""Helpers for the task-toolkit tests: the vendored samples and configs in tests/fixtures/tasks/."""

from __future__ import annotations

import collections
import json
from pathlib import Path
from typing import Any

import pytest
import torch

from elmo_tasks.experiment import Config, load_config

TASK_FIXTURES = Path(__file__).parent / "fixtures" / "tasks"


def fixture_config(name: str, cache: Path | None = None, **overrides: Any) -> Config:
    """A fixture config (tests/fixtures/tasks/NAME.yaml); ELMo caches go to ``cache``."""
    values = dict(overrides)
    if cache is not None:
        values["features.elmo.cache_dir"] = str(cache)
    return load_config(TASK_FIXTURES / f"{name}.yaml", values)


def read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def read_conll(path: Path) -> list[list[str]]:
    """The tag sequences of a two-column CoNLL file."""
    sentences, tags = [], []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip():
            if tags:
                sentences.append(tags)
            tags = []
        else:
            tags.append(line.split("\t")[1])
    if tags:
        sentences.append(tags)
    return sentences


def prior_agreement(train_labels: list[str], test_labels: list[str]) -> float:
    """Chance accuracy: guessing each label at its training frequency (sum_i p_train(i) p_test(i))."""
    p = collections.Counter(train_labels)
    q = collections.Counter(test_labels)
    return sum(p[k] / len(train_labels) * q[k] / len(test_labels) for k in q)


def wsd_chance(split: str) -> float:
    """Expected accuracy of picking uniformly among the lemma's training senses (back-off: 0)."""
    senses: dict[str, set[str]] = collections.defaultdict(set)
    for row in read_jsonl(TASK_FIXTURES / "wsd" / "train.jsonl"):
        senses[f"{row['lemma']}%{row['pos']}"].add(row["sense"])
    rows = read_jsonl(TASK_FIXTURES / "wsd" / f"{split}.jsonl")
    total = 0.0
    for row in rows:
        candidates = senses.get(f"{row['lemma']}%{row['pos']}", set())
        total += 1 / len(candidates) if row["sense"] in candidates else 0.0
    return total / len(rows)


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """The task models are small: one thread is faster than two, and far faster on a busy machine."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
