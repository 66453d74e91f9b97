"""The word-sense head's rules: the most-frequent-sense candidate (chosen when no training sense is
similar enough), its threshold picked on dev, per-feature context windows, and their config
errors. Real runs on the vendored WordNet sample with GloVe fixture vectors and the fixture biLM."""

from __future__ import annotations

import math

import pytest
import torch
from tasks_util import (
    TASK_FIXTURES,
    fixture_config,
    one_thread,  # noqa: F401  (autouse: one torch thread)
    read_jsonl,
)

from elmo_tasks.features import Features
from elmo_tasks.heads.wsd import Wsd, WsdOptions, choose, pick_threshold
from elmo_tasks.schema import ConfigError
from elmo_tasks.task import Task
from elmo_tasks.training.trainer import run

GLOVE = {"source": str(TASK_FIXTURES / "glove.fixture.50d.txt")}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("elmo-cache")


def wsd_run(path, cache, **overrides):
    config = fixture_config("wsd_elmo", cache, **{"features.glove": GLOVE, "head.window": {"glove": 3, "elmo": 0},
                                                  **overrides})
    return run(config, path, progress=False, echo=False)


def test_choose_is_the_mfs_candidate_rule():
    assert choose(best=4, score=0.9, mfs=7, threshold=0.5) == 4  # a training sense close enough
    assert choose(best=4, score=0.3, mfs=7, threshold=0.5) == 7  # none close enough: the MFS
    assert choose(best=4, score=0.3, mfs=None, threshold=0.5) == 4  # no MFS known: the nearest sense
    assert choose(best=None, score=-math.inf, mfs=7, threshold=-math.inf) == 7  # lemma unseen in training
    assert choose(best=4, score=-0.99, mfs=7, threshold=-math.inf) == 4  # -inf: the pure 1-NN


def test_pick_threshold_maximises_dev_answers():
    # ((nearest, its score, mfs), gold): backing off below 0.5 gains two and loses one
    items = [((1, 0.2, 2), 2), ((1, 0.3, 2), 2), ((1, 0.4, 2), 1), ((1, 0.8, 2), 1), ((1, 0.9, 2), 2),
             ((3, 0.1, 3), 3), ((None, -math.inf, 2), 2)]  # no contest: nearest == MFS, unseen lemma
    threshold = pick_threshold(items)
    assert threshold == pytest.approx(0.35)  # halfway between the last score backed off and the next
    assert sum(choose(*item, threshold) == gold for item, gold in items) == 6
    # nothing to gain: never back off; ties keep the fewest back-offs
    assert pick_threshold([((1, 0.2, 2), 1), ((1, 0.3, 2), 2), ((1, 0.4, 2), 1)]) == -math.inf
    # items with one score back off together
    assert pick_threshold([((1, 0.5, 2), 2), ((1, 0.5, 2), 1), ((1, 0.5, 2), 2)]) == pytest.approx(0.5001)


def test_threshold_one_gives_the_mfs_baseline_and_null_the_pure_1nn(tmp_path, cache):
    """A cosine never exceeds 1: every lemma with a most frequent sense takes it, so the test F1 is
    the MFS baseline's; null keeps the nearest training sense for every seen lemma."""
    mfs = wsd_run(tmp_path / "mfs", cache, **{"head.mfs_threshold": 1.0})
    assert mfs["test"]["f1"] == pytest.approx(mfs["test"]["mfs_f1"], abs=1e-6)
    assert mfs["head_info"] == {"mfs_threshold": 1.0}
    nearest = wsd_run(tmp_path / "nn", cache)
    assert nearest["head_info"] == {"mfs_threshold": None}
    train = {f"{r['lemma']}%{r['pos']}": r for r in read_jsonl(TASK_FIXTURES / "wsd" / "train.jsonl")}
    rows = read_jsonl(tmp_path / "nn" / "predictions" / "test.jsonl")
    senses = {}
    for r in read_jsonl(TASK_FIXTURES / "wsd" / "train.jsonl"):
        senses.setdefault(f"{r['lemma']}%{r['pos']}", set()).add(r["sense"])
    assert all(r["pred"] in senses[r["lemma_key"]] for r in rows if r["lemma_key"] in train)


