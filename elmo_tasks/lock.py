"""One process at a time per output: a lock file holding its holder's pid, host, start time and command.

Run folders, bench outputs, pretraining folders and feature-cache keys are locked while a process
writes them, so two runs of one config into one folder cannot interleave and mix up results::

    with hold(run_dir / LOCK_NAME, f"run folder {run_dir}"):
        ...

A second process is refused with a one-line ``UserError`` naming the holder (or, with
``wait=True``, waits for it: the feature cache, which the holder is building for both). The lock is
an ``flock`` on the file, so the kernel drops it when its process dies, however it dies: a stale
lock file (its holder gone) is simply taken over. The file is removed on release.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from elmo_tasks.errors import UserError

LOCK_NAME = ".lock"


def _holder(path: Path) -> str:
    """Who holds the lock at ``path``, as its file says."""
    try:
        info = json.loads(path.read_text(encoding="utf-8"))
        return (f"process {int(info['pid'])} on {info['host']} (since {info['since']}: "
                f"{info['command']})")
    except (OSError, ValueError, KeyError, TypeError):
        return "another process"


def _acquire(path: Path, what: str, wait: bool) -> int:
    """An open descriptor of ``path`` holding its exclusive flock, the holder's details written in it."""
    waited = False
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise UserError(f"cannot lock {what}: {exc.strerror or exc}: {path}") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(path)
            if not wait:
                os.close(fd)
                raise UserError(f"{what} is in use by {holder}; wait for it to finish "
                                "or write elsewhere (another --out)") from None
            if not waited:
                print(f"waiting for {holder}, which holds {what}", file=sys.stderr)
                waited = True
            fcntl.flock(fd, fcntl.LOCK_EX)
        except OSError as exc:  # a filesystem without locks (some network mounts): run unlocked, say so
            print(f"warning: cannot lock {what} ({exc.strerror or exc}): concurrent writers are not "
                  "detected on this filesystem", file=sys.stderr)
            break
        # the holder may have removed the file between our open and our flock: lock the one on disk
        try:
            same = os.stat(path).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    info = {"pid": os.getpid(), "host": os.uname().nodename,
            "since": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "command": " ".join(Path(a).name if i == 0 else a for i, a in enumerate(sys.argv))[:200]}
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(info) + "\n").encode("utf-8"), 0)
    return fd


@contextmanager
def hold(path: str | Path, what: str, wait: bool = False) -> Iterator[None]:
    """Hold the lock file ``path`` (its folder must exist) for the block; ``what`` names the locked
    thing in the error. Refuses when another live process holds it, unless ``wait``."""
    path = Path(path)
    fd = _acquire(path, what, wait)
    try:
        yield
    finally:
        try:
            path.unlink(missing_ok=True)
        finally:
            os.close(fd)


def is_locked(path: str | Path) -> bool:
    """Whether a live process holds the lock file ``path`` now."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return False
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
