"""The significance figure: per-item counts reproduce the task metrics, and the paired bootstrap
matches known cases (the normal approximation of a paired accuracy difference, identical arms,
one arm right wherever the other is, a lead made by one lucky seed)."""

from __future__ import annotations

import random

import numpy as np
import pytest
from scipy.stats import norm

from elmo_tasks.comparison.significance import item_counts, paired_bootstrap, score
from elmo_tasks.metrics import tagging_metrics, wsd_metrics


def accuracy_counts(right: np.ndarray) -> np.ndarray:
    """(items, 2) counts of a classifier that is right where ``right`` is 1."""
    return np.stack([right, np.ones_like(right)], axis=1).astype(float)


def paired_arms(n: int, glove_only: int, elmo_only: int, both: int) -> tuple[np.ndarray, np.ndarray]:
    glove, elmo = np.zeros(n), np.zeros(n)
    glove[:glove_only] = 1
    elmo[glove_only:glove_only + elmo_only] = 1
    glove[glove_only + elmo_only:glove_only + elmo_only + both] = 1
    elmo[glove_only + elmo_only:glove_only + elmo_only + both] = 1
    return accuracy_counts(glove), accuracy_counts(elmo)


@pytest.mark.parametrize("glove_only, elmo_only", [(40, 58), (40, 70), (60, 35)])
def test_paired_bootstrap_matches_the_normal_approximation(glove_only, elmo_only):
    """One seed per arm, accuracy on n items: the bootstrap of the mean paired difference d_i in
    {-1, 0, 1} is approximately normal with sd(d)/sqrt(n); d* <= 0 counts the tie at 0, which
    the continuity correction (half a step, 0.5/n) accounts for."""
    n = 1000
    glove, elmo = paired_arms(n, glove_only, elmo_only, both=700)
    d = elmo[:, 0] - glove[:, 0]
    se = d.std() / np.sqrt(n)
    expected = 2 * norm.sf((abs(d.mean()) - 0.5 / n) / se)
    result = paired_bootstrap("accuracy", [glove], [elmo], resamples=20_000, seed=1)
    assert result.difference == pytest.approx((elmo_only - glove_only) / n)
    assert result.p_value == pytest.approx(expected, abs=0.008)
    # the 95% interval is about the normal one
    assert result.low == pytest.approx(d.mean() - 1.96 * se, abs=0.003)
    assert result.high == pytest.approx(d.mean() + 1.96 * se, abs=0.003)


def test_identical_arms_and_a_dominating_arm():
    glove, elmo = paired_arms(300, glove_only=0, elmo_only=30, both=150)
    same = paired_bootstrap("accuracy", [glove], [glove], resamples=2000)
    assert same.p_value == 1.0 and same.difference == 0.0 and not same.significant
    better = paired_bootstrap("accuracy", [glove], [elmo], resamples=2000)
    # ELMo is right wherever GloVe is, and on 30 more items: no resample favours GloVe
    assert better.p_value == pytest.approx(2 / 2001) and better.significant and better.low > 0


def test_one_lucky_seed_is_not_significant_but_five_good_ones_are():
    """Resampling seeds: a lead that one of five seeds makes is not called significant, while
    the same lead from every seed is."""
    n = 2000
    glove = [paired_arms(n, 0, 0, 1400)[0] for _ in range(5)]
    good = paired_arms(n, 0, 150, 1400)[1]  # +7.5 points
    lucky = [good] + [paired_arms(n, 0, 0, 1400)[1]] * 4  # mean lead +1.5 points, from one seed
    steady = [paired_arms(n, 0, 30, 1400)[1]] * 5  # +1.5 points from every seed
    lucky_result = paired_bootstrap("accuracy", glove, lucky, resamples=4000)
    steady_result = paired_bootstrap("accuracy", glove, steady, resamples=4000)
    assert lucky_result.difference == pytest.approx(steady_result.difference)
    assert not lucky_result.significant and lucky_result.p_value > 0.2
    assert steady_result.significant


def test_bootstrap_is_deterministic_and_checks_its_input():
    glove, elmo = paired_arms(200, 10, 20, 100)
    assert paired_bootstrap("accuracy", [glove], [elmo], resamples=500, seed=3) == \
        paired_bootstrap("accuracy", [glove], [elmo], resamples=500, seed=3)
    with pytest.raises(ValueError, match="same"):
        paired_bootstrap("accuracy", [glove], [elmo[:100]])
    with pytest.raises(ValueError, match="at least one run"):
        paired_bootstrap("accuracy", [], [elmo])
    with pytest.raises(ValueError, match="macro_f1"):
        item_counts("macro_f1", ["a"], ["b"])


def test_item_counts_reproduce_the_task_metrics():
    """Summed per-item counts give exactly what seqeval / the WSD scorer give on the whole set."""
    rng = random.Random(0)
    tags = ["O", "O", "O", "B-PER", "I-PER", "B-LOC", "I-LOC", "I-PER"]
    gold = [[rng.choice(tags) for _ in range(rng.randint(1, 12))] for _ in range(300)]
    pred = [[t if rng.random() < 0.7 else rng.choice(tags) for t in sentence] for sentence in gold]
    expected = tagging_metrics(gold, pred, spans=True)
    assert float(score("span_f1", item_counts("span_f1", gold, pred).sum(0))) == pytest.approx(expected["span_f1"])
    assert float(score("accuracy", item_counts("accuracy", gold, pred).sum(0))) == pytest.approx(expected["accuracy"])

    senses = ["a%1", "a%2", "b%1"]
    gold_senses = [rng.choice(senses) for _ in range(200)]
    pred_senses = [None if rng.random() < 0.2 else rng.choice(senses) for _ in gold_senses]
    assert float(score("f1", item_counts("f1", gold_senses, pred_senses).sum(0))) == \
        pytest.approx(wsd_metrics(gold_senses, pred_senses)["f1"])
    labels = [rng.choice("xyz") for _ in range(100)]
    guesses = [rng.choice("xyz") for _ in labels]
    assert float(score("accuracy", item_counts("accuracy", labels, guesses).sum(0))) == \
        pytest.approx(sum(a == b for a, b in zip(labels, guesses)) / 100)
