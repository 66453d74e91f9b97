"""Bounds on what a model archive (TF-Hub .tar.gz, NLPL .zip) may unpack to, checked before and while
unpacking, so that a small archive cannot fill the disk (a decompression bomb)."""

from __future__ import annotations

from typing import BinaryIO

from elmo_tasks.errors import UserError

MAX_UNPACKED_BYTES = 16 << 30  # the largest released ELMo (original, 5.5B) unpacks to under 1 GiB
MAX_MEMBERS = 10_000  # a TF-Hub module has a handful of files


class Budget:
    """What is left of the byte and member bounds for one archive; each use names the archive."""

    def __init__(self, archive: object, max_bytes: int | None = None, max_members: int | None = None) -> None:
        self.archive = archive
        self.max_bytes = MAX_UNPACKED_BYTES if max_bytes is None else max_bytes
        self.max_members = MAX_MEMBERS if max_members is None else max_members
        self.bytes_left, self.members_left = self.max_bytes, self.max_members

    def member(self, name: str, declared_size: int) -> None:
        """Count one member of ``declared_size`` bytes (its header's figure) before it is unpacked."""
        self.members_left -= 1
        if self.members_left < 0:
            raise UserError(f"{self.archive}: more than {self.max_members:,} members: not a model archive")
        if declared_size > self.bytes_left:
            raise UserError(f"{self.archive}: member '{name}' would unpack past {_size(self.max_bytes)} "
                            "in all: not a model archive (a decompression bomb?)")

    def copy(self, name: str, src: BinaryIO, dst: BinaryIO) -> None:
        """Copy one member, counting the bytes actually produced (headers can lie)."""
        while block := src.read(1 << 20):
            self.bytes_left -= len(block)
            if self.bytes_left < 0:
                raise UserError(f"{self.archive}: member '{name}' unpacks past {_size(self.max_bytes)} "
                                "in all: not a model archive (a decompression bomb?)")
            dst.write(block)


def _size(n: int) -> str:
    return f"{n / (1 << 30):.0f} GiB" if n >= 1 << 30 else f"{n / (1 << 20):.0f} MiB"
