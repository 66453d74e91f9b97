"""``TaskModel``: a run folder loaded for prediction equals the run; inputs, outputs, batch invariance, GloVe
words no split had, CRF marginals, character offsets of spans."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from tasks_util import (
    TASK_FIXTURES,
    fixture_config,
    one_thread,  # noqa: F401  (autouse: one torch thread)
    read_jsonl,
)

from elmo_tasks import TaskModel
from elmo_tasks.errors import UserError
from elmo_tasks.experiment import load_config
from elmo_tasks.heads.crf import CRF
from elmo_tasks.task_model.archive import write_archive
from elmo_tasks.task_model.inputs import token_offsets
from elmo_tasks.task_model.outputs import crf_marginals, spans
from elmo_tasks.training import trainer

SMALL = {"dataset.max_examples": 60, "trainer.epochs": 2, "trainer.patience": 5}
GOLD = {"tagging": "tags", "classification": "label", "wsd": "sense"}


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Three small finished runs: an ELMo + GloVe CRF tagger, a GloVe classifier, an ELMo word-sense model."""
    root = tmp_path_factory.mktemp("runs")
    cache = tmp_path_factory.mktemp("elmo-cache")
    out = {}
    for name, uses_elmo in (("wnut16_elmo", True), ("glosses_glove", False), ("wsd_elmo", True)):
        config = fixture_config(name, cache if uses_elmo else None, **SMALL)
        trainer.run(config, root / name, progress=False, echo=False)
        out[name] = root / name
    return out


def split_items(run, kind):
    """The run's test split as input objects with their gold labels, and the run's own predictions."""
    rows = read_jsonl(run / "predictions" / "test.jsonl")
    items = []
    for row in rows:
        item = {"tokens": row["tokens"], GOLD[kind]: row["gold"]}
        if "target" in row:
            lemma, pos = row["lemma_key"].rsplit("%", 1)
            item.update(target=row["target"], lemma=lemma, pos=pos)
        items.append(item)
    return items, [row["pred"] for row in rows]


@pytest.mark.parametrize("name", ["wnut16_elmo", "glosses_glove", "wsd_elmo"])
def test_predictions_and_scores_equal_the_runs(runs, name):
    model = TaskModel.load(runs[name])
    metrics = json.loads((runs[name] / "metrics.json").read_text())
    assert model.task == metrics["task"] and model.features == metrics["features"]
    items, preds = split_items(runs[name], model.task)
    examples = model.examples(items)
    results = model.predict_examples(examples, batch_size=7)
    assert [r[GOLD[model.task]] for r in results] == preds
    assert model.evaluate(examples, results) == metrics["test"]
    info = model.info()
    assert json.loads(json.dumps(info)) == info
    assert info["test"] == metrics["test"] and info["labels"] == model.labels and info["task"] == model.task
    if "elmo" in model.features:
        assert info["bilm"]["name"] == "fixture" and len(info["bilm"]["digest"]) == 64


def test_results_do_not_depend_on_the_batch(runs):
    for name in ("wnut16_elmo", "glosses_glove"):
        model = TaskModel.load(runs[name])
        items, _ = split_items(runs[name], model.task)
        items = [{"tokens": i["tokens"]} for i in items[:24]]
        together = model.predict(items, batch_size=64)
        alone = [model.predict([item])[0] for item in items]
        for a, b in zip(together, alone):
            if model.task == "tagging":
                assert a["tags"] == b["tags"]
                assert max(abs(x - y) for x, y in zip(a["tag_probabilities"], b["tag_probabilities"])) <= 1e-6 + 1e-9  # one unit of the 6th place at most
            else:
                assert a["label"] == b["label"]
                assert max(abs(a["probabilities"][k] - b["probabilities"][k]) for k in a["probabilities"]) <= 1e-6 + 1e-9  # one unit of the 6th place at most


def test_tagging_results_and_input_forms(runs):
    model = TaskModel.load(runs["wnut16_elmo"])
    text = "I   saw  \"Lady Gaga\"\tin   Paris ,  Paris ."
    by_text, by_tokens, by_object = model.predict([text, text.split(), {"text": text}])
    assert by_text["tokens"] == ["I", "saw", "``", "Lady", "Gaga", "''", "in", "Paris", ",", "Paris", "."]
    assert by_object == by_text and by_tokens["tokens"] == text.split()
    assert len(by_text["tags"]) == len(by_text["tag_probabilities"]) == len(by_text["tokens"])
    assert all(0 < p <= 1 for p in by_text["tag_probabilities"])
    assert set(by_text["tags"]) <= set(model.labels)
    assert model.predict([""]) == [{"tokens": [], "tags": [], "tag_probabilities": [], "spans": []}]
    assert model.predict([]) == []


