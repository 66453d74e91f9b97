"""Read TensorFlow checkpoints (the V2 "tensor bundle") without TensorFlow.

A checkpoint ``PREFIX`` is ``PREFIX.index`` plus data files ``PREFIX.data-SSSSS-of-NNNNN``:

* the index is an uncompressed LevelDB-format table: data blocks of sorted key/value entries
  (each key shares a prefix with the previous one; a restart point every few entries stores a
  whole key), an index block pointing at the data blocks, and a 48-byte footer. The entry with the
  empty key is a ``BundleHeaderProto`` (number of shards, endianness); every other key is a
  variable name whose value is a ``BundleEntryProto`` (dtype, shape, shard, offset, size, crc32c);
* the data files hold each tensor's raw little-endian bytes at its offset; each tensor is read
  through a memory map of its own byte range, so a large model is never copied whole into memory.

Everything in the index is checked before any data is touched: the index's size and block
structure, each field's wire type, dimensions (non-negative, at most ``MAX_RANK``), shard numbers,
and that a tensor's byte count is what its dtype and shape need; a damaged index is a one-line
error naming the file and the entry, never a library exception.

The two protobuf messages have a handful of scalar fields, decoded here by hand (varints and
length-delimited fields), which keeps the package free of a ``protobuf`` dependency. The table's
block checksums are checked; a tensor's crc32c only on request (``read(name, verify=True)``), since
pure Python checks ~1 MB/s.
"""

from __future__ import annotations

import stat
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


_FIXED = {1: 8, 5: 4}  # wire type -> bytes of a fixed-width field


def _fields(data: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) triples: ints for varint/fixed fields, bytes for length-delimited ones."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(data):
        key, pos = _varint(data, pos)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, pos = _varint(data, pos)
        elif wire in _FIXED:
            width = _FIXED[wire]
            if pos + width > len(data):
                raise ValueError(f"truncated field {number}")
            value, pos = int.from_bytes(data[pos : pos + width], "little"), pos + width
        elif wire == 2:
            length, pos = _varint(data, pos)
            if pos + length > len(data):
                raise ValueError(f"truncated field {number}")
            value, pos = data[pos : pos + length], pos + length
        else:
            raise ValueError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _message(data: bytes, wires: dict[int, int]) -> dict[int, list[int | bytes]]:
    """The fields of one message by number, each checked to have the wire type ``wires`` gives it
    (a field of the wrong type is a damaged message; unknown fields are skipped, as protobuf does)."""
    values: dict[int, list[int | bytes]] = {}
    for number, wire, value in _fields(data):
        if number in wires:
            if wire != wires[number]:
                raise ValueError(f"field {number} has wire type {wire}, expected {wires[number]}")
            values.setdefault(number, []).append(value)
    return values


def _last_int(values: dict[int, list[int | bytes]], number: int, default: int = 0) -> int:
    """A scalar field (protobuf keeps the last occurrence)."""
    return int(values[number][-1]) if number in values else default


MAX_RANK = 32  # TensorFlow's own limit on a tensor's dimensions (TensorShape::MaxDimensions is 254)


def _shape(data: bytes) -> tuple[int, ...]:
    """TensorShapeProto: repeated Dim dim = 2 (Dim: int64 size = 1); unknown_rank = 3."""
    message = _message(data, {2: 2, 3: 0})
    if _last_int(message, 3):
        raise ValueError("tensor of unknown rank")
    dims = []
    for dim in message.get(2, []):
        size = _last_int(_message(dim, {1: 0}), 1)
        if size >= 1 << 63:
            raise ValueError(f"negative dimension {size - (1 << 64)}")
        dims.append(size)
    if len(dims) > MAX_RANK:
        raise ValueError(f"{len(dims)} dimensions")
    return tuple(dims)


