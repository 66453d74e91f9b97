"""NLPL word-embeddings repository ELMo archives (``vectors.nlpl.eu``, e.g. ``209.zip``).

The zip holds ``model.hdf5`` (the public weights layout), ``options.json`` (often with
``n_characters`` 261), ``vocab.txt`` and ``meta.json`` (corpus and training details), possibly
inside one folder; the same files unpacked into a folder are read too. Conversion reads the
options first, checks their sizes, and unpacks ``model.hdf5`` only if it is no larger than the
weights those options imply (``archive_limits.weights_limit``); the weights are then checked
against the options (shapes, types, NaN/Inf) and the rest is copied. Other members are never
unpacked.
"""

from __future__ import annotations

import json
import shutil
import zipfile
from pathlib import Path, PurePosixPath

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import OPTIONS_NAME, WEIGHTS_NAME, check_option_sizes, count_parameters, verify_model_files
from elmo_tasks.errors import UserError
from elmo_tasks.formats import archive_limits
from elmo_tasks.formats.archive_limits import (
    MAX_SMALL_MEMBER,
    ZIP_ERRORS,
    check_zip_member,
    copy_member,
    weights_limit,
)
from elmo_tasks.paths import input_file_problem

MEMBERS = {"model.hdf5": WEIGHTS_NAME, "options.json": OPTIONS_NAME, "vocab.txt": "vocab.txt", "meta.json": "meta.json"}
REQUIRED = ("model.hdf5", "options.json")
MAX_VOCAB_BYTES = 1 << 30  # a vocabulary file; the NLPL ones are a few MB


def is_archive(path: Path) -> bool:
    """A zip file holding a ``model.hdf5`` (a damaged zip named ``.zip`` counts: converting it says why)."""
    if not path.is_file():
        return False
    try:
        if not zipfile.is_zipfile(path):
            return False
        with zipfile.ZipFile(path) as archive:
            return any(PurePosixPath(n).name == "model.hdf5" for n in archive.namelist())
    except ZIP_ERRORS:
        return path.suffix.lower() == ".zip"


def is_folder(path: Path) -> bool:
    """An unpacked NLPL archive: a folder with ``model.hdf5`` and ``options.json``."""
    return path.is_dir() and all((path / name).exists() for name in REQUIRED)


def _members(archive: zipfile.ZipFile, source: Path) -> dict[str, zipfile.ZipInfo]:
    """The archive's NLPL members by file name; two of the same name in different folders are refused."""
    infos = archive.infolist()
    if len(infos) > archive_limits.MAX_MEMBERS:
        raise UserError(f"{source}: more than {archive_limits.MAX_MEMBERS:,} members: not an NLPL ELMo archive")
    found: dict[str, zipfile.ZipInfo] = {}
    for info in infos:
        name = PurePosixPath(info.filename).name
        if name in MEMBERS and not info.is_dir():
            if name in found and found[name].filename != info.filename:
                raise UserError(f"{source}: holds '{found[name].filename}' and '{info.filename}': which model is meant? "
                                "Unpack it and give one folder")
            found[name] = info
    missing = [name for name in REQUIRED if name not in found]
    if missing:
        raise UserError(f"{source}: no {' or '.join(missing)} inside: not an NLPL ELMo archive")
    return found


def _read_options(archive: zipfile.ZipFile, source: Path, info: zipfile.ZipInfo) -> dict:
    check_zip_member(source, info, MAX_SMALL_MEMBER, "an options file needs")
    where = f"{source}: member {info.filename}"
    try:
        with archive.open(info) as handle:
            raw = handle.read(MAX_SMALL_MEMBER + 1)
    except ZIP_ERRORS as exc:
        raise UserError(f"{source}: cannot read member '{info.filename}' ({exc})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:  # before ValueError: it is one
        raise UserError(f"{where}: not valid JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{where}: not valid JSON ({exc if isinstance(exc, ValueError) else 'nested too deeply'})") from None
    if not isinstance(data, dict):
        raise UserError(f"{where}: expected a JSON object at the top level")
    return data


def convert_archive(source: Path, out_dir: Path, options: dict | None = None,
                    options_source: str | Path = "--options") -> None:
    """Copy the archive's (or unpacked folder's) model into ``out_dir`` as ``options.json`` + ``weights.hdf5``
    (+ vocab, meta)."""
    if source.is_dir():
        _convert_folder(source, out_dir, options, options_source)
        return
    try:
        archive = zipfile.ZipFile(source)
    except ZIP_ERRORS as exc:
        raise UserError(f"{source}: not a readable zip archive ({exc})") from None
    with archive:
        found = _members(archive, source)
        if options is None:
            options, options_source = _read_options(archive, source, found["options.json"]), \
                f"{source}: member {found['options.json'].filename}"
        parsed = BiLMOptions.from_dict(options, str(options_source))
        check_option_sizes(parsed, options_source)
        limits = {"model.hdf5": (weights_limit(count_parameters(parsed)), f"weights of {options_source}'s sizes need"),
                  "vocab.txt": (MAX_VOCAB_BYTES, "a vocabulary needs"), "meta.json": (MAX_SMALL_MEMBER, "meta.json needs")}
        for name, (limit, why) in limits.items():
            if name in found:
                check_zip_member(source, found[name], limit, why)
        for name, (limit, _) in limits.items():
            if name not in found:
                continue
            with atomic_path(out_dir / MEMBERS[name]) as tmp:
                try:
                    with archive.open(found[name]) as src, open(tmp, "wb") as dst:
                        copy_member(source, found[name].filename, src, dst, limit)
                except ZIP_ERRORS as exc:
                    raise UserError(f"{source}: cannot read member '{found[name].filename}' ({exc})") from None
    parsed.save(out_dir / OPTIONS_NAME)  # in the inference form (n_characters 262)
    try:
        verify_model_files(out_dir / OPTIONS_NAME, out_dir / WEIGHTS_NAME)
    except UserError as exc:  # name the member, not the staging folder
        message = str(exc).replace(str(out_dir / WEIGHTS_NAME), f"{source}: member {found['model.hdf5'].filename}")
        raise UserError(message.replace(str(out_dir / OPTIONS_NAME), str(options_source))) from None


def _convert_folder(source: Path, out_dir: Path, options: dict | None, options_source: str | Path) -> None:
    for name in MEMBERS:
        problem = input_file_problem(source / name, name) if (source / name).exists() else None
        if problem:
            raise UserError(problem)
    if options is None:
        parsed, options_source = BiLMOptions.load(source / OPTIONS_NAME), source / OPTIONS_NAME
    else:
        parsed = BiLMOptions.from_dict(options, str(options_source))
    with atomic_path(out_dir / OPTIONS_NAME) as tmp:
        parsed.save(tmp)
    try:
        verify_model_files(out_dir / OPTIONS_NAME, source / "model.hdf5")
    except UserError as exc:
        raise UserError(str(exc).replace(str(out_dir / OPTIONS_NAME), str(options_source))) from None
    for name in ("model.hdf5", "vocab.txt", "meta.json"):
        if (source / name).exists():
            with atomic_path(out_dir / MEMBERS[name]) as tmp:
                shutil.copyfile(source / name, tmp)
