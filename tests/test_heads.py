"""Each head trains for a few steps on a small real sample and beats chance; the CRF is exact."""

from __future__ import annotations

import itertools

import pytest
import torch
from tasks_util import (
    TASK_FIXTURES,
    fixture_config,
    one_thread,  # noqa: F401  (autouse: one torch thread)
    prior_agreement,
    read_conll,
    read_jsonl,
    wsd_chance,
)

from elmo_tasks.heads.crf import CRF, bio_transitions
from elmo_tasks.training.trainer import run


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return tmp_path_factory.mktemp("elmo-cache")


def train(tmp_path, name, cache=None, **overrides):
    config = fixture_config(name, cache, **overrides)
    return run(config, tmp_path / "run", progress=False, echo=False)


def tag_chance() -> float:
    train_tags = [t for s in read_conll(TASK_FIXTURES / "wnut16" / "train.conll") for t in s]
    test_tags = [t for s in read_conll(TASK_FIXTURES / "wnut16" / "test.conll") for t in s]
    return prior_agreement(train_tags, test_tags)


@pytest.mark.parametrize("output, lr", [("crf", 0.01), ("softmax", 0.03)])
def test_tagger_finds_entities(tmp_path, output, lr):
    # the softmax tagger needs a larger step to leave the all-O start within 3 epochs
    metrics = train(tmp_path, "wnut16_glove", **{"head.output": output, "trainer.lr": lr, "head.dropout": 0.0})
    assert metrics["main_metric"] == "span_f1"
    # an all-O tagger (the majority class) has span F1 0; guessing by frequency far below 0.05
    assert metrics["test"]["span_f1"] > 0.10
    assert metrics["test"]["accuracy"] > tag_chance()


def test_classifier_beats_the_majority_class(tmp_path):
    metrics = train(tmp_path, "glosses_glove")
    labels = [r["label"] for r in read_jsonl(TASK_FIXTURES / "glosses" / "test.jsonl")]
    majority = max(labels.count(l) for l in set(labels)) / len(labels)
    assert metrics["main_metric"] == "accuracy"
    assert metrics["test"]["accuracy"] > majority + 0.2
    assert 0 < metrics["test"]["macro_f1"] <= 1


@pytest.mark.parametrize("pooling", ["mean", "attention"])
def test_classifier_poolings(tmp_path, pooling):
    metrics = train(tmp_path, "glosses_glove", **{"head.pooling": pooling, "trainer.epochs": 2})
    assert metrics["test"]["accuracy"] > 0.4  # 4 balanced classes: chance 0.25


def test_wsd_nearest_sense_beats_chance_and_backs_off(tmp_path, cache):
    metrics = train(tmp_path, "wsd_elmo", cache)
    assert metrics["main_metric"] == "f1" and metrics["epochs_run"] == 1
    assert metrics["test"]["coverage"] == 1.0  # the unseen lemma backs off to its most frequent sense
    assert metrics["test"]["f1"] > wsd_chance("test") + 0.05
    assert 0 < metrics["test"]["mfs_f1"] < 1
    rows = read_jsonl(tmp_path / "run" / "predictions" / "test.jsonl")
    backed_off = [r for r in rows if r["lemma_key"] not in {f"{t['lemma']}%{t['pos']}" for t in
                                                             read_jsonl(TASK_FIXTURES / "wsd" / "train.jsonl")}]
    assert backed_off and all(r["pred"] is not None for r in backed_off)


def test_wsd_glove_window_and_linear(tmp_path):
    glove = {"features.elmo": None, "features.glove": {"source": str(TASK_FIXTURES / "glove.fixture.50d.txt")}}
    metrics = train(tmp_path / "window", "wsd_elmo", **glove, **{"head.window": 3})
    assert metrics["test"]["f1"] > wsd_chance("test") + 0.05
    metrics = train(tmp_path / "linear", "wsd_elmo", **glove, **{"head.method": "linear", "head.window": 3,
                                                                 "trainer.epochs": 3, "trainer.lr": 0.01})
    assert metrics["epochs_run"] == 3 and metrics["test"]["coverage"] == 1.0
    assert metrics["test"]["f1"] > wsd_chance("test")