def _entry(name: str, data: bytes) -> TensorEntry:
    """BundleEntryProto: dtype 1, shape 2, shard_id 3, offset 4, size 5, crc32c 6 (fixed32), slices 7."""
    message = _message(data, {1: 0, 2: 2, 3: 0, 4: 0, 5: 0, 6: 5, 7: 2})
    shape = message.get(2, [b""])[-1]
    return TensorEntry(name, _last_int(message, 1), _shape(shape), _last_int(message, 3), _last_int(message, 4),
                       _last_int(message, 5), _last_int(message, 6) if 6 in message else None, 7 in message)


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

MAX_INDEX_BYTES = 4 << 20  # a released ELMo's index is about 3 KB (one entry per variable)
MAX_ENTRIES = 1 << 16  # a bilm-tf training checkpoint has about 100 variables with their slots


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
    return parse_table(path.read_bytes())


def parse_table(data: bytes) -> list[tuple[bytes, bytes]]:
    """The table's entries; each data block is read once and keys must increase, as LevelDB writes them."""
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
    entries: list[tuple[bytes, bytes]] = []
    block_end = 0
    for _last_key, handle in _block_entries(_read_block(data, index_offset, index_size, "index")):
        offset, p = _varint(handle, 0)
        size, _ = _varint(handle, p)
        if offset < block_end:
            raise ValueError("data blocks overlap")
        block_end = offset + size + BLOCK_TRAILER_SIZE
        for key, value in _block_entries(_read_block(data, offset, size, "data")):
            if entries and key <= entries[-1][0]:
                raise ValueError(f"keys out of order at {key[:80]!r}")
            entries.append((key, value))
        if len(entries) > MAX_ENTRIES:
            raise ValueError(f"more than {MAX_ENTRIES:,} entries")
    return entries


# -- the bundle -----------------------------------------------------------------------------------

MAX_SHARDS = 4096  # bilm-tf writes one shard per device; TF-Hub modules have one


