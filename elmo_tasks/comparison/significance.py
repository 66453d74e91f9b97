"""Is GloVe + ELMo's lead on a task real? A paired bootstrap over test items and seeds.

Every run writes its test predictions (``predictions/test.jsonl``, one line per test item: a
sentence for tagging and classification, a target word for word senses). Each item becomes a row
of counts from which the task's main metric is a ratio of sums (see :func:`item_counts`), so the
score of any resample of items is computed exactly, not approximated per item.

One bootstrap replicate draws ``n`` test items with replacement (the same items for both arms:
the test is paired) and, within each arm, its seeds with replacement; an arm's score is the mean,
over the drawn seeds, of each drawn run's metric on the drawn items. The figure is the two-sided
bootstrap p-value of the difference (ELMo minus GloVe)::

    p = min(1, 2 * (1 + min(#{d* <= 0}, #{d* >= 0})) / (B + 1))

the smallest alpha at which the percentile interval of the difference excludes 0. Resampling
items covers the test set's sampling error; resampling seeds covers the training runs' spread,
so a lead that one lucky seed makes is not called significant.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

RESAMPLES = 10_000
LEVEL = 0.05  # differences with p below this are "significant" in the verdict
MIN_SEEDS = 3  # seeds per arm below which no significance figure is given (elmo_tasks.comparison.table)

# main metric -> how many counts per item (see item_counts)
COUNTED = {"accuracy": 2, "span_f1": 3, "f1": 3}


def item_counts(metric: str, gold: Sequence[Any], pred: Sequence[Any]) -> np.ndarray:
    """(items, k) counts of one run's predictions; ``score(metric, counts.sum(0))`` is its metric.

    * ``accuracy``: (correct, total): tokens for tagging, 1 per item for classification;
    * ``span_f1``: (spans right, spans predicted, gold spans) per sentence (CoNLL spans, seqeval);
    * ``f1`` (word senses): (right, answered, 1) per target.
    """
    if metric not in COUNTED:
        raise ValueError(f"no per-item counts for the metric {metric!r} (known: {', '.join(COUNTED)})")
    rows = []
    if metric == "span_f1":
        from seqeval.metrics.sequence_labeling import get_entities

        for g, p in zip(gold, pred):
            gold_spans, pred_spans = set(get_entities(list(g))), set(get_entities(list(p or [])))
            rows.append((len(gold_spans & pred_spans), len(pred_spans), len(gold_spans)))
    elif metric == "accuracy":
        for g, p in zip(gold, pred):
            if isinstance(g, list):
                rows.append((sum(a == b for a, b in zip(g, p or [])), len(g)))
            else:
                rows.append((int(g == p), 1))
    else:
        for g, p in zip(gold, pred):
            rows.append((int(p is not None and p == g), int(p is not None), 1))
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), COUNTED[metric])


def score(metric: str, totals: np.ndarray) -> np.ndarray:
    """The metric from summed counts (last axis: the counts of :func:`item_counts`); 0 where undefined."""
    totals = np.asarray(totals, dtype=np.float64)
    if metric == "accuracy":
        num, den = totals[..., 0], totals[..., 1]
    else:  # F1 = 2 * right / (predicted + gold) = 2PR / (P + R)
        num, den = 2 * totals[..., 0], totals[..., 1] + totals[..., 2]
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), 0.0)


@dataclass
class Bootstrap:
    """The bootstrap of one task: observed difference, its 95% percentile interval and p-value."""

    difference: float
    low: float
    high: float
    p_value: float
    resamples: int

    @property
    def significant(self) -> bool:
        return self.p_value < LEVEL


def paired_bootstrap(metric: str, glove: Sequence[np.ndarray], glove_elmo: Sequence[np.ndarray],
                     resamples: int = RESAMPLES, seed: int = 0, chunk_cells: int = 4_000_000) -> Bootstrap:
    """Bootstrap the difference of mean scores (GloVe + ELMo minus GloVe) over test items and seeds.

    ``glove`` and ``glove_elmo`` hold one (items, k) count array per run (per seed), all over the
    same test items in the same order. Deterministic for a given ``seed``.
    """
    if not glove or not glove_elmo:
        raise ValueError("each arm needs at least one run")
    if len({np.shape(c) for c in [*glove, *glove_elmo]}) != 1:
        raise ValueError("the runs of both arms must score the same (non-empty) test items")
    arms = [np.stack([np.asarray(c, dtype=np.float64) for c in runs]) for runs in (glove, glove_elmo)]
    n = arms[0].shape[1]
    if n == 0 or any(a.shape[1:] != arms[0].shape[1:] for a in arms):
        raise ValueError("the runs of both arms must score the same (non-empty) test items")
    observed = [float(score(metric, a.sum(axis=1)).mean()) for a in arms]
    rng = np.random.default_rng(seed)
    # all runs' counts side by side: one matrix product scores every run on a resample
    stacked = np.concatenate([a.transpose(1, 0, 2).reshape(n, -1) for a in arms], axis=1)
    k = arms[0].shape[2]
    sizes = [a.shape[0] for a in arms]
    diffs = np.empty(resamples)
    chunk = max(1, min(resamples, chunk_cells // n))
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        items = rng.integers(0, n, size=(b, n))
        weights = np.bincount((items + n * np.arange(b)[:, None]).ravel(), minlength=b * n).reshape(b, n)
        scores = score(metric, (weights @ stacked).reshape(b, sum(sizes), k))  # (b, runs)
        means = []
        for offset, size in zip((0, sizes[0]), sizes):
            drawn = rng.integers(0, size, size=(b, size))  # seeds drawn with replacement
            means.append(np.take_along_axis(scores[:, offset:offset + size], drawn, axis=1).mean(axis=1))
        diffs[start:start + b] = means[1] - means[0]
    below, above = int((diffs <= 0).sum()), int((diffs >= 0).sum())
    p = min(1.0, 2 * (1 + min(below, above)) / (resamples + 1))
    low, high = np.percentile(diffs, [2.5, 97.5])
    return Bootstrap(observed[1] - observed[0], float(low), float(high), p, resamples)


def read_predictions(run_dir: str | Path, split: str = "test") -> tuple[list[Any], list[Any]]:
    """(gold, pred) of a run folder's ``predictions/SPLIT.jsonl``."""
    path = Path(run_dir) / "predictions" / f"{split}.jsonl"
    gold, pred = [], []
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                row = json.loads(line)
                gold.append(row["gold"])
                pred.append(row["pred"])
    return gold, pred


