"""Read TensorFlow checkpoints (the V2 "tensor bundle") without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus data files ``PREFIX.data-SSSSS-of-NNNNN``:

* the index is an uncompressed LevelDB-format table: data blocks of sorted key/value entries
  (each key shares a prefix with the previous one; a restart point every few entries stores a
  whole key), an index block pointing at the data blocks, and a 48-byte footer. The entry with the
  empty key is a ``BundleHeaderProto`` (number of shards, endianness); every other key is a
  variable name whose value is a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c);
* the data files hold each tensor's raw little-endian bytes at its offset; tensors are read
  through a memory map, so a large model is never copied whole into memory.

The two protobuf messages have a handful of scalar fields, decoded here by hand (varints and
length-delimited fields), which keeps the package free of a ``protobuf`` dependency. The table's
block checksums are checked; a tensor's crc32c only on request (``read(name, verify=True)``), since
pure Python checks ~1 MB/s.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from elmo_tasks.errors import UserError

TABLE_MAGIC = 0xDB4775248B80FB57
FOOTER_SIZE = 48
BLOCK_TRAILER_SIZE = 5  # compression type (1 byte) + masked crc32c (4 bytes)

# tensorflow DataType enum -> numpy little-endian dtype (strings and resources are listed, not read)
DTYPES = {1: "<f4", 2: "<f8", 3: "<i4", 4: "u1", 5: "<i2", 6: "i1", 9: "<i8", 10: "?", 17: "<u2",
          19: "<f2", 22: "<u4", 23: "<u8"}
DTYPE_NAMES = {1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8", 7: "string",
               9: "int64", 10: "bool", 14: "bfloat16", 17: "uint16", 19: "float16", 20: "resource",
               21: "variant", 22: "uint32", 23: "uint64"}


@dataclass(frozen=True)
class TensorEntry:
    """Where one tensor lives: its dtype code, shape, shard, byte range and checksum."""

    name: str
    dtype: int
    shape: tuple[int, ...]
    shard: int
    offset: int
    size: int
    crc32c: int | None
    sliced: bool

    @property
    def dtype_name(self) -> str:
        return DTYPE_NAMES.get(self.dtype, f"dtype {self.dtype}")


# -- protobuf wire format, the few fields we need -----------------------------------------------

def _varint(data: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(data):
            raise ValueError("truncated varint")
        byte = data[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint too long")


def _fields(data: bytes) -> list[tuple[int, int | bytes]]:
    """(field number, value) pairs: ints for varint/fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire == 1:
            value, pos = struct.unpack_from("<Q", data, pos)[0], pos + 8
        elif wire == 5:
            value, pos = struct.unpack_from("<I", data, pos)[0], pos + 4
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError("truncated field")
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, value))
    return out


def _shape(data: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1); unknown_rank = 3."""
    dims = []
    for number, value in _fields(data):
        if number == 2:
            size = next((v for n, v in _fields(value) if n == 1), 0)
            dims.append(size - (1 << 64) if size >= 1 << 63 else size)
        elif number == 3 and value:
            raise ValueError("tensor of unknown rank")
    return tuple(dims)


def _entry(name: str, data: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6 (fixed32), slices 7."""
    values: dict[int, int | bytes] = {}
    sliced = False
    for number, value in _fields(data):
        if number == 7:
            sliced = True
        else:
            values[number] = value
    return TensorEntry(name, int(values.get(1, 0)), _shape(values.get(2, b"")), int(values.get(3, 0)),
                       int(values.get(4, 0)), int(values.get(5, 0)),
                       int(values[6]) if 6 in values else None, sliced)


# -- crc32c (Castagnoli), as LevelDB and TensorFlow use it --------------------------------------

@lru_cache(maxsize=1)
def _crc_table() -> tuple[int, ...]:
    table = []
    for i in range(256):
        crc = i
        for _ in range(8):
            crc = (crc >> 1) ^ 0x82F63B78 if crc & 1 else crc >> 1
        table.append(crc)
    return tuple(table)


def crc32c(data: bytes | memoryview) -> int:
    table, crc = _crc_table(), 0xFFFFFFFF
    for byte in bytes(data):
        crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
    return crc ^ 0xFFFFFFFF


def unmask_crc(masked: int) -> int:
    """LevelDB stores ``rotate_right(crc, 15) + 0xa282ead8``; undo it."""
    rot = (masked - 0xA282EAD8) & 0xFFFFFFFF
    return ((rot >> 17) | (rot << 15)) & 0xFFFFFFFF


# -- the LevelDB-format table -------------------------------------------------------------------

def _block_entries(block: bytes) -> list[tuple[bytes, bytes]]:
    """All (key, value) entries of one block, rebuilding prefix-compressed keys."""
    if len(block) < 4:
        raise ValueError("block too short")
    num_restarts = struct.unpack_from("<I", block, len(block) - 4)[0]
    end = len(block) - 4 - 4 * num_restarts
    if end < 0:
        raise ValueError("bad restart array")
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        value_length, pos = _varint(block, pos)
        if shared > len(key) or pos + unshared + value_length > end:
            raise ValueError("corrupt block entry")
        key = key[:shared] + block[pos : pos + unshared]
        pos += unshared
        entries.append((key, block[pos : pos + value_length]))
        pos += value_length
    return entries