def test_probe_on_one_layer(tmp_path, cache):
    metrics = train(tmp_path, "wnut16_probe", cache, **{"trainer.epochs": 2})
    assert metrics["mix"] == [{"where": "input", "weights": [0.0, 1.0, 0.0], "gamma": 1.0, "trainable": False}]
    assert metrics["test"]["accuracy"] > tag_chance()


@torch.no_grad()
def brute_force(crf: CRF, emissions: torch.Tensor) -> tuple[torch.Tensor, list[int]]:
    trans, start = crf._scores()
    n, k = emissions.shape
    scores = {}
    for path in itertools.product(range(k), repeat=n):
        s = start[path[0]] + emissions[0, path[0]] + crf.end[path[-1]]
        s = s + sum(trans[path[i - 1], path[i]] + emissions[i, path[i]] for i in range(1, n))
        scores[path] = s
    log_z = torch.logsumexp(torch.stack(list(scores.values())), 0)
    return log_z, list(max(scores, key=lambda p: scores[p].item()))


def test_crf_likelihood_and_viterbi_match_brute_force():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    tags = torch.tensor([[0, 2, 1, 1], [2, 2, 0, -100]])
    expected = []
    for row in range(2):
        n = int(mask[row].sum())
        log_z, best = brute_force(crf, emissions[row, :n])
        gold = tags[row, :n]
        trans, start = crf._scores()
        score = start[gold[0]] + emissions[row, 0, gold[0]] + crf.end[gold[-1]]
        score = score + sum(trans[gold[i - 1], gold[i]] + emissions[row, i, gold[i]] for i in range(1, n))
        expected.append(log_z - score)
        assert crf.decode(emissions[row:row + 1, :n], mask[row:row + 1, :n])[0] == best
    assert torch.allclose(crf.nll(emissions, tags, mask), torch.stack(expected).mean(), atol=1e-5)
    assert crf.decode(emissions, mask)[1] == brute_force(crf, emissions[1, :3])[1]


def test_crf_likelihood_and_gradient_hold_at_large_scores_under_autocast():
    # against a per-sentence forward algorithm, on scores of +-60 whose exponentials over- and
    # underflow float32, with BIO's forbidden moves, called under bfloat16 autocast (the CRF
    # computes in float32: a bfloat16 sum over a sentence would be off by whole units)
    labels = ["B-PER", "I-PER", "B-LOC", "I-LOC", "O"]
    torch.manual_seed(1)
    crf = CRF(5, *bio_transitions(labels))
    with torch.no_grad():
        crf.transitions.normal_(0, 20)
    emissions = (torch.randn(3, 6, 5) * 60).requires_grad_(True)
    mask = torch.tensor([[True] * 6, [True] * 4 + [False] * 2, [True] + [False] * 5])
    tags = torch.tensor([[0, 1, 4, 2, 3, 3], [4, 4, 0, 1, -100, -100], [2, -100, -100, -100, -100, -100]])

    def reference_log_z(row: int) -> torch.Tensor:
        trans, start = crf._scores()
        alpha = start + emissions[row, 0]
        for i in range(1, int(mask[row].sum())):
            alpha = torch.logsumexp(alpha.unsqueeze(1) + trans, dim=0) + emissions[row, i]
        return torch.logsumexp(alpha + crf.end, dim=0)

    expected = torch.stack([reference_log_z(r) for r in range(3)]).mean()
    (grad_ref,) = torch.autograd.grad(expected, emissions)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        nll = crf.nll(emissions, tags, mask)
    assert nll.dtype == torch.float32
    log_z_mean = nll + _gold_score_mean(crf, emissions, tags, mask)
    assert torch.allclose(log_z_mean, expected, rtol=1e-5, atol=1e-3)
    (grad,) = torch.autograd.grad(log_z_mean, emissions)
    assert torch.allclose(grad, grad_ref, atol=1e-4)


