"""Read objects from an R package's lazy-load database (``data/Rdata.rdx`` + ``Rdata.rdb``) without R.

Format (R Internals, "Lazy loading" and "Serialization Formats"):

- ``NAME.rdx`` is a gzip-compressed serialised R list ``list(variables=, references=, compressed=)``;
  ``variables`` maps each object name to ``c(offset, length)`` in ``NAME.rdb``.
- Each record in ``NAME.rdb`` is a 4-byte big-endian uncompressed length followed by a zlib stream
  (``compressed = TRUE``; types 2/3 put one more byte, ``'2'`` bzip2 / ``'X'`` xz / ``'0'`` none,
  after the length) of a serialised R object.
- Serialisation "X" (XDR, big-endian): header ``X\\n``, version, writer and minimal reader
  versions (and a native-encoding string in version 3), then items. Each item starts with a 32-bit
  flags word: type (low 8 bits), is-object (bit 8), has-attributes (bit 9), has-tag (bit 10), the
  "levels" (bits 12+; for strings the encoding).

Only what data packages use is supported: NULL, symbols, pairlists, character/logical/integer/double
vectors, lists and attributes, plus reference, environment and namespace stubs. Everything else
raises ``ValueError``. Character vectors come back as ``list[str | None]`` (``None`` = ``NA``).
"""

from __future__ import annotations

import bz2
import gzip
import lzma
import struct
import zlib
from pathlib import Path
from typing import Any

NILSXP, SYMSXP, LISTSXP, CLOSXP, ENVSXP, PROMSXP, LANGSXP = 0, 1, 2, 3, 4, 5, 6
CHARSXP, LGLSXP, INTSXP, REALSXP, CPLXSXP, STRSXP, VECSXP, EXPRSXP = 9, 10, 13, 14, 15, 16, 19, 20
REFSXP, NILVALUE_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP = 255, 254, 253, 252, 251
BASENAMESPACE_SXP, NAMESPACESXP, PACKAGESXP, EMPTYENV_SXP, BASEENV_SXP = 250, 249, 248, 242, 241
NA_INTEGER = -(2**31)


class RObject:
    """A vector with attributes (``value`` is the Python value, ``attributes`` a dict)."""

    def __init__(self, value: Any, attributes: dict[str, Any]):
        self.value = value
        self.attributes = attributes

    def __repr__(self) -> str:
        return f"RObject({self.value!r:.60}, attributes={list(self.attributes)})"