def task_bootstrap(metric: str, glove: Sequence[Any], glove_elmo: Sequence[Any], resamples: int = RESAMPLES,
                   seed: int = 0) -> Bootstrap | str:
    """The bootstrap of one task from its runs' test predictions (records with ``run_dir`` and
    ``test``), or the reason it cannot be computed (missing predictions, different test items, a
    metric without per-item counts, counts that do not reproduce a run's test score)."""
    if metric not in COUNTED:
        return f"no per-item form of {metric}"
    arms: list[list[np.ndarray]] = [[], []]
    reference = None
    for arm, runs in enumerate((glove, glove_elmo)):
        for record in runs:
            try:
                gold, pred = read_predictions(record.run_dir)
            except (OSError, ValueError, KeyError):
                return f"no readable predictions/test.jsonl in the {record.setting} run of seed {record.seed}"
            if reference is None:
                reference = gold
            elif gold != reference:
                return (f"the {record.setting} run of seed {record.seed} scored other test items than the "
                        f"{glove[0].setting} run of seed {glove[0].seed}")
            counts = item_counts(metric, gold, pred)
            if abs(float(score(metric, counts.sum(axis=0))) - record.test) > 1e-5:
                return f"the predictions of the {record.setting} run of seed {record.seed} do not give its test score"
            arms[arm].append(counts)
    if not arms[0] or not arms[1] or reference is None or not reference:
        return "an arm without runs or without test items"
    return paired_bootstrap(metric, arms[0], arms[1], resamples=resamples, seed=seed)