def test_bad_items_name_their_index_and_field(runs):
    tagger = TaskModel.load(runs["wnut16_elmo"])
    senses = TaskModel.load(runs["wsd_elmo"])
    classifier = TaskModel.load(runs["glosses_glove"])
    cases = [(tagger, ["fine", 3], "item 1: expected a string"),
             (tagger, ["ok", {"tokens": ["a b"]}], "item 1: \"tokens\" must be a list"),
             (tagger, [{"text": "a", "tokens": ["a"]}], "item 0: give exactly one of"),
             (tagger, [{"tokens": ["a"], "target": 0}], "item 0: \"target\" is only for word-sense models"),
             (tagger, [{"tokens": ["a", "b"], "tags": ["O"]}], "item 0: \"tags\" must be a list of 2 strings"),
             (senses, [{"tokens": ["a", "b"], "target": 0, "pos": "n"}, {"tokens": ["a"], "target": 3, "pos": "n"}],
              "item 1: \"target\" must be an integer within the tokens"),
             (senses, [{"tokens": ["a"], "target": True, "pos": "n"}], "item 0: \"target\" must be an integer"),
             (senses, ["a bare string"], "item 0: a word-sense model needs an object"),
             (senses, [{"tokens": ["bank"], "target": 0}], "item 0: \"pos\" is needed"),
             (classifier, ["good", "   "], "item 1:"),
             (classifier, [{"tokens": ["a"], "label": 3}], "item 0: \"label\" must be a string")]
    for model, items, message in cases:
        with pytest.raises(UserError, match=message.replace("(", r"\(")):
            model.examples(items)
    with pytest.raises(UserError, match="tokenize must be one of"):
        tagger.predict(["a"], tokenize="spacy")
    with pytest.raises(UserError, match="no gold labels"):
        tagger.evaluate(tagger.examples(["a b"]), tagger.predict(["a b"]))
    with pytest.raises(UserError, match="not found"):
        TaskModel.load(runs["wnut16_elmo"] / "nothing-here")
    with pytest.raises(UserError, match="not a finished run folder"):
        TaskModel.load(runs["wnut16_elmo"] / "checkpoints")


def test_word_senses_carry_their_synset_and_gloss(runs, tmp_path, monkeypatch):
    """The synset and WordNet definition of the answered sense, from the sense-frequency table, in the
    run folder and its archive; a sense the table lacks has null ones."""
    model = TaskModel.load(runs["wsd_elmo"])
    table = json.loads((TASK_FIXTURES / "wsd" / "sense_frequencies.json").read_text())
    by_sense = {e["sense"]: e for entries in table.values() for e in entries}
    items, _ = split_items(runs["wsd_elmo"], "wsd")
    results = model.predict(items[:20])
    assert all(r["sense"] in by_sense for r in results)
    for r in results:
        assert (r["synset"], r["gloss"]) == (by_sense[r["sense"]]["synset"], by_sense[r["sense"]]["gloss"])
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))
    write_archive(model.parts, tmp_path / "wsd.tar.gz", bilm_ref="fixture")
    assert TaskModel.load(tmp_path / "wsd.tar.gz").predict(items[:20]) == results
    model.parts.glosses.pop(results[0]["sense"])
    again = model.predict(items[:1])[0]
    assert again["sense"] == results[0]["sense"] and again["synset"] is None and again["gloss"] is None


