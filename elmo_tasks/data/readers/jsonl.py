"""Any task set from JSON lines (the format ``data prepare`` writes)."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elmo_tasks.data.readers.common import empty_error, lines, where
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset


def read_jsonl(path: str | os.PathLike, *, encoding: str = "utf-8") -> "Dataset":
    """A dataset from a JSON-lines file: one JSON object per line, all with the same keys.

    Blank lines are skipped. Bad JSON, a line that is not an object and an object whose keys
    differ from the first line's are errors naming the line. This is the format that
    ``elmo-tasks data prepare`` writes (``train.jsonl``, ``dev.jsonl``, ``test.jsonl``).
    """
    from datasets import Dataset

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
        if not isinstance(row, dict):
            raise UserError(f"{where(path, number)}: expected a JSON object, found {type(row).__name__}")
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

