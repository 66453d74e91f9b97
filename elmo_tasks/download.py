"""The one downloader: a URL -> a checked file in the cache, fetched once, resumed, verified, offline-ready.

A file lives in ``$ELMO_TASKS_CACHE/downloads/<sha256 of its URL>-<name>/`` beside a JSON manifest
(URL, size, sha256, ETag, Last-Modified, date). The first download's sha256 is the file's identity
(no ELMo source publishes checksums): a later download of the URL whose bytes differ is refused.
An interrupted download continues from ``<name>.partial`` with an HTTP ``Range`` request
(``If-Range`` on the recorded ETag, so a file changed meanwhile restarts instead of mixing); a
server that ignores ranges restarts it. One process per file (``elmo_tasks.lock``): a second
waits and reuses the first's file. A cached file is used without any network call.

Environment: ``ELMO_TASKS_OFFLINE=1`` (or ``HF_HUB_OFFLINE=1``) never touches the network;
``ELMO_TASKS_MODEL_MIRROR=http://host:port`` replaces the scheme and host of every URL, keeping
its path and query (the cache still names the file by its original URL).
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import shutil
import sys
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from elmo_tasks.atomic import atomic_path
from elmo_tasks.data.sources import cache_dir, sha256_file
from elmo_tasks.errors import UserError
from elmo_tasks.lock import hold
from elmo_tasks.models.registry import canonical_url

DOWNLOADS_DIR = "downloads"
MANIFEST_NAME = "manifest.json"
PARTIAL_SUFFIX = ".partial"
OFFLINE_VARIABLES = ("ELMO_TASKS_OFFLINE", "HF_HUB_OFFLINE")
MIRROR_VARIABLE = "ELMO_TASKS_MODEL_MIRROR"
ATTEMPTS = 5  # per download, on connection errors, dropped connections and 5xx answers
BACKOFF_S = 0.5  # wait before the second attempt, doubled after each (0.5 + 1 + 2 + 4 s at most)
MAX_REDIRECTS = 5  # tfhub.dev -> Kaggle -> storage takes two or three
CONNECT_TIMEOUT_S = 10.0
READ_TIMEOUT_S = 60.0  # a stalled transfer is a connection error (retried, resumed)
BLOCK = 1 << 20
SPACE_MARGIN = 64 << 20  # free bytes kept on the cache's disk beyond the download
GIVE_LOCAL = "or download it by hand and give its local path instead"
Check = Callable[[Path], None]


class _Retry(Exception):
    """A failure worth another attempt (connection error, dropped connection, 5xx)."""


def offline_variable() -> str | None:
    """The offline variable that is set (to 1, true, yes or on), if any."""
    for name in OFFLINE_VARIABLES:
        if os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on"):
            return name
    return None


def mirrored(url: str) -> str:
    """``url`` with its scheme and host replaced by ``$ELMO_TASKS_MODEL_MIRROR`` (if set); path and query kept."""
    url = canonical_url(url)
    mirror = os.environ.get(MIRROR_VARIABLE, "").strip()
    if not mirror:
        return url
    if not re.fullmatch(r"https?://[^/\s?#]+/?", mirror):
        raise UserError(f"{MIRROR_VARIABLE}={mirror!r}: expected a scheme and host only, such as http://host:8080")
    parts = urlsplit(url)
    return mirror.rstrip("/") + (parts.path or "/") + (f"?{parts.query}" if parts.query else "")


def file_name(url: str) -> str:
    """The cached file's name: the URL path's last part, made safe (a TF-Hub compressed module ends .tar.gz)."""
    parts = urlsplit(canonical_url(url))
    name = re.sub(r"[^A-Za-z0-9._-]", "_", parts.path.rstrip("/").rsplit("/", 1)[-1])[:100].lstrip(".") or "file"
    if "tf-hub-format=compressed" in parts.query and not name.endswith(".tar.gz"):
        name += ".tar.gz"
    return name


def entry_dir(url: str) -> Path:
    """The cache folder of one URL (named by the sha256 of its canonical form, and its file name)."""
    url = canonical_url(url)
    return cache_dir() / DOWNLOADS_DIR / f"{hashlib.sha256(url.encode()).hexdigest()[:16]}-{file_name(url)}"


def read_manifest(url: str) -> dict | None:
    """The manifest of ``url``'s cache entry (None when it was never downloaded, or the manifest is unreadable)."""
    try:
        data = json.loads((entry_dir(url) / MANIFEST_NAME).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def cached_path(url: str) -> Path | None:
    """The cached file of ``url`` when it is complete (its manifest's size); no network, no hashing."""
    manifest = read_manifest(url)
    path = entry_dir(url) / file_name(url)
    try:
        if manifest is not None and path.stat().st_size == manifest.get("size"):
            return path
    except OSError:
        pass
    return None


def discard(url: str) -> None:
    """Forget ``url``'s download entirely (its file, partial and manifest): for a file a check refused."""
    shutil.rmtree(entry_dir(url), ignore_errors=True)


def fetch(url: str, check: Check | None = None, revalidate: bool = False, what: str = "file") -> Path:
    """The local path of ``url``'s file: the cached one, or downloaded now (``check`` runs on the new
    bytes before they are kept; a ``UserError`` from it discards them). ``revalidate`` asks the server
    whether a cached file changed (``elmo-tasks models download``)."""
    url = canonical_url(url)
    cached = cached_path(url)
    if cached is not None and not revalidate:
        return cached
    variable = offline_variable()
    if variable:
        if cached is not None:
            return cached
        raise UserError(f"{url} is not in the cache ({entry_dir(url)}) and {variable}=1 forbids the network: download "
                        f"it where there is one (elmo-tasks models download) and copy the cache folder, {GIVE_LOCAL}")
    entry = entry_dir(url)
    entry.mkdir(parents=True, exist_ok=True)
    try:
        with hold(entry / ".lock", f"the download of {url}", wait=True):
            cached = cached_path(url)  # another process may have finished it while we waited
            if cached is not None and not revalidate:
                return cached
            return _download(url, entry, read_manifest(url), check, what)
    except UserError:
        try:
            entry.rmdir()  # nothing was kept: no empty folder left behind
        except OSError:
            pass
        raise


def _download(url: str, entry: Path, manifest: dict | None, check: Check | None, what: str) -> Path:
    import httpx  # the network library loads only when a download happens: a cached model starts without it

    target, source = entry / file_name(url), mirrored(url)
    partial = entry / (target.name + PARTIAL_SUFFIX)
    etag = manifest.get("etag") if manifest and cached_path(url) is not None else None  # a damaged copy: no 304
    delay, last = BACKOFF_S, ""
    timeout = httpx.Timeout(READ_TIMEOUT_S, connect=CONNECT_TIMEOUT_S)
    with httpx.Client(follow_redirects=True, max_redirects=MAX_REDIRECTS, timeout=timeout) as client:
        for attempt in range(1, ATTEMPTS + 1):
            try:
                headers = _transfer(client, source, url, partial, etag, entry)
                break
            except _Retry as exc:
                last = str(exc)
            except httpx.TooManyRedirects:
                raise UserError(f"{source}: more than {MAX_REDIRECTS} redirects (cache: {entry}); {GIVE_LOCAL}") from None
            except httpx.TransportError as exc:  # refused, unreachable, DNS, timeouts, a dropped connection
                last = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if attempt < ATTEMPTS:
                time.sleep(delay)
                delay *= 2
        else:
            host = urlsplit(source).netloc
            raise UserError(f"cannot download {source}: {last} ({ATTEMPTS} attempts); check the network to {host} "
                            f"(or set {MIRROR_VARIABLE}), {GIVE_LOCAL} (cache: {entry})")
    if headers is None:  # 304: the cached file is current
        return target
    return _keep(url, entry, target, partial, manifest, headers, check, what)


def _partial_meta(partial: Path) -> dict:
    try:
        data = json.loads(Path(f"{partial}.json").read_text(encoding="utf-8"))
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _write_json(path: Path, data: dict) -> None:
    with atomic_path(path) as tmp:
        Path(tmp).write_text(json.dumps(data, indent=1) + "\n", encoding="utf-8")


def _transfer(client, source: str, url: str, partial: Path, etag: str | None, entry: Path) -> dict | None:
    """One attempt: append to ``partial`` from where it stops (or restart it); returns the response's
    validators (None for 304 Not Modified). Connection failures raise, keeping what arrived."""
    have = partial.stat().st_size if partial.is_file() else 0
    meta = _partial_meta(partial) if have else {}
    headers = {"Accept-Encoding": "identity"}
    if etag:
        headers["If-None-Match"] = etag
    if have and meta:
        headers["Range"] = f"bytes={have}-"
        validator = meta.get("etag") if meta.get("etag") and not str(meta["etag"]).startswith("W/") else meta.get(
            "last_modified")
        if validator:
            headers["If-Range"] = validator
    with client.stream("GET", source, headers=headers) as response:
        status = response.status_code
        if status == 304:
            return None
        if status == 416:  # the partial is not a prefix of this file: start again
            partial.unlink(missing_ok=True)
            raise _Retry("HTTP 416 on resume (restarting)")
        if status >= 500 or status == 429:
            raise _Retry(f"HTTP {status} {response.reason_phrase}")
        if status >= 400:
            raise UserError(f"cannot download {source}: HTTP {status} {response.reason_phrase}; check the model name "
                            f"or URL, {GIVE_LOCAL} (cache: {entry})")
        start, total = _range_start(response, have)
        info = {"url": url, "etag": response.headers.get("etag"), "last_modified": response.headers.get("last-modified"),
                "size": total}
        _write_json(Path(f"{partial}.json"), info)
        if total is not None:
            _check_space(source, entry, total - start)
        _receive(response, partial, start, total, source, entry)
        return info


def _range_start(response, have: int) -> tuple[int, int | None]:
    """Where the body starts in the file (``have`` for a 206 continuing the partial, else 0) and the file's size."""
    if response.status_code == 206:
        match = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", response.headers.get("content-range", "").strip())
        if match is None or int(match.group(1)) != have:
            raise _Retry(f"a range answer starting elsewhere ({response.headers.get('content-range')!r})")
        return have, None if match.group(3) == "*" else int(match.group(3))
    length = response.headers.get("content-length")
    return 0, int(length) if length and length.isdigit() and "content-encoding" not in response.headers else None


def _check_space(source: str, entry: Path, needed: int) -> None:
    free = shutil.disk_usage(entry).free
    if needed + SPACE_MARGIN > free:
        raise UserError(f"not enough disk space for {source}: it needs {needed:,} bytes, {free:,} are free in {entry}; "
                        "free some space or set ELMO_TASKS_CACHE to a larger disk")


def _receive(response, partial: Path, start: int, total: int | None, source: str, entry: Path) -> None:
    from tqdm import tqdm

    done = start
    bar = tqdm(total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024, file=sys.stderr,
               desc=partial.name[: -len(PARTIAL_SUFFIX)], disable=not sys.stderr.isatty(), leave=False)
    try:
        with open(partial, "r+b" if start else "wb") as handle:
            handle.seek(start)
            handle.truncate()
            for block in response.iter_raw():  # as it arrives: a dropped connection loses nothing received
                handle.write(block)
                done += len(block)
                bar.update(len(block))
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise UserError(f"the disk is full writing {partial} (downloading {source}, {done:,} bytes so far): free some "
                            "space (the download resumes from there) or set ELMO_TASKS_CACHE to a larger disk") from None
        raise UserError(f"cannot write {partial} (downloading {source}): {exc.strerror or exc}") from None
    finally:
        bar.close()
    if total is not None and done != total:
        raise _Retry(f"the connection ended after {done:,} of {total:,} bytes")


def _keep(url: str, entry: Path, target: Path, partial: Path, manifest: dict | None, headers: dict,
          check: Check | None, what: str) -> Path:
    """Check the complete download and rename it into place, with its manifest; refuse changed or bad bytes."""
    digest = sha256_file(partial)
    first = (manifest or {}).get("sha256")
    if first and first != digest:
        partial.unlink(missing_ok=True)
        Path(f"{partial}.json").unlink(missing_ok=True)
        kept = f"the cached copy {target} is kept" if target.is_file() else f"delete {entry} to accept the new file"
        raise UserError(f"{url} changed on the server since its first download on {manifest.get('date')} (sha256 "
                        f"{first[:16]}..., now {digest[:16]}...): refused; {kept}")
    if check is not None:
        try:
            check(partial)
        except UserError as exc:
            partial.unlink(missing_ok=True)
            Path(f"{partial}.json").unlink(missing_ok=True)
            raise UserError(f"{url}: the download is not a usable {what}, and was not kept: {exc}") from None
    os.replace(partial, target)
    record = {"url": url, "size": target.stat().st_size, "sha256": digest, "etag": headers.get("etag"),
              "last_modified": headers.get("last_modified"),
              "date": (manifest or {}).get("date") or time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    if manifest and manifest.get("date"):
        record["checked"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    _write_json(entry / MANIFEST_NAME, record)
    Path(f"{partial}.json").unlink(missing_ok=True)
    return target