def test_a_glove_word_no_split_had_gets_its_vector(tmp_path):
    """The table has a word the task never saw (a copy of 'london'): it predicts as 'london' does (up to the
    float16 its vector is kept in), unlike a word with no vector."""
    lines = (TASK_FIXTURES / "glove.fixture.50d.txt").read_text(encoding="utf-8").splitlines()
    london = next(line for line in lines if line.startswith("london "))
    glove = tmp_path / "glove.test.50d.txt"
    glove.write_text("\n".join(lines + ["zanzibarx" + london[len("london"):]]) + "\n", encoding="utf-8")
    config = load_config(TASK_FIXTURES / "wnut16_glove.yaml", {**SMALL, "features.glove.source": str(glove)})
    trainer.run(config, tmp_path / "run", progress=False, echo=False)
    model = TaskModel.load(tmp_path / "run")
    known, new, nonsense = model.predict([["flights", "to", w, "today"] for w in ("london", "zanzibarx", "qqqxv")])
    def gap(a, b):
        return max(abs(x - y) for x, y in zip(a["tag_probabilities"], b["tag_probabilities"]))

    assert gap(new, known) < 1e-4 < gap(new, nonsense)
    glove_feature = model.network.features.features["glove"]
    new_id, known_id = glove_feature.ids(["zanzibarx", "london"])
    assert new_id > 1 and glove_feature.ids(["qqqxv"])[0] == 1
    table = glove_feature.embedding.weight
    assert torch.equal(table[new_id], table[known_id].half().float())


def test_crf_marginals_equal_the_enumerated_posterior():
    torch.manual_seed(0)
    crf = CRF(3)
    with torch.no_grad():
        for p in crf.parameters():
            p.normal_()
    emissions = torch.randn(2, 4, 3)
    mask = torch.tensor([[True] * 4, [True, True, True, False]])
    marginals = crf_marginals(crf, emissions, mask)
    crf.requires_grad_(False)
    for row, n in ((0, 4), (1, 3)):
        totals = torch.zeros(n, 3)
        for path in itertools.product(range(3), repeat=n):
            score = crf.start[path[0]] + crf.end[path[-1]] + sum(emissions[row, i, t] for i, t in enumerate(path))
            score = score + sum(crf.transitions[a, b] for a, b in zip(path, path[1:]))
            for i, t in enumerate(path):
                totals[i, t] += math.exp(float(score))
        expected = totals / totals.sum(1, keepdim=True)
        assert torch.allclose(marginals[row, :n], expected, atol=1e-5)


def test_crf_marginals_stay_probabilities_on_long_confident_sentences():
    """Scores summing to thousands (40 tokens of large emissions): each position's marginals still sum to 1
    and none passes 1 (float32 sums there are off by 1e-4)."""
    torch.manual_seed(1)
    crf = CRF(21)
    emissions = torch.randn(3, 40, 21) * 30
    mask = torch.ones(3, 40, dtype=torch.bool)
    mask[2, 25:] = False
    with torch.no_grad():
        marginals = crf_marginals(crf, emissions, mask)
    assert marginals.dtype == torch.float32 and float(marginals.max()) <= 1.0
    sums = marginals.double().sum(-1)
    assert float((sums[mask] - 1).abs().max()) < 1e-6


def test_spans_and_character_offsets():
    text = "  New\tYork   New York,  \u201cthe  Big Apple\u201d \u2014 yes"
    tokens = ["New", "York", "New", "York", ",", "``", "the", "Big", "Apple", "''", "--", "yes"]
    offsets = token_offsets(text, tokens)
    assert [text[s:e] for s, e in offsets] == ["New", "York", "New", "York", ",", "\u201c", "the", "Big", "Apple",
                                                "\u201d", "\u2014", "yes"]
    assert offsets[2] == (text.index("New", 5), text.index("New", 5) + 3)  # the second of a repeated word
    tags = ["B-loc", "I-loc", "B-loc", "E-loc", "O", "O", "O", "B-x", "I-x", "O", "S-y", "I-z"]
    found = spans(tags, [0.5, 1.0, 1.0, 1.0, 1, 1, 1, 0.2, 0.4, 1, 0.9, 0.7])
    assert [(s["label"], s["token_start"], s["token_end"]) for s in found] == [
        ("loc", 0, 2), ("loc", 2, 4), ("x", 7, 9), ("y", 10, 11), ("z", 11, 12)]
    assert [s["score"] for s in found] == [0.75, 1.0, 0.3, 0.9, 0.7]
    assert token_offsets("a ``b''", ["a", "``", "b", "''"]) == [(0, 1), (2, 4), (4, 5), (5, 7)]
    assert token_offsets('say "hi"', ["say", "``", "hi", "''"]) == [(0, 3), (4, 5), (5, 7), (7, 8)]