def regular_file_problem(path: Path, what: str) -> str | None:
    """Why ``path`` is not a regular file to read (missing, a folder, a FIFO or device), or None: a
    FIFO named like a checkpoint file would block a reader forever."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        return f"{what} not found: {path}"
    except OSError as exc:
        return f"{what} cannot be read: {path} ({exc.strerror or exc})"
    if stat.S_ISDIR(mode):
        return f"{what} is a folder, not a file: {path}"
    if not stat.S_ISREG(mode):
        return f"{what} is not a regular file (a FIFO or device?): {path}"
    return None


def _dims(shape: tuple[int, ...]) -> int:
    count = 1
    for dim in shape:
        count *= dim
    return count


class TensorBundle:
    """A TensorFlow V2 checkpoint opened by its prefix (``.../model.ckpt-20``, ``variables/variables``).

    Opening reads only the index (bounded by ``MAX_INDEX_BYTES``); ``read`` maps one tensor's byte
    range of its data file, after checking its declared size against its dtype, shape and the file.
    """

    def __init__(self, prefix: str | Path) -> None:
        self.prefix = Path(prefix)
        self.index_path = Path(f"{self.prefix}.index")
        problem = regular_file_problem(self.index_path, "TensorFlow checkpoint index")
        if problem:
            raise UserError(problem)
        size = self.index_path.stat().st_size
        if size > MAX_INDEX_BYTES:
            raise UserError(f"{self.index_path}: {size:,} bytes, over the {MAX_INDEX_BYTES >> 20} MiB a checkpoint "
                            "index of an ELMo model needs: not a TensorFlow checkpoint index of one")
        try:
            records = parse_table(self.index_path.read_bytes())
        except (ValueError, struct.error) as exc:
            raise UserError(f"{self.index_path}: not a TensorFlow checkpoint index ({exc})") from None
        except OSError as exc:
            raise UserError(f"{self.index_path}: cannot be read ({exc.strerror or exc})") from None
        self.num_shards = 1
        self.entries: dict[str, TensorEntry] = {}
        for key, value in records:
            try:
                if key == b"":
                    header = _message(value, {1: 0, 2: 0})
                    self.num_shards = _last_int(header, 1, 1)
                    if not 1 <= self.num_shards <= MAX_SHARDS:
                        raise ValueError(f"{self.num_shards} shards")
                    if _last_int(header, 2) != 0:
                        raise UserError(f"{self.index_path}: a big-endian checkpoint is not supported")
                    continue
                name = key.decode("utf-8")
                self.entries[name] = _entry(name, value)
            except (ValueError, UnicodeDecodeError) as exc:
                what = "the header" if key == b"" else f"entry '{key[:120].decode('utf-8', 'replace')}'"
                raise UserError(f"{self.index_path}: {what} is not a valid bundle entry ({exc})") from None
        for entry in self.entries.values():
            if entry.shard >= self.num_shards:
                raise UserError(f"{self.index_path}: variable '{entry.name}' is in shard {entry.shard}, but the "
                                f"checkpoint has {self.num_shards}")

    def names(self) -> list[str]:
        return sorted(self.entries)

    def data_path(self, shard: int) -> Path:
        return Path(f"{self.prefix}.data-{shard:05d}-of-{self.num_shards:05d}")

    def data_paths(self) -> list[Path]:
        return [self.data_path(shard) for shard in range(self.num_shards)]

    def entry(self, name: str) -> TensorEntry:
        """The entry of a numeric, whole (not partitioned) tensor whose byte count fits its dtype and shape."""
        entry = self.entries.get(name)
        if entry is None:
            raise UserError(f"{self.index_path}: no variable '{name}'")
        if entry.sliced:
            raise UserError(f"{self.index_path}: variable '{name}' is partitioned into slices, which is not supported")
        if entry.dtype not in DTYPES:
            raise UserError(f"{self.index_path}: variable '{name}' has type {entry.dtype_name}, not a number type")
        needed = _dims(entry.shape) * np.dtype(DTYPES[entry.dtype]).itemsize
        if needed != entry.size:
            raise UserError(f"{self.index_path}: variable '{name}' holds {entry.size:,} bytes, but {entry.dtype_name} "
                            f"{list(entry.shape)} needs {needed:,}")
        return entry

    def extents(self, names: list[str]) -> dict[int, int]:
        """For each shard, how many of its leading bytes the tensors ``names`` need."""
        out: dict[int, int] = {}
        for name in names:
            entry = self.entry(name)
            out[entry.shard] = max(out.get(entry.shard, 0), entry.offset + entry.size)
        return out

    def read(self, name: str, verify: bool = False) -> np.ndarray:
        """The tensor ``name`` as a read-only numpy array mapped from its byte range of the data file."""
        entry = self.entry(name)
        dtype = np.dtype(DTYPES[entry.dtype])
        data_path = self.data_path(entry.shard)
        problem = regular_file_problem(data_path, f"TensorFlow checkpoint data file (shard {entry.shard} of "
                                                  f"{self.num_shards})")
        if problem:
            raise UserError(problem)
        file_size = data_path.stat().st_size
        if entry.offset + entry.size > file_size:
            raise UserError(f"{data_path}: truncated: variable '{name}' needs bytes {entry.offset:,}..."
                            f"{entry.offset + entry.size:,} but the file has {file_size:,}")
        if entry.size == 0:
            return np.zeros(entry.shape, dtype)
        try:
            array = np.memmap(data_path, dtype=dtype, mode="r", offset=entry.offset, shape=entry.shape)
        except (OSError, ValueError) as exc:
            raise UserError(f"{data_path}: cannot read variable '{name}' ({exc})") from None
        if verify and entry.crc32c is not None and unmask_crc(entry.crc32c) != crc32c(memoryview(array).cast("B")):
            raise UserError(f"{data_path}: variable '{name}' fails its crc32c check (the file is damaged)")
        return array
