"""Checks of the files and folders a user names, made before any work, with one-line errors.

* ``check_input_file``: exists, is a file (a folder is named as a folder), is readable;
* ``check_output_file``: not a folder, in an existing folder we can write, and not one of the
  inputs (the same file, also through symbolic or hard links: writing it would destroy the input);
* ``check_output_dir``: a folder (or a path where one can be created) we can write.

Commands call these on their arguments first, so that a bad output is refused before a long
computation rather than after it.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from elmo_tasks.errors import UserError


def input_file_problem(path: str | Path, what: str = "file") -> str | None:
    """Why ``path`` cannot be read as an input file ("file not found: P", "file is a folder, not a
    file: P", with ``what`` for "file"), or None."""
    path = Path(path)
    if path.is_dir():
        return f"{what} is a folder, not a file: {path}"
    if not path.exists():
        return f"{what} not found: {path}"
    if not path.is_file():
        return f"{what} is not a regular file: {path}"
    if not os.access(path, os.R_OK):
        return f"{what} cannot be read (permission denied): {path}"
    return None


def check_input_file(path: str | Path, what: str = "input file") -> Path:
    """``path`` as a readable file, or a UserError such as "input file is a folder, not a file: P"."""
    problem = input_file_problem(path, what)
    if problem is not None:
        raise UserError(problem)
    return Path(path)


def _can_create_in(folder: Path) -> str | None:
    """Why no file can be created in the existing folder ``folder``, or None (tried for real)."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_output_file(path: str | Path, what: str = "output file", inputs: Iterable[str | Path] = ()) -> Path:
    """``path`` as a file that can be written (atomically, beside it) and is none of ``inputs``."""
    path = Path(path)
    for source in inputs:
        if _same_file(path, Path(source)) or path.resolve() == Path(source).resolve():
            raise UserError(f"{what} {path} is the input file {source}: writing it would destroy the input; "
                            "give another output name")
    if path.is_dir():
        raise UserError(f"{what} is a folder: {path} (give a file name)")
    parent = path.parent
    if not parent.exists():
        raise UserError(f"{what}: folder does not exist: {parent}")
    if not parent.is_dir():
        raise UserError(f"{what}: {parent} is not a folder")
    problem = _can_create_in(parent)
    if problem is not None:
        raise UserError(f"{what}: cannot write in {parent} ({problem}): {path}")
    return path


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """``path`` as a folder that exists or can be created, and can be written (nothing is created)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} exists and is not a folder (give a folder)")
    existing = path
    while not existing.exists():
        if existing.parent == existing:
            break
        existing = existing.parent
    if existing.exists() and not existing.is_dir():
        raise UserError(f"{what} {path}: {existing} is a file, so no folder can be made there")
    problem = _can_create_in(existing)
    if problem is not None:
        raise UserError(f"{what} {path}: cannot write in {existing} ({problem})")
    return path


def read_json_file(path: str | Path, what: str = "file") -> Any:
    """The JSON value in ``path``; a missing file, bad JSON or JSON nested too deeply is one UserError."""
    import json

    check_input_file(path, what)
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except UnicodeDecodeError as exc:
        raise UserError(f"{path}: not valid JSON (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    except ValueError as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    except RecursionError:
        raise UserError(f"{path}: not valid JSON for this toolkit (nested too deeply)") from None
