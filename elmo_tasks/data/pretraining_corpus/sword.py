"""The World English Bible from its SWORD module (Debian ``sword-text-web``), decoded without SWORD.

A SWORD ``zText`` module stores each testament in three files: ``*.bzs`` lists the compressed
blocks (12 bytes each: offset, compressed size, uncompressed size; little-endian uint32) of
``*.bzz`` (zlib streams), and ``*.bzv`` lists the entries in versification order (10 bytes each:
block number and offset as uint32, size as uint16). An entry is OSIS XML: words (``<w>``),
footnotes (``<note>``), headings (``<title>``), paragraph and line milestones.

Here the entries are joined in order; footnotes and headings are dropped, paragraphs are cut at
the OSIS paragraph and chapter milestones, and the remaining markup is removed.
"""

from __future__ import annotations

import html
import re
import struct
import zlib
from collections.abc import Iterator
from pathlib import Path

from elmo_tasks.errors import UserError

_DROP = re.compile(r"<(note|title)\b[^>]*>.*?</\1>", re.S)
_BREAK = re.compile(r'<div\b[^>]*type="(?:x-p|book|introduction|front|colophon|section|majorSection)"[^>]*/>'
                    r"|<chapter\b[^>]*/>|<div\b[^>]*type=\"paragraph\"[^>]*/>|<lb\b[^>]*/>", re.S)
_TAG = re.compile(r"<[^>]*>")
_PARAGRAPH_MARK = "\u2029"


def ztext_entries(module: Path, testament: str) -> Iterator[str]:
    """The entries (verses and headings, OSIS XML) of one testament ("ot" or "nt") of a zText module."""
    try:
        index = (module / f"{testament}.bzs").read_bytes()
        blocks = (module / f"{testament}.bzz").read_bytes()
        verses = (module / f"{testament}.bzv").read_bytes()
    except OSError as exc:
        raise UserError(f"{module}: not a readable SWORD zText module ({exc.strerror}: {exc.filename})") from None
    cache: dict[int, bytes] = {}
    for start in range(0, len(verses) - 9, 10):
        block, offset, size = struct.unpack_from("<IIH", verses, start)
        if size == 0:
            continue
        if block not in cache:
            if 12 * block + 12 > len(index):
                raise UserError(f"{module / (testament + '.bzv')}: entry {start // 10} names block {block}, "
                                f"but {testament}.bzs has {len(index) // 12}")
            cache.clear()  # entries come in block order: keep one block
            position, compressed, _ = struct.unpack_from("<III", index, 12 * block)
            try:
                cache[block] = zlib.decompress(blocks[position:position + compressed])
            except zlib.error as exc:
                raise UserError(f"{module / (testament + '.bzz')}: block {block} does not decompress ({exc})") from None
        yield cache[block][offset:offset + size].decode("utf-8", errors="replace")


def osis_paragraphs(entries: Iterator[str]) -> Iterator[str]:
    """Plain paragraphs from OSIS entries (see the module docstring)."""
    paragraph: list[str] = []
    for entry in entries:
        entry = _DROP.sub(" ", entry)
        entry = _BREAK.sub(_PARAGRAPH_MARK, entry)
        entry = html.unescape(_TAG.sub("", entry))
        parts = entry.split(_PARAGRAPH_MARK)
        for i, part in enumerate(parts):
            if i > 0 and paragraph:
                text = " ".join(" ".join(paragraph).split())
                if text:
                    yield text
                paragraph = []
            paragraph.append(part)
    text = " ".join(" ".join(paragraph).split())
    if text:
        yield text


def read_web(root: Path) -> Iterator[str]:
    """Paragraphs of the World English Bible from the unpacked ``sword-text-web`` package at ``root``."""
    module = root / "usr/share/sword/modules/texts/ztext/engWEB2015eb"
    for testament in ("ot", "nt"):
        yield from osis_paragraphs(ztext_entries(module, testament))