def test_threshold_on_dev_is_at_least_the_1nn_on_dev_and_reads_no_test(tmp_path, cache):
    nearest = wsd_run(tmp_path / "nn", cache)
    tuned = wsd_run(tmp_path / "dev", cache, **{"head.mfs_threshold": "dev"})
    assert tuned["dev"]["f1"] >= nearest["dev"]["f1"]
    assert tuned["dev"]["f1"] >= tuned["dev"]["mfs_f1"] - 1e-9  # "always back off" was a candidate too
    threshold = tuned["head_info"]["mfs_threshold"]
    assert threshold is None or -1 <= threshold <= 1
    # the same run on a test split with every sense wrong picks the same threshold
    poisoned = tmp_path / "poisoned.jsonl"
    rows = read_jsonl(TASK_FIXTURES / "wsd" / "test.jsonl")
    poisoned.write_text("\n".join(__import__("json").dumps({**r, "sense": "nothing%1:00:00::"}) for r in rows) + "\n")
    again = wsd_run(tmp_path / "poisoned", cache, **{"head.mfs_threshold": "dev", "dataset.files.test": str(poisoned)})
    assert again["head_info"] == tuned["head_info"] and again["dev"] == tuned["dev"]
    assert again["test"]["f1"] == 0.0


def test_per_feature_windows_and_equal_say():
    """GloVe (columns 0-1) averaged over +-1 word, ELMo (columns 2-3) at the target only, each
    part unit-normalised."""
    task = Task("wsd", ["a", "b"], candidates={"k": [0, 1]}, mfs={"k": "a"})
    head = Wsd(WsdOptions(window={"glove": 1, "elmo": 0}), task, input_dim=4)
    x = torch.tensor([[[1.0, 0.0, 5.0, 5.0], [0.0, 1.0, 0.0, 3.0], [3.0, 3.0, 9.0, 9.0]]])
    features = Features(x, None, torch.ones(1, 3, dtype=torch.bool), {"glove": (0, 2), "elmo": (2, 4)})
    target = head.targets(features, {"target": torch.tensor([1])})
    glove = torch.tensor([4.0, 4.0]) / 3
    assert torch.allclose(target[0, :2], glove / glove.norm())
    assert torch.allclose(target[0, 2:], torch.tensor([0.0, 1.0]))
    # every feature has an equal say: a target identical to a sense's mean scores cosine 1
    head.fit(features, {"target": torch.tensor([1]), "labels": torch.tensor([1])})
    scores = head.scores(features, {"target": torch.tensor([1])})
    assert scores[0, 1] == pytest.approx(1.0)


@pytest.mark.parametrize("overrides, key, message", [
    ({"head.window": {"gloves": 3}}, "head.window.gloves", "no feature 'gloves'"),
    ({"head.window": {"glove": -1}}, "head.window.glove", "must not be negative"),
    ({"head.window": -2}, "head.window", "must not be negative"),
    ({"head.window": "wide"}, "head.window", "must be an integer or a mapping"),
    ({"head.mfs_threshold": 2.0}, "head.mfs_threshold", "a cosine similarity in [-1, 1]"),
    ({"head.mfs_threshold": "train"}, "head.mfs_threshold", "must be"),
    ({"head.mfs_threshold": "dev", "head.method": "linear"}, "head.mfs_threshold", "only the nearest method"),
])
def test_wsd_option_errors_name_file_and_key(overrides, key, message):
    with pytest.raises(ConfigError) as caught:
        fixture_config("wsd_elmo", None, **{"features.glove": GLOVE, **overrides})
    text = str(caught.value)
    assert text.startswith("command line: " + key) or f": {key}: " in text
    assert message in text and "\n" not in text


def test_mfs_baseline_column_next_to_both_arms(tmp_path, cache):
    """compare puts the most-frequent-sense baseline of the same test items beside both arms."""
    from elmo_tasks.comparison.runs import find_runs
    from elmo_tasks.comparison.table import comparison_table, report_markdown

    # the same head for both arms: compare refuses arms of different budgets
    glove = wsd_run(tmp_path / "runs" / "glove" / "seed0", None, **{"features.elmo": None, "head.mfs_threshold": "dev"})
    wsd_run(tmp_path / "runs" / "elmo" / "seed0", cache, **{"head.mfs_threshold": "dev"})
    records = find_runs([tmp_path / "runs"], warn=False)
    table = comparison_table(records, resamples=200)
    assert table["mfs_baseline"].iloc[0] == pytest.approx(glove["test"]["mfs_f1"])
    markdown = report_markdown(records)
    assert "| MFS baseline |" in markdown and f"| {100 * glove['test']['mfs_f1']:.2f} | 1 |" in markdown
