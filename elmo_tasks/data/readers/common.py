"""What every reader shares: numbered lines with located errors, the tokenisers, the Dataset constructor."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elmo_tasks.errors import UserError

if TYPE_CHECKING:  # datasets is imported inside the functions: it takes about a second
    from datasets import Dataset


def lines(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
    """(1-based line number, decoded line with its line ending) for each line of ``path``.

    A leading byte-order mark is dropped. Bytes that are not valid ``encoding`` raise a
    ``UserError`` naming the line.
    """
    path = Path(path)
    try:
        handle = open(path, "rb")
    except FileNotFoundError:
        raise UserError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a directory, expected a file") from None
    except PermissionError:
        raise UserError(f"{path}: permission denied") from None
    with handle:
        for number, raw in enumerate(handle, start=1):
            try:
                line = raw.decode(encoding)
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}, line {number}: not valid {encoding} text "
                                f"({exc.reason} at byte {exc.start} of the line)") from None
            if number == 1 and line.startswith("\ufeff"):
                line = line[1:]
            yield number, line


def where(path: str | os.PathLike, line: int) -> str:
    return f"{Path(path)}, line {line}"


def empty_error(path: str | os.PathLike, what: str) -> UserError:
    return UserError(f"{Path(path)}: no {what} found (the file is empty or holds only blank lines)")


_FALLBACK_TOKEN = re.compile(
    r"""(?:[A-Za-z]\.){2,}(?![A-Za-z])      # abbreviations: U.S. e.g.
      | \d+(?:[.,:/]\d+)+                   # numbers: 3.14 1,000 10:30 1/2
      | n't(?![A-Za-z])                     # the n't of don't
      | '(?:s|S|m|M|d|D|ll|LL|re|RE|ve|VE)(?![A-Za-z])   # clitics
      | [A-Za-z0-9]+(?:[-'][A-Za-z0-9]+)*?(?=n't(?![A-Za-z]))   # do|n't
      | [^\W_]+(?:-[^\W_]+|'(?!(?:[sSmMdD]|ll|LL|re|RE|ve|VE)(?![A-Za-z]))[^\W_]+)*  # words, o'clock
      | \.\.\.|--|``|''|[^\w\s]             # ellipsis, dashes, quotes, any other symbol
    """, re.VERBOSE)


def fallback_tokenize(text: str) -> list[str]:
    """A small regex tokeniser in the PTB style (clitics and punctuation split off).

    Used only when ``elmo_tasks.data.tokenize`` is not available.
    """
    return _FALLBACK_TOKEN.findall(text)


def get_tokenizer(name: str | Callable[[str], list[str]] = "ptb") -> Callable[[str], list[str]]:
    """The tokeniser called ``name``: ``"whitespace"`` (``str.split``) or ``"ptb"`` (the project's
    PTB-like tokeniser in ``elmo_tasks.data.tokenize``, or :func:`fallback_tokenize` if that module
    is missing). A callable is returned unchanged."""
    if callable(name):
        return name
    if name == "whitespace":
        return str.split
    if name == "ptb":
        try:
            from elmo_tasks.data.tokenize import tokenize  # type: ignore[attr-defined]
        except ImportError:
            return fallback_tokenize
        return tokenize
    raise UserError(f"unknown tokeniser {name!r}: use 'whitespace' or 'ptb'")


def ptb_tokenizer_name() -> str:
    """Which tokeniser ``get_tokenizer("ptb")`` gives (recorded in the prepared sets' manifests)."""
    tokenizer = get_tokenizer("ptb")
    return f"{tokenizer.__module__}.{tokenizer.__qualname__}"


def make_dataset(columns: dict[str, list[Any]]) -> "Dataset":
    from datasets import Dataset

    return Dataset.from_dict(columns)

