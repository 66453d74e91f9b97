"""The pretraining-corpus builder: tokeniser, sentence splitter, GCIDE cleaning, R lazy-load reader,
filters, exclusion, heldout split and atomic output. No network, no Debian/PyPI downloads."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import struct
import zipfile
import zlib
from pathlib import Path

import pytest

from elmo_tasks.data.pretraining_corpus import books, exclusions, gcide, pipeline, wordnet_glosses
from elmo_tasks.data.rdata import lazyload_objects, unserialize
from elmo_tasks.data.tokenize import split_sentences, tokenize, tokenize_sentences

FIXTURES = Path(__file__).parent / "fixtures" / "corpus"


# --- tokeniser -------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    # the first sentences of the WSJ sample, tokenised as the treebank does
    ("Pierre Vinken, 61 years old, will join the board as a nonexecutive director Nov. 29.",
     "Pierre Vinken , 61 years old , will join the board as a nonexecutive director Nov. 29 ."),
    ("Mr. Vinken is chairman of Elsevier N.V., the Dutch publishing group.",
     "Mr. Vinken is chairman of Elsevier N.V. , the Dutch publishing group ."),
    ("Has the Internet abandoned its role as the leading incubator of political rumor?",
     "Has the Internet abandoned its role as the leading incubator of political rumor ?"),
    # clitics as in the WSJ
    ("I don't think they're coming; John's car can't start!",
     "I do n't think they 're coming ; John 's car ca n't start !"),
    ("We'll see what I'd done, and you've won, I'm sure.",
     "We 'll see what I 'd done , and you 've won , I 'm sure ."),
    ("I cannot go.", "I can not go ."),
    # Austen's opening: double quotes become `` and ''
    ('"My dear Mr. Bennet," said his lady to him one day, "have you heard that Netherfield Park is let at last?"',
     "`` My dear Mr. Bennet , '' said his lady to him one day , `` have you heard that Netherfield Park "
     "is let at last ? ''"),
    ("He said 'hello' to me (twice)--and left...",
     "He said ` hello ' to me ( twice ) -- and left ..."),
    ("It cost $5.50, i.e. very little.", "It cost $ 5.50 , i.e. very little ."),
    ("\u201cWell,\u201d she said \u2014 \u2018no\u2019.", "`` Well , '' she said -- ` no ' ."),
    ("In the beginning God created the heaven and the earth.",
     "In the beginning God created the heaven and the earth ."),
    # Carroll's curly single quotes; an apostrophe inside a word stays
    ("\u2018and what is the use of a book,\u2019 thought Alice \u2018without pictures or conversation?\u2019",
     "` and what is the use of a book , ' thought Alice ` without pictures or conversation ? '"),
    ("It was five o'clock, and the boys' toys were gone.",
     "It was five o'clock , and the boys ' toys were gone ."),
    # a sentence-final abbreviation keeps its period and the sentence gets its own, as in the WSJ
    ("The shares went to Smith & Co.", "The shares went to Smith & Co. ."),
    ("They met at 3:30 p.m.", "They met at 3:30 p.m. ."),
    ("He paid $5,000 for AT&T shares.", "He paid $ 5,000 for AT & T shares ."),
    ("He said no.", "He said no ."),
    ("Rock 'n' roll came in the '50s.", "Rock 'n' roll came in the '50s ."),
    ("It's \"gone.\"", "It 's `` gone . ''"),
    ("the \ufb01eld", "the field"),
])
def test_tokenize_ptb_like(text, expected):
    assert tokenize(text) == expected.split()


def test_tokenize_keeps_case_and_empty():
    assert tokenize("   ") == []
    assert tokenize("NASA launched it") == ["NASA", "launched", "it"]


def test_split_sentences():
    text = ("It is a truth universally acknowledged, that a single man in possession\nof a good fortune, "
            "must be in want of a wife. However little known the feelings or views of such a man may be "
            "on his first entering a neighbourhood, this truth is so well fixed. \"My dear Mr. Bennet,\" "
            "said his lady. \"Have you heard?\" Mr. Bennet replied that he had not. See p. 5 of "
            "J. Smith's book. The U.S. Army came.")
    assert split_sentences(text) == [
        "It is a truth universally acknowledged, that a single man in possession of a good fortune, "
        "must be in want of a wife.",
        "However little known the feelings or views of such a man may be on his first entering a "
        "neighbourhood, this truth is so well fixed.",
        "\"My dear Mr. Bennet,\" said his lady.",
        "\"Have you heard?\"",
        "Mr. Bennet replied that he had not.",
        "See p. 5 of J. Smith's book.",
        "The U.S. Army came.",
    ]
    assert split_sentences("  \n ") == []
    assert tokenize_sentences("Go home. Now!") == [["Go", "home", "."], ["Now", "!"]]


# --- source readers ---------------------------------------------------------------------------

def test_gcide_cleaning_on_real_excerpt():
    text = (FIXTURES / "gcide-excerpt.txt").read_text(encoding="utf-8")
    paragraphs = list(gcide.gcide_paragraphs(text))
    assert paragraphs == [
        "To infatuate.",
        "To frighten.",
        "To act upon; to produce an effect or change upon.",
        "As might affect the earth with cold heat.",
        "The climate affected their health and spirits.",
        "To influence or move, as the feelings or passions; to touch.",
        "a growth hormone produced by the anterior pituitary gland; stimulates the adrenal cortex.",
        "To blind by a red-hot metal plate held before the eyes.",
    ]
    joined = " ".join(paragraphs)
    for markup in ("\\", "[", "{", "--Milton", "Syn", "Webster", "WordNet"):
        assert markup not in joined


def test_gcide_block_letters_and_wordnet_examples():
    assert gcide.clean_gcide_block("   the Ph[oe]nician alphabet, with the [aum] sound.", first=False) == \
        "the Phoenician alphabet, with the a sound."
    assert gcide.clean_gcide_block('   1. to run away; "he ran away from home"', first=False, wordnet=True) == \
        "to run away;"
    assert gcide.clean_gcide_block("   Syn: abamp", first=False) == ""


def test_gcide_run_on_derivatives_and_second_heads():
    block = ('   Full of passion or emotion; earnest. [Obs.] --\n   {Af*fec"tu*ous*ly}, adv. [Obs.] --Fabyan.')
    assert gcide.clean_gcide_block(block, first=False) == "Full of passion or emotion; earnest."
    block = 'bathyscaph \\bath"y*scaph\\, bathyscaphe \\bath"y*scaphe\\n.\n   navigable deep diving vessel.'
    assert gcide.clean_gcide_block(block, first=True) == "navigable deep diving vessel."
    block = 'Ligamentous \\Lig`a*men"tous\\ (lig"a*men"tus), a.\n   Composing a ligament; binding.'
    assert gcide.clean_gcide_block(block, first=True) == "Composing a ligament; binding."


def test_book_pages_text_drops_heads_and_joins_hyphens():
    pages = [
        "Alice in Wonderland\nLewis Carroll",
        "Contents\n1 Down the Rabbit-Hole 13",
        "Chapter 1\nDown the Rabbit-Hole\nAlice was beginning to get very tired of sitting by her sister\non "
        "the bank. In another mo-\nment down went Alice, and a moment later a cherry-\ntart.",
        "16 CHAPTER 1. DOWN THE RABBIT-HOLE\nThere seemed to be no use in waiting.",
        "Chapter 2\nThe Pool of Tears\n\u2018Curiouser and curiouser!\u2019 cried Alice.\nTHE END",
    ]
    assert list(books.book_pages_text(pages)) == [
        "Alice was beginning to get very tired of sitting by her sister on the bank. In another moment down "
        "went Alice, and a moment later a cherry-tart. There seemed to be no use in waiting.",
        "\u2018Curiouser and curiouser!\u2019 cried Alice.",
    ]


def test_split_long_at_semicolons():
    tokens = "a b c ; d e f ; g h : i".split()
    assert pipeline.split_long(tokens, 8) == ["a b c ; d e f ;".split(), "g h : i".split()]
    assert pipeline.split_long(tokens, 4) == ["a b c ;".split(), "d e f ;".split(), "g h : i".split()]
    assert pipeline.split_long("a b c d e f".split(), 3) == ["a b c d e f".split()]
    builder = _builder(heldout_fraction=0.0, max_tokens=8)
    stats = pipeline.SourceStats()
    builder.add_paragraphs(["She came to the house; he went to the garden; they met in the lane."], stats)
    assert builder.train == ["She came to the house ;", "he went to the garden ;", "they met in the lane ."]
    assert stats.long_sentences_split == 1 and stats.sentences_seen == 3


def test_wordnet_gloss_examples_split_off():
    line = ('00002724 29 v 01 choke 0 002 @ 00001740 v 0000 + 14058252 n 0101 01 + 02 00 | breathe with '
            'great difficulty, as when experiencing a strong emotion; "She choked with emotion when she '
            'spoke about her deceased husband"  ')
    header = "  1 This software and database is being provided to you, the LICENSEE | by Princeton"
    [(definition, examples)] = list(wordnet_glosses.wordnet_glosses([header, line]))
    assert definition == "breathe with great difficulty, as when experiencing a strong emotion"
    assert examples == ["She choked with emotion when she spoke about her deceased husband"]


def test_kjv_verses_and_austen_paragraphs():
    out = "Ge1:1 In the beginning God created the heaven and the earth.\n1Jo1:1 That which was from the beginning.\n"
    assert list(books.kjv_verses(out)) == ["In the beginning God created the heaven and the earth.",
                                            "That which was from the beginning."]
    lines = ["PRIDE AND PREJUDICE", "", "Chapter 1", "", "It is a truth universally acknowledged, that a",
             "single man in _possession_.", "", None, "Next."]
    assert list(books.austen_paragraphs(lines)) == [
        "It is a truth universally acknowledged, that a single man in possession.", "Next."]


def _xdr_strsxp(values):
    out = b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300)
    out += struct.pack(">ii", 16, len(values))
    for v in values:
        raw = v.encode("utf-8")
        out += struct.pack(">ii", 9 | (1 << 15), len(raw)) + raw  # CHARSXP, UTF-8 flag in levels
    return out


def test_r_lazyload_reader(tmp_path):
    # a character vector, as janeaustenr stores each novel
    payload = _xdr_strsxp(["EMMA", "", "By Jane Austen"])
    assert unserialize(payload) == ["EMMA", "", "By Jane Austen"]
    record = struct.pack(">I", len(payload)) + zlib.compress(payload)
    (tmp_path / "Rdata.rdb").write_bytes(record)
    # the index: list(variables = list(emma = c(0, len)), references = list(), compressed = TRUE)
    index = b"X\n" + struct.pack(">iii", 2, 0x040201, 0x020300)

    def sym(name):
        return struct.pack(">ii", 1, 9) + struct.pack(">i", len(name)) + name.encode()

    # a tagged pairlist cell: LISTSXP with has_tag
    index += struct.pack(">i", 2 | (1 << 10)) + sym("variables")
    index += struct.pack(">i", 2 | (1 << 10)) + sym("emma")
    index += struct.pack(">ii", 13, 2) + struct.pack(">ii", 0, len(record))
    index += struct.pack(">i", 254)  # end of the variables pairlist
    index += struct.pack(">i", 2 | (1 << 10)) + sym("compressed")
    index += struct.pack(">ii", 10, 1) + struct.pack(">i", 1)
    index += struct.pack(">i", 254)
    (tmp_path / "Rdata.rdx").write_bytes(gzip.compress(index))
    assert lazyload_objects(tmp_path / "Rdata.rdx") == {"emma": ["EMMA", "", "By Jane Austen"]}


def test_docx_paragraphs():
    xml = ('<w:document xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"><w:body>'
           '<w:p><w:r><w:t>One thing was certain, </w:t></w:r><w:r><w:t>that the WHITE kitten had had '
           'nothing to do with it.</w:t></w:r></w:p><w:p></w:p></w:body></w:document>')
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("word/document.xml", xml)
    assert list(books.docx_paragraphs(buffer.getvalue())) == [
        "One thing was certain, that the WHITE kitten had had nothing to do with it."]


# --- filters, exclusion, split, output --------------------------------------------------------

def test_normalized_key():
    assert exclusions.normalized_key("Don't stop!") == exclusions.normalized_key(tokenize("don't stop !")) == "dontstop"
    assert exclusions.normalized_key('"Quoted," he said.') == exclusions.normalized_key(tokenize('"Quoted," he said.'))


def test_tagged_and_csv_exclusions():
    tagged = "Pierre/NNP Vinken/NNP ,/, 61/CD years/NNS old/JJ ./. He/PRP left/VBD ./.\n"
    keys = {exclusions.normalized_key(s) for s in exclusions._tagged_sentences(tagged)}
    assert exclusions.normalized_key("Pierre Vinken, 61 years old.") in keys
    assert exclusions.normalized_key("He left.") in keys
    csv_text = '\ufeff"1","the rock is destined to be great . \nsecond line here . \n"\n'
    keys = exclusions._text_keys(exclusions._csv_texts(csv_text))
    assert exclusions.normalized_key("The rock is destined to be great.") in keys
    assert exclusions.normalized_key("Second line here.") in keys


def _builder(**kwargs):
    keys = {"wsj-pos": {exclusions.normalized_key("Pierre Vinken, 61 years old, will join the board.")},
            "wordnet-examples": {exclusions.normalized_key("She choked with emotion")}}
    return pipeline.CorpusBuilder(keys, **kwargs)


def test_builder_filters_dedup_and_exclusion():
    builder = _builder(heldout_fraction=0.0, max_tokens=12)
    stats = pipeline.SourceStats()
    builder.add_paragraphs([
        "Pierre Vinken, 61 years old, will join the board. The sun rose over the hills.",
        "The sun rose over the hills. She choked with emotion. Go.",
        "This sentence is much too long to be kept because it has many more than twelve tokens in it, says the test.",
        "To frighten by a ?way of the hand.",
    ], stats)
    assert builder.train == ["The sun rose over the hills ."]
    assert stats.dropped == {"excluded:wsj-pos": 1, "excluded:wordnet-examples": 1, "duplicate": 1,
                             "too-short": 1, "too-long": 1, "markup": 1}
    assert stats.sentences_kept == 1 and stats.tokens_kept == 7 and stats.sentences_seen == 7


def test_heldout_split_is_deterministic_and_by_sentence():
    sentences = [f"This is sentence number {i} ." for i in range(4000)]
    results = []
    for _ in range(2):
        builder = _builder(heldout_fraction=0.05, seed=3)
        stats = pipeline.SourceStats()
        for s in sentences:
            builder.add_sentence(s.split(), stats)
        results.append((builder.train, builder.heldout))
    assert results[0] == results[1]
    heldout = results[0][1]
    assert 120 < len(heldout) < 280  # about 5 %
    # the choice depends on the sentence only, not on what came before it
    builder = _builder(heldout_fraction=0.05, seed=3)
    for s in reversed(sentences):
        builder.add_sentence(s.split(), pipeline.SourceStats())
    assert sorted(builder.heldout) == sorted(heldout)
    # another seed, another slice
    assert [s for s in sentences if pipeline.heldout_score(s, 4) < 0.05] != heldout


def test_write_outputs_atomic(tmp_path, monkeypatch):
    builder = _builder(heldout_fraction=0.5, seed=1)
    stats = pipeline.SourceStats()
    for i in range(50):
        builder.add_sentence(f"line number {i} here".split(), stats)
    manifest = pipeline.write_outputs(tmp_path, builder, {"seed": 1})
    train = (tmp_path / "train.txt").read_text(encoding="utf-8").splitlines()
    heldout = (tmp_path / "heldout.txt").read_text(encoding="utf-8").splitlines()
    assert sorted(train) == sorted(builder.train) and heldout == builder.heldout
    assert len(train) + len(heldout) == 50
    on_disk = json.loads((tmp_path / "manifest.json").read_text())
    assert on_disk == manifest
    assert on_disk["files"]["train.txt"]["sha256"] == hashlib.sha256((tmp_path / "train.txt").read_bytes()).hexdigest()
    assert on_disk["files"]["train.txt"]["tokens"] == 4 * len(train)
    # no temporary files are left, and a failing write leaves the old file in place
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heldout.txt", "manifest.json", "train.txt"]

    def broken():
        yield "first line"
        raise OSError("disk full")

    with pytest.raises(OSError):
        pipeline.write_atomic_lines(tmp_path / "train.txt", broken())
    assert sorted((tmp_path / "train.txt").read_text(encoding="utf-8").splitlines()) == sorted(builder.train)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["heldout.txt", "manifest.json", "train.txt"]


def test_cli_registers_data_corpus():
    from elmo_tasks.cli import build_parser

    args = build_parser().parse_args(["data", "corpus", "--out", "x", "--sources", "austen,kjv", "--seed", "2"])
    assert args.out == "x" and args.sources == "austen,kjv" and args.seed == 2 and args.heldout_fraction == 0.01
