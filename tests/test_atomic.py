"""Atomic outputs: temporaries named by their process, swept once that process is gone; the umask's mode."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from elmo_tasks.atomic import atomic_path, make_temp_dir, sweep_stale, temp_prefix, write_text_atomic
from elmo_tasks.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


@pytest.mark.parametrize("mask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_outputs_get_the_umask_mode(tmp_path, mask, mode):
    old = os.umask(mask)
    try:
        write_text_atomic(tmp_path / "a.txt", "x")
        folder = make_temp_dir(tmp_path / "d")
    finally:
        os.umask(old)
    assert (tmp_path / "a.txt").stat().st_mode & 0o777 == mode
    assert folder.stat().st_mode & 0o777 == mode | 0o111 & ~mask


def test_only_temporaries_of_gone_processes_are_swept(tmp_path):
    target = tmp_path / "out.hdf5"
    host = temp_prefix(target).split("-")[2]
    dead, alive = _dead_pid(), os.getpid()
    gone = tmp_path / f"out.hdf5.tmp-{dead}-{host}-abcd1234"
    live = tmp_path / f"out.hdf5.tmp-{alive}-{host}-abcd1234"
    other_host = tmp_path / f"out.hdf5.tmp-{dead}-elsewhere-abcd1234"
    legacy = tmp_path / "out.hdf5.tmp-abcd1234"  # no owner in the name: kept
    other_output = tmp_path / f"out.hdf5x.tmp-{dead}-{host}-abcd1234"
    gone_dir = tmp_path / f"out.hdf5.tmp-{dead}-{host}-efgh5678"
    for path in (gone, live, other_host, legacy, other_output):
        path.write_text("partial")
    gone_dir.mkdir()
    (gone_dir / "layers.npy").write_text("partial")
    assert sorted(sweep_stale(target)) == sorted([gone, gone_dir])
    assert all(p.exists() for p in (live, other_host, legacy, other_output))


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError):
        with atomic_path(tmp_path / "x.txt") as tmp:
            tmp.write_text("half")
            raise RuntimeError
    assert list(tmp_path.iterdir()) == []


def test_unwritable_places_are_one_user_error(tmp_path):
    with pytest.raises(UserError, match=r"cannot write /proc/x\.hdf5"):
        with atomic_path("/proc/x.hdf5"):
            pass
    with pytest.raises(UserError, match="cannot write"):
        write_text_atomic(tmp_path / "missing" / "x.txt", "x")


def test_kill_9_leftover_is_removed_by_the_next_write(tmp_path):
    target = tmp_path / "big.bin"
    script = (f"import time, sys; sys.path.insert(0, {str(ROOT)!r})\n"
              "from elmo_tasks.atomic import atomic_path\n"
              f"with atomic_path({str(target)!r}) as tmp:\n"
              "    tmp.write_bytes(b'x' * 1000); print('writing', flush=True); time.sleep(60)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "writing"
    left = list(tmp_path.glob("big.bin.tmp-*"))
    assert len(left) == 1
    write_text_atomic(tmp_path / "other.txt", "x")  # another output does not touch it
    assert left[0].exists()
    with atomic_path(target) as tmp:  # its owner is alive: kept
        tmp.write_text("mine")
    assert left[0].exists()
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    time.sleep(0.1)
    with atomic_path(target) as tmp:
        tmp.write_text("again")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["big.bin", "other.txt"]
    assert target.read_text() == "again"
