"""Task metrics: token accuracy and CoNLL span F1 (seqeval) for tagging, accuracy and macro-F1
(scikit-learn) for classification, precision/recall/F1 for word senses. Values are fractions in
[0, 1]; every function returns a flat ``{name: float}`` dict.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import seqeval.metrics as seqeval_metrics
import sklearn.metrics as sklearn_metrics

_BIO = re.compile(r"^(O|[BIES]-.+)$")


def is_bio(tags: Sequence[str]) -> bool:
    """Whether a tag set is a span scheme (BIO/IOBES): then span F1 is the tagging metric."""
    tags = list(tags)
    return bool(tags) and all(_BIO.match(t) for t in tags) and any(t != "O" for t in tags)


def tagging_metrics(gold: Sequence[Sequence[str]], pred: Sequence[Sequence[str]], spans: bool) -> dict[str, float]:
    """``accuracy`` over tokens; with ``spans``, ``span_f1``/``span_precision``/``span_recall``
    with CoNLL semantics (seqeval's default mode, as conlleval: a stray I- starts a span)."""
    pairs = [(g, p) for gs, ps in zip(gold, pred) for g, p in zip(gs, ps)]
    out = {"accuracy": sum(g == p for g, p in pairs) / max(len(pairs), 1)}
    if spans:
        gold_l, pred_l = [list(g) for g in gold], [list(p) for p in pred]
        out["span_f1"] = float(seqeval_metrics.f1_score(gold_l, pred_l, zero_division=0))
        out["span_precision"] = float(seqeval_metrics.precision_score(gold_l, pred_l, zero_division=0))
        out["span_recall"] = float(seqeval_metrics.recall_score(gold_l, pred_l, zero_division=0))
    return out


def classification_metrics(gold: Sequence[str], pred: Sequence[str]) -> dict[str, float]:
    """``accuracy`` and ``macro_f1`` (the unweighted mean of the per-class F1 over the gold and predicted classes)."""
    return {"accuracy": float(sklearn_metrics.accuracy_score(gold, pred)),
            "macro_f1": float(sklearn_metrics.f1_score(gold, pred, average="macro", zero_division=0))}


def wsd_metrics(gold: Sequence[str], pred: Sequence[str | None]) -> dict[str, float]:
    """Senseval-style scores: ``precision`` over answered instances, ``recall`` over all, their ``f1``;
    ``None`` is no answer."""
    answered = sum(p is not None for p in pred)
    correct = sum(p is not None and p == g for g, p in zip(gold, pred))
    precision = correct / answered if answered else 0.0
    recall = correct / len(gold) if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"f1": f1, "precision": precision, "recall": recall, "coverage": answered / max(len(gold), 1)}
