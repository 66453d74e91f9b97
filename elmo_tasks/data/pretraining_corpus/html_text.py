"""Paragraphs of prose from HTML documentation (Sphinx, DocBook and AsciiDoc output).

Only ``<p>`` elements are read, and none inside code (``<pre>``, highlighted blocks), tables,
navigation, side bars, footers, signatures or scripts; footnote and header-link marks are
dropped. A paragraph that is not English prose (:func:`is_english_prose`) is left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from html.parser import HTMLParser

from elmo_tasks.data.pretraining_corpus.prose import is_english_prose

_SKIP_TAGS = frozenset({"pre", "table", "script", "style", "nav", "header", "footer", "head", "dt", "math",
                        "svg", "form", "button", "select", "textarea"})
_SKIP_CLASSES = re.compile(r"\b(?:highlight|sphinxsidebar|related|footer|headerlink|footnote-reference|"
                           r"toctree-wrapper|navheader|navfooter|literal-block|listingblock|programlisting|"
                           r"screen|synopsis|cmdsynopsis|funcsynopsis|sig|linenos|toc|admonition-title|"
                           r"copyright|rubric|versionmodified|navigation)\b")
_VOID = frozenset({"br", "img", "hr", "meta", "link", "input", "wbr", "col", "area", "base", "source"})


class _ParagraphParser(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[tuple[str, bool]] = []  # (tag, skipping from here)
        self.skip_depth = 0
        self.paragraph: list[str] | None = None
        self.paragraph_depth = 0
        self.paragraphs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in _VOID:
            if tag == "br" and self.paragraph is not None:
                self.paragraph.append(" ")
            return
        classes = " ".join(value or "" for key, value in attrs if key == "class")
        skip = tag in _SKIP_TAGS or bool(classes and _SKIP_CLASSES.search(classes))
        self.stack.append((tag, skip))
        if skip:
            self.skip_depth += 1
        if tag == "p" and self.skip_depth == 0:
            if self.paragraph is not None:  # an unclosed <p>: HTML closes it here
                self._close()
            self.paragraph = []
            self.paragraph_depth = len(self.stack)

    def handle_endtag(self, tag: str) -> None:
        if tag in _VOID or not any(t == tag for t, _ in self.stack):
            return
        while self.stack:
            open_tag, skip = self.stack.pop()
            if skip:
                self.skip_depth -= 1
            if self.paragraph is not None and len(self.stack) < self.paragraph_depth:
                self._close()
            if open_tag == tag:
                break

    def handle_data(self, data: str) -> None:
        if self.paragraph is not None and self.skip_depth == 0:
            self.paragraph.append(data)

    def _close(self) -> None:
        text = " ".join("".join(self.paragraph or []).split())
        if text:
            self.paragraphs.append(text)
        self.paragraph = None


def html_paragraphs(html: str) -> Iterator[str]:
    """The prose paragraphs of one HTML page, in page order (see the module docstring)."""
    parser = _ParagraphParser()
    parser.feed(html)
    parser.close()
    if parser.paragraph is not None:
        parser._close()
    for paragraph in parser.paragraphs:
        paragraph = paragraph.replace("\u00b6", "").strip()
        if is_english_prose(paragraph):
            yield paragraph
