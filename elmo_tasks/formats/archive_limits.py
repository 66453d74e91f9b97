"""How far reading a model archive (TF-Hub .tar.gz, NLPL .zip) may go, checked before and while
reading, so that a small or hostile archive cannot fill the disk or the memory, or run for hours.

The bounds come from what a converter needs, not from what an archive claims:

* only the members a converter reads are unpacked (``tfhub``: the variables index, then the byte
  range of each data shard that its tensors occupy; ``nlpl``: model.hdf5, options.json, vocab.txt,
  meta.json), each within a size its format allows (``MAX_SMALL_MEMBER`` for JSON and text
  headers; the weights within twice the bytes their options imply (float64 storage), plus ``WEIGHTS_SLACK``);
* decompression stays proportional to the archive: a gzip stream may unpack to at most
  ``MAX_RATIO`` times the archive's size plus ``RATIO_FLOOR`` (skipped members included), and a zip
  member over 1 MiB to ``MAX_RATIO`` times its compressed size. Trained float32 weights barely
  compress (the released models' archives unpack about 1.1:1), so only zeros or repeated bytes
  (a decompression bomb) come near 64:1;
* a tar header's extended data (pax records, GNU long names: under 1 KB in real archives) is
  refused past ``MAX_EXTENDED_HEADER`` before it is read, and an archive of more than
  ``MAX_MEMBERS`` members is refused;
* encrypted members and compression methods Python cannot read (deflate64, which Windows writes
  for large zips) are one-line errors that say to unzip the archive and give the folder.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import tarfile
import zipfile
import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import BinaryIO

from elmo_tasks.errors import UserError

MAX_MEMBERS = 10_000  # a TF-Hub module has a handful of files, an NLPL zip four
MAX_EXTENDED_HEADER = 1 << 20  # pax records and GNU long names; real ones are under 1 KB
MAX_RATIO = 64  # unpacked bytes per compressed byte; trained weights compress about 1.1:1
RATIO_FLOOR = 64 << 20  # bytes a gzip stream may unpack whatever its size (saved_model.pb, small modules)
MAX_SMALL_MEMBER = 1 << 20  # options.json, meta.json: a few hundred bytes in the released archives
WEIGHTS_SLACK = 16 << 20  # HDF5 metadata, an inference graph's LSTM state variables (a few MB)
COPY_BLOCK = 1 << 20
GZIP_MAGIC = b"\x1f\x8b"
ZIP_METHODS = {zipfile.ZIP_STORED: "stored", zipfile.ZIP_DEFLATED: "deflate", zipfile.ZIP_BZIP2: "bzip2",
               zipfile.ZIP_LZMA: "lzma"}
OTHER_ZIP_METHODS = {9: "deflate64", 10: "PKWARE implode", 93: "zstandard", 95: "xz", 98: "PPMd", 99: "AES"}


def _size(n: int) -> str:
    return f"{n / (1 << 30):.1f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.1f} MiB" if n >= 1 << 20 else f"{n:,} bytes"


def weights_limit(parameters: int) -> int:
    """The most bytes a weights member of ``parameters`` numbers may take: float64 storage plus slack."""
    return 8 * parameters + WEIGHTS_SLACK


def member_path(archive: Path, name: str) -> PurePosixPath:
    """A member's name as a relative path inside the archive (``./`` dropped); a name that is absolute or
    climbs out with ``..`` is refused (nothing is ever written outside the extraction folder)."""
    path = PurePosixPath(name)
    if path.is_absolute() or ".." in path.parts:
        raise UserError(f"{archive}: member '{name}' points outside the archive: not a model archive")
    return PurePosixPath(*[part for part in path.parts if part != "."]) if path.parts else path


class _GuardedStream(io.RawIOBase):
    """The decompressed bytes of a (possibly gzipped) tar file, for ``tarfile``: a single read past
    ``MAX_EXTENDED_HEADER`` (only a header's extended data is read whole) and unpacking past
    ``MAX_RATIO`` times the archive's size are refused with one-line errors naming the archive."""

    def __init__(self, archive: Path) -> None:
        super().__init__()
        self.archive = archive
        self.raw = open(archive, "rb")
        compressed = self.raw.read(2) == GZIP_MAGIC
        self.raw.seek(0)
        self.inner: BinaryIO = gzip.GzipFile(fileobj=self.raw) if compressed else self.raw
        size = os.fstat(self.raw.fileno()).st_size
        self.limit = MAX_RATIO * size + RATIO_FLOOR if compressed else size

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self.inner.tell()

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0 or size > max(MAX_EXTENDED_HEADER, COPY_BLOCK):
            raise UserError(f"{self.archive}: a tar header declares {_size(size)} of extended data (pax records or "
                            "a long name; real ones are under 1 KB): not a model archive")
        data = self.inner.read(size)
        if self.inner.tell() > self.limit:
            raise UserError(f"{self.archive}: unpacks past {_size(self.limit)}, over {MAX_RATIO} times its size: not "
                            "a model archive (a decompression bomb?)")
        return data

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        if whence != io.SEEK_SET or offset < self.inner.tell():
            return self.inner.seek(offset, whence)
        while self.inner.tell() < offset:  # forward: through our own reads, so the bounds hold
            if not self.read(min(COPY_BLOCK, offset - self.inner.tell())):
                break
        return self.inner.tell()

    def close(self) -> None:
        try:
            if self.inner is not self.raw:
                self.inner.close()
        finally:
            self.raw.close()
            super().close()


def looks_like_tar(path: Path) -> bool:
    """Whether ``path`` is a (gzipped) tar file with a POSIX header: its first 512 unpacked bytes only."""
    try:
        with open(path, "rb") as handle:
            gzipped = handle.read(2) == GZIP_MAGIC
            handle.seek(0)
            block = (gzip.GzipFile(fileobj=handle) if gzipped else handle).read(512)
    except (OSError, EOFError):
        return False
    return len(block) == 512 and block[257:262] == b"ustar"


TAR_ERRORS = (tarfile.TarError, EOFError, OSError, ValueError, zlib.error)  # what tarfile and gzip raise on damage


def tar_members(archive: Path) -> Iterator[tuple[tarfile.TarInfo, PurePosixPath, tarfile.TarFile]]:
    """(member, its path, the open tar) for every member of the tar file ``archive``, within
    ``MAX_MEMBERS`` and the stream's bounds; members are not kept once passed (memory stays flat)."""
    stream = _GuardedStream(archive)
    try:
        with tarfile.open(fileobj=stream, mode="r:") as tar:
            count = 0
            while (member := tar.next()) is not None:
                count += 1
                if count > MAX_MEMBERS:
                    raise UserError(f"{archive}: more than {MAX_MEMBERS:,} members: not a model archive")
                yield member, member_path(archive, member.name), tar
                tar.members.clear()
    finally:
        stream.close()


def copy_member(archive: Path, name: str, src: BinaryIO, dst: BinaryIO, limit: int) -> int:
    """Copy at most ``limit`` bytes of one member; returns the bytes copied."""
    copied = 0
    while copied < limit:
        block = src.read(min(COPY_BLOCK, limit - copied))
        if not block:
            break
        dst.write(block)
        copied += len(block)
    return copied


def check_zip_member(archive: Path, info: zipfile.ZipInfo, limit: int, why: str) -> None:
    """Refuse, before a byte is unpacked, a zip member that is encrypted, compressed with a method
    Python cannot read, larger than ``limit`` (``why`` says where the limit comes from), or more
    compressed than trained weights can be."""
    name = info.filename
    if info.flag_bits & 0x1:
        raise UserError(f"{archive}: member '{name}' is encrypted: unzip it with its password and give the folder")
    if info.compress_type not in ZIP_METHODS:
        method = OTHER_ZIP_METHODS.get(info.compress_type, "an unknown method")
        raise UserError(f"{archive}: member '{name}' is compressed with {method} (zip method {info.compress_type}), "
                        f"which Python's zipfile cannot read: unzip it (e.g. unzip {archive.name} -d DIR) and give "
                        "the folder")
    if info.file_size > limit:
        raise UserError(f"{archive}: member '{name}' unpacks to {_size(info.file_size)}, over the {_size(limit)} "
                        f"{why}")
    if info.file_size > 1 << 20 and info.file_size > MAX_RATIO * max(info.compress_size, 1):
        raise UserError(f"{archive}: member '{name}' unpacks {info.file_size // max(info.compress_size, 1):,} times "
                        f"its compressed size ({_size(info.compress_size)} -> {_size(info.file_size)}): not trained "
                        "weights (a decompression bomb?)")


ZIP_ERRORS = (zipfile.BadZipFile, EOFError, OSError, ValueError, RuntimeError, NotImplementedError, zlib.error,
              lzma.LZMAError)  # what zipfile, zlib, bz2 and lzma raise on damaged input
