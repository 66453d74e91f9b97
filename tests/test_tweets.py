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
