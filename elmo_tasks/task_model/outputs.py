"""From a batch's features to one plain result per sentence (JSON-serialisable dicts).

* tagging: ``tokens``, ``tags``, ``tag_probabilities`` (softmax: the chosen tag's probability;
  CRF: its marginal, by forward-backward in float32) and ``spans`` of BIO/BIOES tags;
* classification: ``label`` and ``probabilities`` (label -> probability);
* word senses: ``sense``, ``backoff`` (the most frequent sense answered), ``score``.

The labels chosen are those of the head's own ``predict`` (the same decoding on the same scores).
"""

from __future__ import annotations

import math
from typing import Any

import torch

from elmo_tasks.features import Features
from elmo_tasks.heads.crf import CRF
from elmo_tasks.heads.wsd import choose
from elmo_tasks.task import Task
from elmo_tasks.task_model.inputs import Example


def tag_scores(head: Any, features: Features) -> torch.Tensor:
    """(B, T, K) float32 tag scores of a tagging head (the tagger's emissions, the probe's logits)."""
    if hasattr(head, "emissions"):
        return head.emissions(features)
    return head.linear(features.inputs).float()


def crf_marginals(crf: CRF, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """(B, T, K) posterior probability of each tag at each position (forward-backward, autocast off)."""
    with torch.autocast(emissions.device.type, enabled=False):
        return crf.marginals(emissions, mask)


def spans(tags: list[str], probabilities: list[float]) -> list[dict[str, Any]]:
    """Spans of BIO / BIOES (IOBES, BILOU) tags: ``label``, ``token_start``, ``token_end`` (exclusive)
    and ``score`` (the mean tag probability). An I- or E- tag that does not continue a span starts one."""
    out: list[dict[str, Any]] = []
    current: dict[str, Any] | None = None

    def close(end: int) -> None:
        nonlocal current
        if current is not None:
            current["token_end"] = end
            current["score"] = round(sum(probabilities[current["token_start"]:end]) / (end - current["token_start"]), 6)
            out.append(current)
            current = None

    for i, tag in enumerate(tags):
        prefix, _, label = tag.partition("-")
        if not label or prefix not in ("B", "I", "E", "S", "L", "U"):
            close(i)
            continue
        if prefix in ("B", "S", "U") or current is None or current["label"] != label:
            close(i)
            current = {"label": label, "token_start": i}
        if prefix in ("E", "S", "L", "U"):
            close(i + 1)
    close(len(tags))
    return out


def tagging_results(head: Any, task: Task, features: Features, examples: list[Example]) -> list[dict[str, Any]]:
    emissions = tag_scores(head, features)
    mask = features.mask
    crf = getattr(head, "crf", None)
    if crf is not None:
        paths = crf.decode(emissions, mask)
        probabilities = crf_marginals(crf, emissions, mask)
    else:
        best = emissions.argmax(-1).tolist()
        paths = [row[:n] for row, n in zip(best, mask.sum(1).tolist())]
        probabilities = torch.softmax(emissions.float(), dim=-1)
    index = torch.zeros(mask.shape, dtype=torch.long)
    for row, path in enumerate(paths):
        index[row, :len(path)] = torch.tensor(path, dtype=torch.long)
    chosen = probabilities.gather(2, index.to(probabilities.device).unsqueeze(2)).squeeze(2).tolist()
    out = []
    for example, path, probs in zip(examples, paths, chosen):
        tags = [task.labels[i] for i in path]
        tag_probs = [round(p, 6) for p in probs[:len(path)]]
        result: dict[str, Any] = {"tokens": example.tokens, "tags": tags, "tag_probabilities": tag_probs}
        if task.spans:
            found = spans(tags, probs[:len(path)])
            if example.offsets is not None:
                for span in found:
                    span["start"] = example.offsets[span["token_start"]][0]
                    span["end"] = example.offsets[span["token_end"] - 1][1]
                    span["text"] = example.text[span["start"]:span["end"]]
            result["spans"] = found
        out.append(result)
    return out


def classification_results(head: Any, task: Task, features: Features, examples: list[Example]) -> list[dict[str, Any]]:
    logits = head.logits(features)
    labels = logits.argmax(-1).tolist()
    probabilities = torch.softmax(logits.float(), dim=-1).tolist()
    return [{"label": task.labels[label], "probabilities": {name: round(p, 6) for name, p in zip(task.labels, probs)}}
            for label, probs in zip(labels, probabilities)]


def wsd_results(head: Any, task: Task, features: Features, batch: dict[str, Any], examples: list[Example],
                glosses: dict[str, dict[str, str]]) -> list[dict[str, Any]]:
    threshold = float(head.threshold)
    out = []
    for example, (best, score, mfs) in zip(examples, head.nearest(features, batch)):
        answer = choose(best, score, mfs, threshold)
        sense = task.labels[answer] if answer is not None else None
        result: dict[str, Any] = {"tokens": example.tokens, "target": example.target, "lemma": example.lemma,
                                  "pos": example.pos, "sense": sense,
                                  "backoff": answer is not None and answer != best,
                                  "score": round(score, 6) if best is not None and math.isfinite(score) else None}
        known = glosses.get(sense or "", {})
        result.update(synset=known.get("synset"), gloss=known.get("gloss"))
        out.append(result)
    return out
