"""Atomic file output: write under a temporary name in the same folder, rename onto the target when done.

Every file the toolkit writes (HDF5 vectors, weights, checkpoints, tables, plots, corpus splits)
goes through ``atomic_path``, so an interrupted or failed write never leaves half a file at the
target, and its temporary file is removed.
"""

from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` to write; it replaces ``path`` when the block
    ends normally and is removed when the block raises."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f"{path.name}.tmp-", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text_atomic(path: str | Path, text: str) -> None:
    """``path.write_text(text)`` (UTF-8), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
