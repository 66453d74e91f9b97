"""A model named by the registry or by URL -> a public-format model folder in the cache.

``$ELMO_TASKS_CACHE/models/<name>/`` holds links to the checked files: the downloaded
``options.json`` + ``weights.hdf5`` of an AllenNLP pair, or the conversion of a downloaded TF-Hub
module or NLPL zip (``converted/<content digest>``, by ``elmo_tasks.formats``). The folder is
renamed into place once complete, with ``SOURCE.json`` (what it came from, the linked files'
sizes), so a cached model starts with a few ``stat`` calls: no network, no hashing.

URLs taken besides the registry's: a pair's ``..._options.json`` (its ``..._weights.hdf5`` beside
it), a folder URL ending ``/`` (``options.json`` + ``weights.hdf5`` in it), a ``.tar.gz`` (TF-Hub
module), a ``.zip`` (NLPL), and a tfhub.dev handle.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
from pathlib import Path

from elmo_tasks import download
from elmo_tasks.atomic import make_temp_dir
from elmo_tasks.data.sources import cache_dir
from elmo_tasks.errors import UserError
from elmo_tasks.models.registry import TFHUB_COMPRESSED, canonical_url, find, is_url

MODELS_CACHE = "models"
SOURCE_NAME = "SOURCE.json"
OPTIONS_NAME, WEIGHTS_NAME = "options.json", "weights.hdf5"
ARCHIVE_SUFFIXES = {".tar.gz": "tfhub", ".tgz": "tfhub", ".tar": "tfhub", ".zip": "nlpl"}


def is_remote(source: str | Path) -> bool:
    """Whether ``source`` is a registry name (or alias, handle, ``nlpl-ID``) or a URL, not a local path."""
    return isinstance(source, str) and (is_url(source) or find(source) is not None)


def model_files(source: str) -> tuple[str, str, tuple[str, ...]]:
    """(cache key, kind, URLs) of a name or URL: kind ``hdf5`` (options and weights URLs) or an archive's."""
    entry = find(source)
    if entry is not None:
        return entry.name, entry.kind, entry.urls
    raw = source.strip()
    if not is_url(raw):
        raise UserError(f"{source!r} is not a model name (elmo-tasks models lists them), a URL or an existing path")
    url = canonical_url(raw)
    path = url.split("?", 1)[0]
    if raw.endswith("/") and "?" not in raw:
        urls, kind = (f"{url}/{OPTIONS_NAME}", f"{url}/{WEIGHTS_NAME}"), "hdf5"
    elif path.endswith("_options.json"):
        urls, kind = (url, url[: -len("_options.json")] + "_weights.hdf5"), "hdf5"
    elif path.endswith("/options.json"):
        urls, kind = (url, url[: -len(OPTIONS_NAME)] + WEIGHTS_NAME), "hdf5"
    elif path.startswith("https://tfhub.dev/") and "?" not in url:
        urls, kind = (url + TFHUB_COMPRESSED,), "tfhub"
    elif "tf-hub-format=compressed" in url:
        urls, kind = (url,), "tfhub"
    elif path.endswith(tuple(ARCHIVE_SUFFIXES)):
        urls, kind = (url,), next(k for s, k in ARCHIVE_SUFFIXES.items() if path.endswith(s))
    elif path.endswith(".hdf5"):
        raise UserError(f"{source}: a weights file alone is not a model: give the URL of its options.json (the "
                        "weights beside it), or of the folder holding both (ending in /)")
    else:
        raise UserError(f"{source}: not a model URL this toolkit reads: expected an ..._options.json (its "
                        "..._weights.hdf5 beside it), a folder URL ending in /, a TF-Hub module (.tar.gz or a "
                        "tfhub.dev handle) or an NLPL .zip; or a name from `elmo-tasks models`")
    return "url-" + hashlib.sha256("\n".join(urls).encode()).hexdigest()[:16], kind, urls


def model_dir(source: str) -> Path:
    """Where the model folder of a name or URL lives in the cache (complete or not)."""
    return cache_dir() / MODELS_CACHE / model_files(source)[0]


