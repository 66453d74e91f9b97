"""Literary texts: Jane Austen's novels (R lazy-load data), the King James Bible (``bible -f``), Lewis Carroll (.docx/.pdf)."""

from __future__ import annotations

import io
import re
import subprocess
import zipfile
from collections.abc import Iterator
from pathlib import Path

from elmo_tasks.data.rdata import lazyload_objects
from elmo_tasks.data.sources import archive_member

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