class _Reader:
    def __init__(self, data: bytes):
        self.data = data
        self.pos = 0
        self.refs: list[Any] = []

    def int(self) -> int:
        (value,) = struct.unpack_from(">i", self.data, self.pos)
        self.pos += 4
        return value

    def ints(self, n: int, fmt: str, size: int) -> tuple:
        values = struct.unpack_from(f">{n}{fmt}", self.data, self.pos)
        self.pos += n * size
        return values

    def length(self) -> int:
        n = self.int()
        if n == -1:  # long vector: two 32-bit halves
            upper, lower = self.int(), self.int()
            n = (upper << 32) + lower
        return n

    def header(self) -> None:
        if self.data[:2] != b"X\n":
            raise ValueError(f"not an XDR R serialisation (starts with {self.data[:2]!r})")
        self.pos = 2
        version = self.int()
        self.int()
        self.int()
        if version == 3:
            n = self.int()
            self.pos += n

    def item(self) -> Any:
        flags = self.int()
        kind = flags & 0xFF
        has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
        if kind == NILVALUE_SXP:
            return None
        if kind in (EMPTYENV_SXP, BASEENV_SXP, GLOBALENV_SXP, UNBOUNDVALUE_SXP, MISSINGARG_SXP,
                    BASENAMESPACE_SXP):
            return f"<special {kind}>"
        if kind == REFSXP:
            index = flags >> 8
            if index == 0:
                index = self.int()
            return self.refs[index - 1]
        if kind in (NAMESPACESXP, PACKAGESXP):
            self.int()  # 0
            names = [self.item() for _ in range(self.int())]
            value = f"<namespace {names}>"
            self.refs.append(value)
            return value
        if kind == SYMSXP:
            name = self.item()
            self.refs.append(name)
            return name
        if kind == ENVSXP:
            self.int()  # locked
            value: dict[str, Any] = {}
            self.refs.append(value)
            self.item()  # enclosure
            frame = self.item()
            self.item()  # hash table
            self.item()  # attributes
            if isinstance(frame, dict):
                value.update(frame)
            return value
        if kind in (LISTSXP, LANGSXP, CLOSXP, PROMSXP):
            # a pairlist, read iteratively: attributes, tag, car, then cdr (the next cell)
            out: dict[str, Any] | list = {}
            items: list[tuple[Any, Any]] = []
            while True:
                if has_attr:
                    self.item()
                tag = self.item() if has_tag else None
                items.append((tag, self.item()))
                flags = self.int()
                kind = flags & 0xFF
                has_attr, has_tag = bool(flags & (1 << 9)), bool(flags & (1 << 10))
                if kind not in (LISTSXP, LANGSXP, CLOSXP, PROMSXP):
                    self.pos -= 4
                    self.item()  # the tail (NULL)
                    break
            if all(isinstance(tag, str) for tag, _ in items):
                out = {tag: value for tag, value in items}
            else:
                out = [value for _, value in items]
            return out
        if kind == CHARSXP:
            n = self.int()
            if n == -1:
                return None
            raw = self.data[self.pos:self.pos + n]
            self.pos += n
            encoding = "latin-1" if flags & (1 << 14) else "utf-8"  # LATIN1_MASK = 1 << 2 in levels
            return raw.decode(encoding, errors="replace")
        if kind in (LGLSXP, INTSXP):
            n = self.length()
            value = [None if v == NA_INTEGER else v for v in self.ints(n, "i", 4)]
            if kind == LGLSXP:
                value = [None if v is None else bool(v) for v in value]
        elif kind == REALSXP:
            value = list(self.ints(self.length(), "d", 8))
        elif kind == CPLXSXP:
            raw = self.ints(2 * self.length(), "d", 8)
            value = [complex(raw[i], raw[i + 1]) for i in range(0, len(raw), 2)]
        elif kind == STRSXP:
            value = [self.item() for _ in range(self.length())]
        elif kind in (VECSXP, EXPRSXP):
            value = [self.item() for _ in range(self.length())]
        else:
            raise ValueError(f"R serialisation: unsupported SEXP type {kind}")
        if has_attr:
            attributes = self.item()
            return RObject(value, attributes if isinstance(attributes, dict) else {})
        return value


def unserialize(data: bytes) -> Any:
    """The Python value of one XDR-serialised R object (see the module docstring)."""
    reader = _Reader(data)
    reader.header()
    return reader.item()


def _decompress(record: bytes) -> bytes:
    (length,) = struct.unpack(">I", record[:4])
    body = record[4:]
    if body[:1] == b"Z" and not body.startswith(b"\x78"):
        body = body[1:]
    if body.startswith(b"\x78"):
        data = zlib.decompress(body)
    elif body[:1] == b"2":
        data = bz2.decompress(body[1:])
    elif body[:1] == b"X":
        data = lzma.decompress(body[1:])
    elif body[:1] == b"0":
        data = body[1:]
    else:
        raise ValueError("unknown compression in lazy-load record")
    if len(data) != length:
        raise ValueError(f"lazy-load record: expected {length} bytes, got {len(data)}")
    return data


def _names_and_values(obj: Any) -> dict[str, Any]:
    if isinstance(obj, dict):
        return obj
    if isinstance(obj, RObject) and "names" in obj.attributes:
        return dict(zip(obj.attributes["names"], obj.value))
    raise ValueError("expected a named R list")


def lazyload_objects(rdx: Path) -> dict[str, Any]:
    """All objects of an R lazy-load database, by name (``rdx`` is ``.../data/Rdata.rdx``)."""
    index = _names_and_values(unserialize(gzip.decompress(Path(rdx).read_bytes())))
    variables = _names_and_values(index["variables"])
    rdb = Path(rdx).with_suffix(".rdb").read_bytes()
    out = {}
    for name, (offset, length) in variables.items():
        offset, length = int(offset), int(length)
        out[name] = unserialize(_decompress(rdb[offset:offset + length]))
    return out