def cached_model(source: str) -> Path | None:
    """The complete cached folder of a name or URL, or None; checks the linked files' sizes only."""
    folder = model_dir(source)
    try:
        sizes = json.loads((folder / SOURCE_NAME).read_text(encoding="utf-8"))["sizes"]
        if all((folder / name).stat().st_size == size for name, size in sizes.items()):
            return folder
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        pass
    return None


def _check_options(path: Path) -> None:
    from elmo_tasks.bilm.options import BiLMOptions
    from elmo_tasks.bilm.weights import check_option_sizes

    check_option_sizes(BiLMOptions.load(path), path)


def fetch_pair(options: str | Path, weights: str | Path, revalidate: bool = False) -> tuple[Path, Path]:
    """Local paths of an options file and its weights, each a path already or a URL downloaded and
    checked as a local model is (``verify_model_files``: shapes, types, NaN/Inf) before it is kept."""
    # torch and h5py load only when a download has to be checked
    from elmo_tasks.bilm.weights import verify_model_files

    options_path = download.fetch(str(options), _check_options, revalidate, what="options.json") \
        if is_url(str(options)) else Path(options)
    if not is_url(str(weights)):
        return options_path, Path(weights)
    return options_path, download.fetch(str(weights), lambda p: verify_model_files(options_path, p), revalidate,
                                        what=f"weights file for {options}")


def _fetch_archive(url: str, revalidate: bool = False) -> Path:
    """The converted folder of a downloaded TF-Hub module or NLPL zip; a download the converter refuses is
    removed from the cache."""
    from elmo_tasks.formats.convert import resolve_model_dir

    archive = download.fetch(url, revalidate=revalidate, what="model archive")
    try:
        return resolve_model_dir(archive)
    except UserError as exc:
        download.discard(url)
        raise UserError(f"{url}: the download is not a usable model, and was not kept: {exc}") from None


def resolve_remote(source: str, revalidate: bool = False) -> Path:
    """The model folder of a registry name or URL: from the cache, or downloaded, checked and linked now;
    ``revalidate`` asks the server whether cached files changed (``elmo-tasks models download``)."""
    cached = cached_model(source)
    if cached is not None and not revalidate:
        return cached
    key, kind, urls = model_files(source)
    if kind == "hdf5":
        options, weights = fetch_pair(*urls, revalidate=revalidate)
        files = {OPTIONS_NAME: options, WEIGHTS_NAME: weights}
    else:
        converted = _fetch_archive(urls[0], revalidate)
        files = {p.name: p for p in sorted(converted.iterdir()) if p.is_file() and p.name != "SOURCE"}
    if cached is not None:  # revalidated: the same bytes (changed ones are refused), the same links
        return cached
    return _link_folder(cache_dir() / MODELS_CACHE / key, source, urls, files)


def _link_folder(folder: Path, source: str, urls: tuple[str, ...], files: dict[str, Path]) -> Path:
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(folder)
    try:
        for name, path in files.items():
            os.symlink(path.resolve(), staging / name)
        record = {"source": source, "urls": list(urls), "files": {n: str(p.resolve()) for n, p in files.items()},
                  "sizes": {n: p.stat().st_size for n, p in files.items()}}
        (staging / SOURCE_NAME).write_text(json.dumps(record, indent=1) + "\n", encoding="utf-8")
        if folder.exists():  # an earlier, incomplete link folder (a download since removed)
            shutil.rmtree(folder, ignore_errors=True)
        try:
            os.replace(staging, folder)
        except OSError:  # another process linked it first
            if cached_model(source) is None:
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


def size_on_disk(source: str) -> int:
    """Bytes the cached files of a name or URL take (its downloads and linked conversion), 0 when none."""
    _, _, urls = model_files(source)
    total = sum(p.stat().st_size for url in urls if (p := download.cached_path(url)) is not None)
    folder = cached_model(source)
    if folder is not None:
        downloaded = {str(p.resolve()) for url in urls if (p := download.cached_path(url)) is not None}
        total += sum((folder / n).stat().st_size for n in json.loads((folder / SOURCE_NAME).read_text())["sizes"]
                     if str((folder / n).resolve()) not in downloaded)
    return total
