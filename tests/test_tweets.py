"""Tweet normalisation: entities unescaped, clitics split as the pretraining text, placeholders,
and the piece -> token map that keeps tags on the data's own tokens (real WNUT-16 sample)."""

from __future__ import annotations

from pathlib import Path

from elmo_tasks.data.tokenize import tokenize
from elmo_tasks.data.tweets import MENTION, URL, normalize_tweet

WNUT = Path(__file__).parent / "fixtures" / "tasks" / "wnut16" / "train.conll"


def test_contractions_entities_and_placeholders():
    tokens = ["I'm", "at", "@Phoebe1_", "'s", "&amp;", "don't", "http://bit.ly/bgCyZ0", "gonna", "&lt;3"]
    pieces, owners = normalize_tweet(tokens)
    assert pieces == ["I", "'m", "at", "@Phoebe1_", "'s", "&", "do", "n't", "http://bit.ly/bgCyZ0", "gon", "na", "<3"]
    assert owners == [0, 0, 1, 2, 3, 4, 5, 5, 6, 7, 7, 8]
    pieces, owners = normalize_tweet(tokens, placeholders=True)
    assert pieces[3] == MENTION and pieces[8] == URL and owners[8] == 6
    assert normalize_tweet(["www.example.com/x", "@", "bit.ly/abc", "@a_b"], placeholders=True)[0] == \
        [URL, "@", URL, MENTION]


def test_clitics_are_split_as_the_pretraining_tokeniser_splits_them():
    for word in ("don't", "I'm", "they're", "John's", "we'll", "Can't", "gonna", "cannot"):
        assert normalize_tweet([word])[0] == tokenize(word)


def test_every_token_of_the_wnut_sample_keeps_its_pieces():
    sentences, tokens = [], []
    for line in WNUT.read_text(encoding="utf-8").splitlines():
        if line.strip():
            tokens.append(line.split("\t")[0])
        elif tokens:
            sentences.append(tokens)
            tokens = []
    changed = 0
    for sentence in sentences:
        pieces, owners = normalize_tweet(sentence, placeholders=True)
        assert sorted(set(owners)) == list(range(len(sentence)))  # every token owns a piece
        assert owners == sorted(owners) and all(pieces)
        changed += len(pieces) != len(sentence) or pieces != sentence
    assert changed > 50  # the sample has contractions, entities, mentions and URLs


def test_pooling_averages_each_tokens_pieces():
    import torch

    from elmo_tasks.features import pooling

    owners = torch.tensor([[0, 0, 1, 2, -1]])
    pool = pooling(owners, 4)
    x = torch.tensor([[[2.0], [4.0], [5.0], [7.0], [100.0]]])
    assert (pool @ x).squeeze().tolist() == [3.0, 5.0, 7.0, 0.0]


def test_a_run_on_normalised_tweets_keeps_its_labels_on_the_data_tokens(tmp_path):
    """Real WNUT-16 sample, GloVe + the fixture biLM: the features read the pieces (the ELMo cache
    holds the normalised sentences), predictions and scores stay one per data token."""
    import json

    from tasks_util import fixture_config, read_conll

    from elmo_tasks.training.trainer import run

    cache = tmp_path / "cache"
    small = {"dataset.max_examples": 40, "trainer.epochs": 1, "head.hidden": 8}
    plain = run(fixture_config("wnut16_elmo", cache, **small), tmp_path / "plain", progress=False, echo=False)
    config = fixture_config("wnut16_elmo", cache, **small, **{"dataset.normalize": "tweets+placeholders"})
    normalised = run(config, tmp_path / "tweets", progress=False, echo=False)
    caches = {run_["feature_info"]["elmo_cache"]["test"] for run_ in (plain, normalised)}
    assert len(caches) == 2  # the biLM read other sentences
    gold = read_conll(WNUT.parent / "test.conll")[:40]
    rows = [json.loads(line) for line in (tmp_path / "tweets" / "predictions" / "test.jsonl").read_text().splitlines()]
    assert [r["gold"] for r in rows] == gold and all(len(r["pred"]) == len(r["gold"]) for r in rows)
    assert 0 <= normalised["test"]["span_f1"] <= 1


def test_unknown_normalisation_is_a_config_error():
    import pytest
    from tasks_util import fixture_config

    from elmo_tasks.schema import ConfigError

    with pytest.raises(ConfigError, match=r"dataset.normalize: must be one of 'none', 'tweets', 'tweets\+placeholders'"):
        fixture_config("wnut16_glove", None, **{"dataset.normalize": "twitter"})