def _gold_score_mean(crf: CRF, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    trans, start = crf._scores()
    scores = []
    for row in range(emissions.shape[0]):
        n = int(mask[row].sum())
        gold = tags[row, :n]
        s = start[gold[0]] + emissions[row, 0, gold[0]] + crf.end[gold[-1]]
        scores.append(s + sum((trans[gold[i - 1], gold[i]] + emissions[row, i, gold[i]] for i in range(1, n)),
                              torch.zeros(())))
    return torch.stack(scores).mean()


def test_crf_bio_constraints():
    labels = ["B-PER", "I-PER", "B-LOC", "I-LOC", "O"]
    allowed, start = bio_transitions(labels)
    assert not start[1] and start[0] and start[4]
    assert allowed[0, 1] and allowed[1, 1] and not allowed[4, 1] and not allowed[2, 1]
    crf = CRF(5, allowed, start)
    emissions = torch.zeros(1, 3, 5)
    emissions[0, :, 3] = 5.0  # I-LOC everywhere would win without constraints
    path = crf.decode(emissions, torch.ones(1, 3, dtype=torch.bool))[0]
    assert path[0] != 3 and all(labels[b] != "I-LOC" or labels[a] in ("B-LOC", "I-LOC") for a, b in zip(path, path[1:]))


def test_dropout_has_nn_dropouts_distribution():
    from elmo_tasks.modules import Dropout

    torch.manual_seed(0)
    x = torch.ones(200, 500, requires_grad=True)
    drop = Dropout(0.3)
    y = drop(x)
    kept = y != 0
    assert abs(kept.float().mean().item() - 0.7) < 0.005  # 100,000 draws: 3 sigma is 0.0043
    assert torch.allclose(y[kept], torch.full_like(y[kept], 1 / 0.7))
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())  # the gradient goes through the kept values, scaled alike
    assert drop.eval()(x) is x  # evaluation: the identity
    assert Dropout(0.0).train()(x) is x
    assert torch.count_nonzero(Dropout(1.0).train()(x)) == 0
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Dropout(1.5)


def test_amp_trains_in_bfloat16_where_the_cpu_has_it(tmp_path):
    from elmo_tasks.device import bf16_supported

    overrides = {"trainer.lr": 0.01, "head.dropout": 0.0}
    full = train(tmp_path / "float32", "wnut16_glove", **overrides)
    amp = train(tmp_path / "amp", "wnut16_glove", **overrides, **{"trainer.amp": True})
    assert full["precision"] == "float32"
    if not bf16_supported(torch.device("cpu")):
        assert amp["precision"] == "float32" and amp["test"] == full["test"]
        return
    assert amp["precision"] == "bfloat16"
    loss, amp_loss = full["history"][0]["train_loss"], amp["history"][0]["train_loss"]
    assert amp_loss != loss  # it did run otherwise ...
    assert abs(amp_loss - loss) < 0.05 * loss  # ... and learns alike (bfloat16 keeps 3 significant digits)
    assert amp["test"]["span_f1"] > 0.10  # (see test_tagger_finds_entities)


def _reference_nll(crf: CRF, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The CRF's loss through autograd: a log-sum-exp over (B, K, K) per position (the code before)."""
    trans, start = crf._scores()
    alpha = start.unsqueeze(0) + emissions[:, 0]
    for i in range(1, emissions.shape[1]):
        step = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, i]
        alpha = torch.where(mask[:, i:i + 1], step, alpha)
    log_z = torch.logsumexp(alpha + crf.end.unsqueeze(0), dim=1)
    return log_z.mean() - _gold_score_mean(crf, emissions, tags, mask)


@pytest.mark.parametrize("scale", [1.0, 30.0])
def test_crf_gradients_equal_autograd_of_the_forward_algorithm(scale):
    # every parameter's gradient, BIO's forbidden moves, lengths 1 and padding, small and large scores
    labels = ["B-PER", "I-PER", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "O"]
    torch.manual_seed(2)
    crf = CRF(7, *bio_transitions(labels))
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_(0, scale / 10)
    emissions = (torch.randn(5, 9, 7) * scale).requires_grad_(True)
    lengths = torch.tensor([9, 1, 4, 9, 2])
    mask = torch.arange(9).unsqueeze(0) < lengths.unsqueeze(1)
    tags = torch.where(mask, torch.tensor(6), torch.tensor(-100))
    tags[0, 2], tags[0, 3], tags[3, 0] = 0, 1, 4
    params = [emissions, crf.transitions, crf.start, crf.end]
    ours = crf.nll(emissions, tags, mask)
    reference = _reference_nll(crf, emissions, tags, mask)
    assert torch.allclose(ours, reference, rtol=1e-6, atol=1e-4)
    for got, want in zip(torch.autograd.grad(ours, params), torch.autograd.grad(reference, params)):
        assert torch.allclose(got, want, atol=1e-5), (got - want).abs().max()
