"""The word-sense sets from WordNet 3.0 (Debian ``wordnet-base`` + ``wordnet-sense-index``): usage
examples labelled with the sense key of the synset lemma they contain."""

from __future__ import annotations

import collections
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from elmo_tasks.data import readers
from elmo_tasks.data.packages import debian_package, package
from elmo_tasks.data.recipes.base import SENSE_FREQUENCIES, SPLITS, Built, Recipe, key_of, unit
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.errors import UserError

# the share of lemmas whose instances all go to dev or test in wordnet-wsd (half each)
HELD_OUT_LEMMAS = 0.1
WORDNET_LICENCE = ("WordNet 3.0 licence (Princeton University): use, copy, modify and distribute for any purpose "
                   "without fee, with the copyright notice 'WordNet 3.0 Copyright 2006 by Princeton University. "
                   "All rights reserved.' and its disclaimer kept on all copies")


def fetch_wordnet(workdir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
    """The WordNet files the word-sense sets read, from the two pinned Debian packages."""
    base = debian_package("wordnet-base") / "usr" / "share" / "wordnet"
    sense = debian_package("wordnet-sense-index") / "usr" / "share" / "wordnet"
    files = {f"data.{p}": base / f"data.{p}" for p in ("noun", "verb", "adj", "adv")}
    files.update({f"{p}.exc": base / f"{p}.exc" for p in ("noun", "verb", "adj", "adv")})
    files["index.sense"] = sense / "index.sense"
    for path in files.values():
        if not path.is_file():
            raise UserError(f"the Debian package does not hold {path} (needed for wordnet-wsd)")
    return files, {"registry": "debian",
                   "packages": [package(name).describe() for name in ("wordnet-base", "wordnet-sense-index")],
                   "files_sha256": {role: sha256_file(path) for role, path in sorted(files.items())}}



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
_FIRST_EXAMPLE = re.compile(r'[;:]\s*"')  # the usage examples follow the definition as '; "..."'


def read_exceptions(files: dict[str, Path]) -> dict[str, dict[str, set[str]]]:
    """pos -> inflected form -> base forms, from WordNet's ``*.exc`` files."""
    out: dict[str, dict[str, set[str]]] = {}
    for name, pos in _DATA_FILES.items():
        table: dict[str, set[str]] = collections.defaultdict(set)
        path = files.get(f"{name}.exc")
        if path is not None:
            for _number, line in readers.lines(path):
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


def matches(token: str, lemma: str, pos: str, exceptions: dict[str, dict[str, set[str]]]) -> bool:
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
    for number, line in readers.lines(path):
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
        for number, line in readers.lines(path):
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


def definition(gloss: str) -> str:
    """A WordNet gloss without its usage examples (quotes inside the definition stay)."""
    gloss = " ".join(gloss.split())
    cut = 0 if gloss.startswith('"') else (m.start() if (m := _FIRST_EXAMPLE.search(gloss)) else len(gloss))
    return gloss[:cut].strip(" ;:,")


def read_definitions(files: dict[str, Path], wanted: set[tuple[str, str]]) -> dict[tuple[str, str], str]:
    """(synset offset, pos n/v/a/r) -> the synset's definition (:func:`definition`), for the ``wanted``
    synsets, from WordNet's ``data.*`` files."""
    out: dict[tuple[str, str], str] = {}
    for name, pos in _DATA_FILES.items():
        path = files.get(f"data.{name}")
        if path is None or not any(p == pos for _, p in wanted):
            continue
        for _number, line in readers.lines(path):
            if line.startswith("  ") or " | " not in line:  # the licence header
                continue
            key = (line.split(" ", 1)[0], pos)
            if key in wanted:
                out[key] = definition(line.partition(" | ")[2])
    return out


def _build_wordnet_wsd(files: dict[str, Path], min_senses: int = 2, dev: float = 0.1,
                       test: float = 0.1, seen_senses: bool = False, held_out_lemmas: float = 0.0) -> Built:
    """The word-sense rows and their split (see the recipes' ``split_rule``). ``held_out_lemmas``: the
    share of lemmas, chosen by hash, whose every instance goes to dev (first half) or test (second
    half), so that dev and test hold lemmas never seen in train (where the most-frequent-sense
    back-off answers)."""
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
                    if matches(token, lemma, pos, exceptions):
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

    # split: held-out lemmas (by the hash of the lemma) go whole to test or dev; the other lemmas'
    # instances by the hash of their text and sense; then, per lemma (or, with seen_senses, per
    # sense) that is not held out, train gets at least one instance: the one with the highest hash
    split_of: dict[int, str] = {}
    values: dict[int, float] = {}
    kept: list[int] = []
    held_out: dict[tuple[str, str], str] = {}
    for key in kept_lemmas:
        v = unit(key_of("wordnet-wsd lemma", f"{key[0]}%{key[1]}"))
        if v < held_out_lemmas:
            held_out[key] = "test" if v < held_out_lemmas / 2 else "dev"
    for key in kept_lemmas:
        for i in by_lemma[key]:
            row = instances[i]
            # the hash does not depend on the variant, so wordnet-wsd-seen differs only by the moves
            u = unit(key_of("wordnet-wsd", f"{' '.join(row['tokens'])}\x00{row['target']}\x00{row['sense']}"))
            values[i] = u
            split_of[i] = held_out.get(key) or ("test" if u < test else "dev" if u < test + dev else "train")
            kept.append(i)
    guarantee: dict[Any, list[int]] = collections.defaultdict(list)
    for i in kept:
        if (instances[i]["lemma"], instances[i]["pos"]) in held_out:
            continue
        guarantee[instances[i]["sense"] if seen_senses else (instances[i]["lemma"], instances[i]["pos"])].append(i)
    for members in guarantee.values():
        if not any(split_of[i] == "train" for i in members):
            split_of[max(members, key=lambda i: (values[i], i))] = "train"
    kept.sort()
    splits = {name: [instances[i] for i in kept if split_of[i] == name] for name in SPLITS}

    # sense frequencies (SemCor tag counts from index.sense) for every kept lemma's senses
    # and each sense's synset definition (its gloss; the usage examples, which are the data, left out)
    wanted = set(kept_lemmas)
    chosen = [(lemma, offset, pos, value) for (lemma, offset, pos), value in senses.items() if (lemma, pos) in wanted]
    definitions = read_definitions(files, {(offset, pos) for _, offset, pos, _ in chosen})
    frequencies: dict[str, list[dict[str, Any]]] = collections.defaultdict(list)
    for lemma, offset, pos, (key, sense_number, count) in chosen:
        ss_type = {"1": "n", "2": "v", "3": "a", "4": "r", "5": "s"}[key.partition("%")[2][0]]
        entry = {"sense": key, "synset": f"{offset}-{ss_type}", "sense_number": sense_number, "count": count}
        if (offset, pos) in definitions:
            entry["gloss"] = definitions[(offset, pos)]
        frequencies[f"{lemma}%{pos}"].append(entry)
    table = {k: sorted(v, key=lambda e: (e["sense_number"], e["sense"])) for k, v in sorted(frequencies.items())}

    train_senses = {r["sense"] for r in splits["train"]}
    notes = {
        "sense_label": "WordNet 3.0 sense key (lemma%ss_type:lex_filenum:lex_id:head_word:head_id), as in index.sense; "
                       "the extra column 'synset' is the synset as offset-ss_type (n/v/a/s/r)",
        "extraction": {k: stats[k] for k in sorted(stats)},
        "test_instances_with_sense_seen_in_train": sum(r["sense"] in train_senses for r in splits["test"]),
        "held_out_lemmas": {part: sorted(f"{lemma}%{pos}" for (lemma, pos), where in held_out.items() if where == part)
                            for part in ("dev", "test")},
        "instances_of_held_out_lemmas": {part: sum((r["lemma"], r["pos"]) in held_out for r in splits[part])
                                         for part in ("dev", "test")},
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


RECIPES: tuple[Recipe, ...] = (
    Recipe(
        name="wordnet-wsd", task="word-sense",
        description=("word-sense disambiguation on WordNet 3.0's quoted usage examples: an example in a synset's "
                     "gloss in which one of the synset's single-word lemmas occurs (inflected forms found with "
                     "WordNet's exception lists and morphy detachment rules) becomes a context labelled with that "
                     "lemma's sense key; only lemmas with at least 2 senses among the examples are kept"),
        source="Debian wordnet-base (data.*, *.exc) and wordnet-sense-index (index.sense), WordNet 3.0",
        licence=WORDNET_LICENCE,
        split_rule=("held-out lemmas: each lemma%pos gets v = sha256('wordnet-wsd lemma' NUL lemma%pos) as a number "
                    "in [0,1); with v < 0.05 all its instances go to test, with 0.05 <= v < 0.1 all to dev, so dev "
                    "and test hold lemmas never seen in train (the most-frequent-sense back-off answers them). "
                    "Every other instance gets u = sha256('wordnet-wsd' NUL tokens NUL target NUL sense) as a number "
                    "in [0,1): u < 0.1 test, u < 0.2 dev, else train; then for each such lemma with no train "
                    "instance its instance with the largest u moves to train. One instance per example: the first "
                    "synset lemma (synset order) found, at its first occurrence"),
        fetch=fetch_wordnet,
        build=lambda files: _build_wordnet_wsd(files, held_out_lemmas=HELD_OUT_LEMMAS),
        ptb_tokenized=True,
    ),
    Recipe(
        name="wordnet-wsd-seen", task="word-sense",
        description=("the seen-lemmas variant of wordnet-wsd: no held-out lemmas, and every sense in dev and test "
                     "also occurs in train (senses with a single example stay in train), so a model that learns "
                     "senses from train can score on every test instance; same instances, same instance hash, "
                     "same sense-frequency table"),
        source="Debian wordnet-base (data.*, *.exc) and wordnet-sense-index (index.sense), WordNet 3.0",
        licence=WORDNET_LICENCE,
        split_rule=("as wordnet-wsd without held-out lemmas (u < 0.1 test, u < 0.2 dev, else train), and the move "
                    "to train is per sense: "
                    "for each sense with no train instance its instance with the largest u moves to train, so "
                    "every dev/test sense (hence lemma) occurs in train"),
        fetch=fetch_wordnet,
        build=lambda files: _build_wordnet_wsd(files, seen_senses=True),
        ptb_tokenized=True,
    ),
)
