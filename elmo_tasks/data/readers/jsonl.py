"""Any task set from JSON lines (the format ``data prepare`` writes)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elmo_tasks.data.readers.common import empty_error, get_tokenizer, lines, where
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class JsonlOptions:
    """``dataset.options`` of ``format: jsonl`` (the keyword arguments of :func:`read_jsonl`)."""

    encoding: str = "utf-8"


def read_jsonl(path: str | os.PathLike, *, encoding: str = "utf-8",
               tokenize: str | Callable[[str], list[str]] = "ptb") -> "Dataset":
    """A dataset from a JSON-lines file: one JSON object per line, all with the same keys.

    Blank lines are skipped. Bad JSON, a line that is not an object and an object whose keys
    differ from the first line's are errors naming the line. This is the format that
    ``elmo-tasks data prepare`` writes (``train.jsonl``, ``dev.jsonl``, ``test.jsonl``).

    ``tokens`` must be a list of strings (a string is an error naming the line: it would be read as
    a list of characters); ``tags`` a list of strings as long as ``tokens``. A line with raw
    ``text`` (a string) and no ``tokens`` is split by ``tokenize`` (``ptb`` by default, or
    ``whitespace``) into ``tokens``.
    """
    from datasets import Dataset

    tokenizer = get_tokenizer(tokenize)

    rows: list[dict[str, Any]] = []
    keys: list[str] | None = None
    first_line = 0
    for number, line in lines(path, encoding):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{where(path, number)}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise UserError(f"{where(path, number)}: not valid JSON for a data set (nested too deeply)") from None
        if not isinstance(row, dict):
            raise UserError(f"{where(path, number)}: expected a JSON object, found {type(row).__name__}")
        row = _checked_row(row, path, number, tokenizer)
        if keys is None:
            keys, first_line = sorted(row), number
        elif sorted(row) != keys:
            missing = sorted(set(keys) - set(row))
            extra = sorted(set(row) - set(keys))
            detail = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                                 f"extra {', '.join(extra)}" if extra else "") if part)
            raise UserError(f"{where(path, number)}: keys differ from line {first_line} ({detail})")
        rows.append(row)
    if not rows:
        raise empty_error(path, "JSON objects")
    try:
        return Dataset.from_list(rows)
    except Exception as exc:  # pyarrow type clashes between lines (a list here, a string there)
        raise UserError(f"{Path(path)}: values of one key have different types across lines ({exc})") from None



def _checked_row(row: dict[str, Any], path: str | os.PathLike, number: int,
                 tokenizer: Callable[[str], list[str]]) -> dict[str, Any]:
    """The row with ``text`` split into ``tokens`` where it has no tokens; the token and tag lists checked."""
    if "tokens" not in row and isinstance(row.get("text"), str):
        row = {("tokens" if k == "text" else k): v for k, v in row.items()}
        row["tokens"] = tokenizer(row["tokens"])
        if not row["tokens"]:
            raise UserError(f"{where(path, number)}: \"text\" is empty")
    for key in ("tokens", "tags"):
        if key not in row:
            continue
        value = row[key]
        if isinstance(value, str):
            hint = " (or give the raw text as \"text\": it is split into tokens)" if key == "tokens" else ""
            raise UserError(f"{where(path, number)}: \"{key}\" must be a list of strings, got a string{hint}")
        if not isinstance(value, list) or not all(isinstance(t, str) for t in value):
            raise UserError(f"{where(path, number)}: \"{key}\" must be a list of strings")
    if "tags" in row and "tokens" in row and len(row["tags"]) != len(row["tokens"]):
        raise UserError(f"{where(path, number)}: {len(row['tokens'])} tokens but {len(row['tags'])} tags")
    return row
