"""Wikipedia and news samples from the ``gensim`` wheel's test data (read from the wheel as a zip).

- ``enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2``: a MediaWiki XML export
  of English Wikipedia articles (CC BY-SA). Each page's wikitext is reduced to its prose
  paragraphs (:func:`wikitext_paragraphs`): comments, references, templates (``{{..}}``), tables,
  files, categories and other namespaced links go, ``[[target|text]]`` keeps its text, external
  links their label, bold/italic quotes and HTML tags are removed; headings, lists, indented lines
  and the sections after "See also" / "References" / "External links" are left out.
- ``lee_background.cor``: the Lee et al. (2005) background news corpus, one news text per line.
"""

from __future__ import annotations

import bz2
import html
import io
import re
import xml.etree.ElementTree as ET
from collections.abc import Iterator

from elmo_tasks.data.pretraining_corpus.prose import is_english_prose

WIKI_MEMBER = "gensim/test/test_data/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
LEE_MEMBER = "gensim/test/test_data/lee_background.cor"

_COMMENT = re.compile(r"<!--.*?-->", re.S)
_REF = re.compile(r"<ref\b[^>/]*/>|<ref\b[^>]*>.*?</ref>", re.S | re.I)
_BLOCK_TAGS = re.compile(r"<(gallery|math|code|pre|source|syntaxhighlight|timeline|score|table|imagemap|poem)"
                         r"\b[^>]*>.*?</\1>", re.S | re.I)
_TEMPLATE = re.compile(r"\{\{(?:(?!\{\{|\}\}).)*\}\}", re.S)
_TABLE = re.compile(r"\{\|(?:(?!\{\||\|\}).)*\|\}", re.S)
_NAMESPACED_LINK = re.compile(r"\[\[(?:File|Image|Category|Media|[a-z]{2,3}(?:-[a-z]+)?):(?:[^\[\]]|\[\[[^\[\]]*\]\])*\]\]", re.I)
_LINK = re.compile(r"\[\[([^\[\]|]*)(?:\|([^\[\]]*))?\]\]")
_EXTERNAL = re.compile(r"\[(?:https?|ftp)://[^\s\]]+(?:\s([^\]]*))?\]")
_TAG = re.compile(r"</?[A-Za-z][^>]*>")
_QUOTES = re.compile(r"'{2,}")
_END_SECTIONS = re.compile(r"^==+\s*(?:See also|References|Notes|External links|Further reading|Bibliography|"
                           r"Sources|Footnotes|Citations)\s*==+\s*$", re.I | re.M)


def wikitext_paragraphs(wikitext: str) -> Iterator[str]:
    """The prose paragraphs of one article's wikitext (see the module docstring)."""
    text = html.unescape(wikitext)
    end = _END_SECTIONS.search(text)
    if end:
        text = text[:end.start()]
    text = _COMMENT.sub("", text)
    text = _REF.sub("", text)
    text = _BLOCK_TAGS.sub("", text)
    for pattern in (_TEMPLATE, _TABLE):
        previous = None
        while previous != text:  # nested: innermost first
            previous = text
            text = pattern.sub("", text)
    previous = None
    while previous != text:
        previous = text
        text = _NAMESPACED_LINK.sub("", text)
    text = _LINK.sub(lambda m: m.group(2) if m.group(2) is not None else m.group(1), text)
    text = _EXTERNAL.sub(lambda m: m.group(1) or "", text)
    text = _TAG.sub("", text)
    text = _QUOTES.sub("", text)
    for paragraph in re.split(r"\n\s*\n", text):
        lines = [line for line in paragraph.splitlines()
                 if line.strip() and not line.lstrip().startswith(("=", "*", "#", ":", ";", "|", "!", "{", "}"))]
        prose = " ".join(" ".join(lines).split())
        prose = re.sub(r"\(\s*[,;]?\s*\)", "", prose)  # "()" left by removed templates
        prose = " ".join(prose.split())
        if prose and is_english_prose(prose, min_words=8):
            yield prose


def wiki_dump_paragraphs(data: bytes) -> Iterator[str]:
    """The prose paragraphs of every article (namespace 0, not a redirect) of a bz2 MediaWiki export."""
    root_text = bz2.decompress(data)
    for _, element in ET.iterparse(io.BytesIO(root_text)):
        if not element.tag.endswith("}page"):
            continue
        ns = element.find("{*}ns")
        redirect = element.find("{*}redirect")
        text = element.find("{*}revision/{*}text")
        if ns is not None and ns.text == "0" and redirect is None and text is not None and text.text:
            yield from wikitext_paragraphs(text.text)
        element.clear()


def lee_paragraphs(data: bytes) -> Iterator[str]:
    """The news texts of ``lee_background.cor`` (one per line)."""
    for line in data.decode("utf-8", errors="replace").splitlines():
        if line.strip():
            yield line.strip()
