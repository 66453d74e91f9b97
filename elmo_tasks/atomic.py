"""Atomic file output: write under a temporary name in the same folder, rename onto the target when done.

Every file the toolkit writes (HDF5 vectors, weights, checkpoints, tables, plots, corpus splits)
goes through ``atomic_path``, so an interrupted or failed write never leaves half a file at the
target, and its temporary file is removed. The temporary name carries the writer's process id and
host (``NAME.tmp-PID-HOST-XXXXXXXX``): a ``kill -9`` cannot remove its own temporary, so the next
write of the same target removes the ones whose process is gone (``sweep_stale``). Outputs get the
mode the umask gives a new file (``mkstemp`` alone would make them 0600).
"""

from __future__ import annotations

import os
import re
import socket
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elmo_tasks.errors import UserError

_HOST = re.sub(r"[^A-Za-z0-9.]", "_", socket.gethostname())[:40] or "host"
_OWNED = re.compile(r"\.tmp-(\d+)-([^-]+)-[A-Za-z0-9_]{8}$")  # the owner of a temporary made here


def process_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this machine."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def current_umask() -> int:
    """The process's umask (read without changing it where /proc tells it)."""
    try:
        with open("/proc/self/status", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def temp_prefix(path: Path) -> str:
    """The name prefix of this process's temporaries for ``path``."""
    return f"{path.name}.tmp-{os.getpid()}-{_HOST}-"


def sweep_stale(path: str | Path) -> list[Path]:
    """Remove the temporaries of ``path`` (files or folders) left by processes of this host that are
    gone; returns what was removed. Temporaries of live processes and of other hosts are kept."""
    import shutil

    path = Path(path)
    removed = []
    try:
        candidates = list(path.parent.glob(f"{glob_escape(path.name)}.tmp-*"))
    except OSError:
        return removed
    for stale in candidates:
        owner = _OWNED.fullmatch(stale.name[len(path.name):])
        if owner is None or owner.group(2) != _HOST or process_alive(int(owner.group(1))):
            continue
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale, ignore_errors=True)
        else:
            stale.unlink(missing_ok=True)
        removed.append(stale)
    return removed


def glob_escape(name: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", name)


def _writing_error(path: Path, exc: OSError) -> UserError:
    return UserError(f"cannot write {path}: {exc.strerror or exc}")


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield an empty temporary file beside ``path`` to write; it replaces ``path`` when the block
    ends normally and is removed when the block raises."""
    path = Path(path)
    sweep_stale(path)
    try:
        fd, name = tempfile.mkstemp(prefix=temp_prefix(path), dir=path.parent)
        os.fchmod(fd, 0o666 & ~current_umask())
        os.close(fd)
    except OSError as exc:
        raise _writing_error(path, exc) from None
    tmp = Path(name)
    try:
        yield tmp
        try:
            os.replace(tmp, path)
        except OSError as exc:
            raise _writing_error(path, exc) from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def make_temp_dir(target: str | Path) -> Path:
    """A fresh temporary folder beside ``target`` (to be renamed onto it), with the umask's mode;
    stale ones of ``target`` are swept first."""
    target = Path(target)
    sweep_stale(target)
    try:
        tmp = Path(tempfile.mkdtemp(prefix=temp_prefix(target), dir=target.parent))
        os.chmod(tmp, 0o777 & ~current_umask())
    except OSError as exc:
        raise _writing_error(target, exc) from None
    return tmp


def write_text_atomic(path: str | Path, text: str) -> None:
    """``path.write_text(text)`` (UTF-8), atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
