"""NLPL word-embeddings repository ELMo archives (``vectors.nlpl.eu``, e.g. ``209.zip``).

The zip holds ``model.hdf5`` (the public weights layout), ``options.json`` (often with
``n_characters`` 261), ``vocab.txt`` and ``meta.json`` (corpus and training details), possibly
inside one folder. Conversion checks the weights against the options and copies the rest.
"""

from __future__ import annotations

import zipfile
from pathlib import Path, PurePosixPath

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import OPTIONS_NAME, WEIGHTS_NAME, load_bilm_dir
from elmo_tasks.errors import UserError
from elmo_tasks.formats.archive_limits import Budget

MEMBERS = {"model.hdf5": WEIGHTS_NAME, "options.json": OPTIONS_NAME, "vocab.txt": "vocab.txt", "meta.json": "meta.json"}
REQUIRED = ("model.hdf5", "options.json")


def is_archive(path: Path) -> bool:
    if not (path.is_file() and zipfile.is_zipfile(path)):
        return False
    with zipfile.ZipFile(path) as archive:
        return any(PurePosixPath(n).name == "model.hdf5" for n in archive.namelist())


def convert_archive(source: Path, out_dir: Path, options: dict | None = None) -> None:
    """Copy the archive's model into ``out_dir`` as ``options.json`` + ``weights.hdf5`` (+ vocab, meta)."""
    try:
        archive = zipfile.ZipFile(source)
    except (zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{source}: not a readable zip archive ({exc})") from None
    with archive:
        budget = Budget(source)
        for info in archive.infolist():
            budget.member(info.filename, info.file_size)
        budget = Budget(source)  # the declared sizes passed; now count what the copies produce
        found = {PurePosixPath(n).name: n for n in archive.namelist() if PurePosixPath(n).name in MEMBERS}
        missing = [name for name in REQUIRED if name not in found]
        if missing:
            raise UserError(f"{source}: no {' or '.join(missing)} inside: not an NLPL ELMo archive")
        for name, member in found.items():
            if name == "options.json" and options is not None:
                continue
            with atomic_path(out_dir / MEMBERS[name]) as tmp:
                try:
                    with archive.open(member) as src, open(tmp, "wb") as dst:
                        budget.copy(member, src, dst)
                except (zipfile.BadZipFile, EOFError, OSError) as exc:
                    raise UserError(f"{source}: cannot read '{member}' ({exc})") from None
    where = f"{source}: options.json" if options is None else "--options"
    parsed = BiLMOptions.from_dict(options, where) if options is not None else BiLMOptions.load(out_dir / OPTIONS_NAME)
    with atomic_path(out_dir / OPTIONS_NAME) as tmp:  # rewritten in the inference form (n_characters 262)
        parsed.save(tmp)
    try:
        load_bilm_dir(out_dir)
    except UserError as exc:
        raise UserError(f"{source}: model.hdf5 does not fit options.json: {exc}") from None