def _read_block(data: bytes, offset: int, size: int, where: str) -> bytes:
    if offset + size + BLOCK_TRAILER_SIZE > len(data):
        raise ValueError(f"{where} block runs past the end of the file")
    block = data[offset : offset + size]
    compression = data[offset + size]
    if compression != 0:
        raise ValueError(f"{where} block is compressed (type {compression}); TensorFlow writes it uncompressed")
    stored = struct.unpack_from("<I", data, offset + size + 1)[0]
    if unmask_crc(stored) != crc32c(data[offset : offset + size + 1]):
        raise ValueError(f"{where} block fails its checksum")
    return block


def read_table(path: Path) -> list[tuple[bytes, bytes]]:
    """Every (key, value) of a LevelDB-format table file, in key order."""
    data = path.read_bytes()
    if len(data) < FOOTER_SIZE:
        raise ValueError("too short for a table footer")
    footer = data[-FOOTER_SIZE:]
    if struct.unpack_from("<Q", footer, FOOTER_SIZE - 8)[0] != TABLE_MAGIC:
        raise ValueError("no table magic number at the end")
    pos = 0
    _meta_offset, pos = _varint(footer, pos)
    _meta_size, pos = _varint(footer, pos)
    index_offset, pos = _varint(footer, pos)
    index_size, pos = _varint(footer, pos)
    entries = []
    for _last_key, handle in _block_entries(_read_block(data, index_offset, index_size, "index")):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        entries.extend(_block_entries(_read_block(data, offset, size, "data")))
    return entries


# -- the bundle -----------------------------------------------------------------------------------

class TensorBundle:
    """A TensorFlow V2 checkpoint opened by its prefix (``.../model.ckpt-20``, ``variables/variables``)."""

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        if not self.index_path.is_file():
            raise UserError(f"TensorFlow checkpoint index not found: {self.index_path}")
        try:
            records = read_table(self.index_path)
        except (ValueError, struct.error) as exc:
            raise UserError(f"{self.index_path}: not a TensorFlow checkpoint index ({exc})") from None
        self.num_shards = 1
        self.entries: dict[str, TensorEntry] = {}
        for key, value in records:
            try:
                if key == b"":
                    header = dict(_fields(value))
                    self.num_shards = int(header.get(1, 1))
                    if int(header.get(2, 0)) != 0:
                        raise UserError(f"{self.index_path}: a big-endian checkpoint is not supported")
                    continue
                name = key.decode("utf-8")
                self.entries[name] = _entry(name, value)
            except (ValueError, UnicodeDecodeError) as exc:
                raise UserError(f"{self.index_path}: entry {key!r} is not a BundleEntryProto ({exc})") from None
        self._maps: dict[int, np.memmap] = {}

    def names(self) -> list[str]:
        return sorted(self.entries)

    def data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def _map(self, shard: int) -> np.memmap | np.ndarray:
        if shard not in self._maps:
            path = self.data_path(shard)
            if not path.is_file():
                raise UserError(f"TensorFlow checkpoint data file not found: {path} (shard {shard} of {self.num_shards})")
            size = path.stat().st_size
            self._maps[shard] = np.memmap(path, dtype=np.uint8, mode="r") if size else np.zeros(0, np.uint8)
        return self._maps[shard]

    def read(self, name: str, verify: bool = False) -> np.ndarray:
        """The tensor ``name`` as a numpy array (a read-only view into the memory-mapped data file)."""
        entry = self.entries.get(name)
        if entry is None:
            raise UserError(f"{self.index_path}: no variable '{name}'")
        if entry.sliced:
            raise UserError(f"{self.index_path}: variable '{name}' is partitioned into slices, which is not supported")
        if entry.dtype not in DTYPES:
            raise UserError(f"{self.index_path}: variable '{name}' has type {entry.dtype_name}, not a number type")
        dtype = np.dtype(DTYPES[entry.dtype])
        count = int(np.prod(entry.shape)) if entry.shape else 1
        data_path = self.data_path(entry.shard)
        if count * dtype.itemsize != entry.size:
            raise UserError(f"{data_path}: variable '{name}' holds {entry.size} bytes, but {entry.dtype_name} "
                            f"{list(entry.shape)} needs {count * dtype.itemsize}")
        raw = self._map(entry.shard)
        if entry.offset + entry.size > raw.shape[0]:
            raise UserError(f"{data_path}: truncated: variable '{name}' needs bytes {entry.offset}..{entry.offset + entry.size} "
                            f"but the file has {raw.shape[0]}")
        chunk = raw[entry.offset : entry.offset + entry.size]
        if verify and entry.crc32c is not None and unmask_crc(entry.crc32c) != crc32c(memoryview(chunk)):
            raise UserError(f"{data_path}: variable '{name}' fails its crc32c check (the file is damaged)")
        return chunk.view(dtype).reshape(entry.shape)
