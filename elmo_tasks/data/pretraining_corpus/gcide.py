"""GCIDE (Debian ``dict-gcide``): the dictd text of Webster's 1913 + additions, cleaned to definitions."""

from __future__ import annotations

import gzip
import re
from collections.abc import Iterator
from pathlib import Path

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
    """Cleaned paragraphs of the unpacked ``dict-gcide`` package at ``root``."""
    path = root / "usr/share/dictd/gcide.dict.dz"
    text = gzip.decompress(path.read_bytes()).decode("utf-8", errors="replace")
    yield from gcide_paragraphs(text)

