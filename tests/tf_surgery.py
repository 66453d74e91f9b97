"""Surgery on copies of the TF-written test fixtures, for tests/test_hostile_models.py and the
hostile-model probe (benchmarks/hostile_models.py).

Self-contained on purpose: tests and probe build their damaged files without the package under test, so a
bug in ``elmo_tasks.formats`` cannot hide itself. A TensorFlow checkpoint index is a LevelDB-format
table whose values are ``BundleEntryProto`` messages; these helpers read it, edit entries field by
field and write a valid table back (block checksums included), so that each case damages exactly
one thing.
"""

from __future__ import annotations

import io
import struct
import tarfile
from collections.abc import Callable
from pathlib import Path

TABLE_MAGIC = 0xDB4775248B80FB57


def _crc_table() -> list[int]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return table


_TABLE = _crc_table()


def crc32c(data: bytes) -> int:
    crc = 0xFFFFFFFF
    for byte in data:
        crc = _TABLE[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def masked_crc(data: bytes) -> int:
    crc = crc32c(data)
    return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF


def varint(n: int) -> bytes:
    n &= (1 << 64) - 1  # int64 fields: negatives as ten-byte two's complement, as protobuf writes them
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def read_varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7


def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end, pos, key, out = len(block) - 4 - 4 * restarts, 0, b"", []
    while pos < end:
        shared, pos = read_varint(block, pos)
        unshared, pos = read_varint(block, pos)
        length, pos = read_varint(block, pos)
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        out.append((key, block[pos : pos + length]))
        pos += length
    return out


def parse_table(data: bytes) -> list[tuple[bytes, bytes]]:
    footer = data[-48:]
    pos = 0
    for _ in range(2):
        _, pos = read_varint(footer, pos)
    index_offset, pos = read_varint(footer, pos)
    index_size, _ = read_varint(footer, pos)
    entries = []
    for _, handle in _block_entries(data[index_offset : index_offset + index_size]):
        offset, p = read_varint(handle, 0)
        size, _ = read_varint(handle, p)
        entries.extend(_block_entries(data[offset : offset + size]))
    return entries


def _block(entries: list[tuple[bytes, bytes]]) -> bytes:
    body, restarts = bytearray(), []
    for key, value in entries:  # a restart point at every entry: whole keys, no prefix sharing
        restarts.append(len(body))
        body += varint(0) + varint(len(key)) + varint(len(value)) + key + value
    restarts = restarts or [0]
    return bytes(body) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def write_table(entries: list[tuple[bytes, bytes]], handles: list[tuple[int, int]] | None = None) -> bytes:
    """A table of one data block (``handles`` overrides the index block's (offset, size) pointers)."""
    out = bytearray()

    def add(block: bytes) -> tuple[int, int]:
        offset = len(out)
        out.extend(block + b"\0" + struct.pack("<I", masked_crc(block + b"\0")))
        return offset, len(block)

    data = add(_block(entries))
    meta = add(_block([]))
    pointers = handles or [data]
    last = entries[-1][0] if entries else b""
    index = add(_block([(last + i.to_bytes(4, "big") if i else last, varint(o) + varint(s))
                      for i, (o, s) in enumerate(pointers)]))
    footer = (varint(meta[0]) + varint(meta[1]) + varint(index[0]) + varint(index[1])).ljust(40, b"\0")
    return bytes(out) + footer + struct.pack("<Q", TABLE_MAGIC)


# -- BundleEntryProto fields ----------------------------------------------------------------------

def fields(message: bytes) -> list[list]:
    """[number, wire type, value] of each field of a message."""
    out, pos = [], 0
    while pos < len(message):
        key, pos = read_varint(message, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = read_varint(message, pos)
        elif wire == 1:
            value, pos = message[pos : pos + 8], pos + 8
        elif wire == 5:
            value, pos = message[pos : pos + 4], pos + 4
        else:
            length, pos = read_varint(message, pos)
            value, pos = message[pos : pos + length], pos + length
        out.append([number, wire, value])
    return out


def encode(parts: list[list]) -> bytes:
    out = bytearray()
    for number, wire, value in parts:
        out += varint(number << 3 | wire)
        if wire == 0:
            out += varint(value)
        elif wire == 2:
            out += varint(len(value)) + value
        else:
            out += value
    return bytes(out)


def shape_proto(dims: list[int]) -> bytes:
    return encode([[2, 2, encode([[1, 0, d]])] for d in dims])


def entry_fields(index: Path, name: str) -> dict[int, object]:
    for key, value in parse_table(index.read_bytes()):
        if key == name.encode():
            return {number: value for number, _, value in fields(value)}
    raise KeyError(name)


def edit_index(index: Path, change: Callable[[list[list]], None],
               handles: Callable[[int], list[tuple[int, int]]] | None = None) -> None:
    """Rewrite a checkpoint index after ``change`` edits its [key, value] list in place."""
    entries = [[k, v] for k, v in parse_table(index.read_bytes())]
    change(entries)
    pairs = [(bytes(k), bytes(v)) for k, v in entries]
    index.write_bytes(write_table(pairs, handles(len(_block(pairs))) if handles else None))


def edit_entry(index: Path, name: str, rewrite: Callable[[list[list]], list[list] | bytes]) -> None:
    """Replace the entry ``name``'s fields (or its raw bytes) with what ``rewrite`` returns."""
    def change(entries: list[list]) -> None:
        for pair in entries:
            if pair[0] == name.encode():
                result = rewrite(fields(pair[1]))
                pair[1] = result if isinstance(result, bytes) else encode(result)
                return
        raise KeyError(name)
    edit_index(index, change)


def set_field(parts: list[list], number: int, wire: int, value: object) -> list[list]:
    kept = [p for p in parts if p[0] != number]
    return sorted(kept + [[number, wire, value]], key=lambda p: p[0])


def poke(path: Path, offset: int, data: bytes) -> None:
    with open(path, "r+b") as handle:
        handle.seek(offset)
        handle.write(data)


# -- archives ---------------------------------------------------------------------------------------

def tar_of(path: Path, members: list[tuple[str, bytes | Path | tarfile.TarInfo]], mode: str = "w:gz") -> Path:
    """A tar file of (name, bytes or file) members, or ready TarInfo headers (links, pax)."""
    with tarfile.open(path, mode) as tar:
        for name, content in members:
            if isinstance(content, tarfile.TarInfo):
                tar.addfile(content)
            elif isinstance(content, Path):
                tar.add(content, arcname=name)
            else:
                info = tarfile.TarInfo(name)
                info.size = len(content)
                tar.addfile(info, io.BytesIO(content))
    return path


def header_block(name: str, size: int, kind: bytes) -> bytes:
    """One raw ustar header (for the headers ``tarfile`` will not write: a pax record of 6 GiB)."""
    block = bytearray(512)
    block[0 : len(name)] = name.encode()
    block[100:108] = b"0000644\0"
    block[108:116] = block[116:124] = b"0000000\0"
    block[124:136] = f"{size:011o}\0".encode() if size < 8**11 else b"\x80" + size.to_bytes(11, "big")
    block[136:148] = b"00000000000\0"
    block[156:157] = kind
    block[257:263], block[263:265] = b"ustar\0", b"00"
    block[148:156] = b" " * 8
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block)
