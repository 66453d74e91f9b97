"""Classification sets from CSV or TSV files."""

from __future__ import annotations

import csv
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from elmo_tasks.data.readers.common import empty_error, get_tokenizer, lines, make_dataset, where
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset


@dataclass
class TableOptions:
    """``dataset.options`` of ``format: csv | tsv | table`` (the keyword arguments of :func:`read_table`)."""

    text_column: int | str  # the text's column: a 0-based index, or a header name
    label_column: int | str  # the label's column, the same way
    delimiter: str | None = None  # default: "," for csv, a tab for tsv; table: a tab for .tsv/.tab files
    has_header: bool | None = None  # default: a header row exists exactly when a column is given by name
    label_map: dict[str, str] | None = None  # renames labels ({"1": positive}); a label not in it is an error
    encoding: str = "utf-8"


def read_table(path: str | os.PathLike, text_column: int | str, label_column: int | str,
               delimiter: str | None = None, has_header: bool | None = None, *,
               tokenize: str | Callable[[str], list[str]] = "whitespace",
               label_map: dict[str, str] | None = None, encoding: str = "utf-8") -> "Dataset":
    """A classification set from a CSV or TSV file (quoted fields may span lines).

    ``delimiter``: ``None`` picks a tab for ``.tsv``/``.tab`` files and a comma otherwise.
    ``text_column`` / ``label_column``: 0-based indices, or header names. ``has_header``: ``None``
    means "a header row exists exactly when the columns are given by name". ``tokenize``:
    ``"whitespace"`` for pre-tokenised text, ``"ptb"`` for raw text (the project tokeniser), or a
    callable. ``label_map`` renames labels (``{"1": "positive", "-1": "negative"}``); a label not
    in it is an error. A row that is too short, an empty label or an empty text is an error naming
    the line where the row starts. Returns columns ``tokens`` and ``label``.
    """
    path = Path(path)
    if delimiter is None:
        delimiter = "\t" if path.suffix.lower() in (".tsv", ".tab") else ","
    by_name = isinstance(text_column, str) or isinstance(label_column, str)
    if has_header is None:
        has_header = by_name
    if by_name and not has_header:
        raise UserError(f"{path}: columns given by name need has_header=True")
    tokenizer = get_tokenizer(tokenize)

    numbered = lines(path, encoding)
    line_of_row_start = 0

    def text_lines() -> Iterator[str]:
        nonlocal line_of_row_start
        for number, line in numbered:
            line_of_row_start = line_of_row_start or number
            yield line

    reader = csv.reader(text_lines(), delimiter=delimiter)
    columns: dict[str, int] = {}
    text_index: int
    label_index: int
    all_tokens: list[list[str]] = []
    labels: list[str] = []
    header_seen = not has_header
    while True:
        line_of_row_start = 0
        try:
            row = next(reader)
        except StopIteration:
            break
        except csv.Error as exc:
            raise UserError(f"{where(path, line_of_row_start or reader.line_num)}: malformed CSV ({exc})") from None
        start = line_of_row_start
        if not row or all(not cell.strip() for cell in row):
            continue
        if not header_seen:
            header_seen = True
            columns = {name.strip(): i for i, name in enumerate(row)}
            for name in (text_column, label_column):
                if isinstance(name, str) and name not in columns:
                    raise UserError(f"{where(path, start)}: the header has no column {name!r} "
                                    f"(it has {', '.join(repr(c) for c in columns)})")
            continue
        text_index = columns[text_column] if isinstance(text_column, str) else text_column
        label_index = columns[label_column] if isinstance(label_column, str) else label_column
        if not all(-len(row) <= index < len(row) for index in (text_index, label_index)):
            needed = max(max(text_index, label_index) + 1, -min(text_index, label_index))
            raise UserError(f"{where(path, start)}: expected at least {needed} columns, found {len(row)}"
                            + (" (the label is missing)" if len(row) == 1 else ""))
        label = row[label_index].strip()
        text = row[text_index].strip()
        if not label:
            raise UserError(f"{where(path, start)}: the label is missing (empty column {label_column})")
        if label_map is not None:
            if label not in label_map:
                raise UserError(f"{where(path, start)}: unknown label {label!r} "
                                f"(expected one of {', '.join(repr(k) for k in label_map)})")
            label = label_map[label]
        tokens = tokenizer(text)
        if not tokens:
            raise UserError(f"{where(path, start)}: the text is empty")
        all_tokens.append(tokens)
        labels.append(label)
    if not labels:
        raise empty_error(path, "rows")
    return make_dataset({"tokens": all_tokens, "label": labels})

