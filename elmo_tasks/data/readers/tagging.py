"""Tagging sets from CoNLL-style columns and from ``word/TAG`` text (several sentences per line)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from elmo_tasks.data.readers.common import empty_error, lines, make_dataset, where
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import Dataset

# tags after which a word/TAG sentence may end (PTB: "." covers . ? !)
SENTENCE_END_TAGS: tuple[str, ...] = (".",)
# tags of tokens that close the sentence just ended ("?/. ''/''" keeps the quote in that sentence)
CLOSING_TAGS: tuple[str, ...] = ("''", ")", "-RRB-", "-RCB-")


@dataclass
class ConllOptions:
    """``dataset.options`` of ``format: conll`` (the keyword arguments of :func:`read_conll`)."""

    token_column: int = 0  # 0-based; negative counts from the end
    tag_column: int = -1
    delimiter: str | None = None  # None: any whitespace; "\t" keeps spaces inside a column
    encoding: str = "utf-8"


@dataclass
class WordTagOptions:
    """``dataset.options`` of ``format: word_tag`` (the keyword arguments of :func:`read_word_tag`)."""

    separator: str = "/"
    sentence_end_tags: list[str] | None = field(default_factory=lambda: list(SENTENCE_END_TAGS))  # null: a line each
    closing_tags: list[str] = field(default_factory=lambda: list(CLOSING_TAGS))
    first_alternative: bool = False  # keep the first of ambiguous tags such as NN|JJ
    encoding: str = "utf-8"


def read_conll(path: str | os.PathLike, token_column: int = 0, tag_column: int = -1,
               delimiter: str | None = None, *, encoding: str = "utf-8") -> "Dataset":
    """A tagging set from a CoNLL-style file: one token per line, a blank line between sentences.

    Columns are split on ``delimiter`` (``None``: any whitespace; ``"\\t"`` keeps spaces inside a
    column). The first token line fixes the number of columns; a line with another count, a line
    with a single column (a token without a tag) and an empty token or tag are errors that name the
    line. Lines that start with ``-DOCSTART-`` (CoNLL-2003 document markers) end the sentence and
    are skipped. Returns columns ``tokens`` and ``tags``.
    """
    all_tokens: list[list[str]] = []
    all_tags: list[list[str]] = []
    tokens: list[str] = []
    tags: list[str] = []
    width: int | None = None
    width_line = 0

    def flush() -> None:
        nonlocal tokens, tags
        if tokens:
            all_tokens.append(tokens)
            all_tags.append(tags)
        tokens, tags = [], []

    for number, line in lines(path, encoding):
        line = line.rstrip("\r\n")
        if not line.strip():
            flush()
            continue
        if line.startswith("-DOCSTART-"):
            flush()
            continue
        parts = line.split(delimiter)
        if delimiter is not None and delimiter.strip() == "":
            parts = [p.strip() for p in parts]
        if len(parts) < 2:
            raise UserError(f"{where(path, number)}: the token {parts[0].strip()!r} has no tag "
                            f"(expected at least 2 columns)")
        if width is None:
            width, width_line = len(parts), number
            for name, index in (("token_column", token_column), ("tag_column", tag_column)):
                if not -width <= index < width:
                    raise UserError(f"{where(path, number)}: {name}={index} but the line has {width} columns")
        elif len(parts) != width:
            raise UserError(f"{where(path, number)}: expected {width} columns (as on line {width_line}), "
                            f"found {len(parts)}")
        token, tag = parts[token_column], parts[tag_column]
        if not token:
            raise UserError(f"{where(path, number)}: empty token")
        if not tag:
            raise UserError(f"{where(path, number)}: the token {token!r} has an empty tag")
        tokens.append(token)
        tags.append(tag)
    flush()
    if not all_tokens:
        raise empty_error(path, "sentences")
    return make_dataset({"tokens": all_tokens, "tags": all_tags})


# ---------------------------------------------------------------------------------------------
# word/TAG


def read_word_tag(path: str | os.PathLike, separator: str = "/", *,
                  sentence_end_tags: Sequence[str] | None = SENTENCE_END_TAGS,
                  closing_tags: Sequence[str] = CLOSING_TAGS,
                  first_alternative: bool = False, encoding: str = "utf-8") -> "Dataset":
    """A tagging set from ``word/TAG`` tokens separated by whitespace, one or more sentences a line.

    Each token is split at the *last* ``separator``, so words may contain it (``1/2/CD``); a PTB
    escape (``1\\/2/CD``) is unescaped to ``1/2``. A token without the separator, or with an empty
    word or tag, is an error naming the line.

    Sentence ends: every line ends a sentence, and inside a line a sentence ends after a token
    whose tag is in ``sentence_end_tags`` (PTB ``.``, which covers ``. ? !``) together with any
    immediately following tokens tagged in ``closing_tags`` (``''``, ``)``, ``-RRB-``...), so that
    ``... said/VBD ./. ''/''`` keeps its closing quote. ``sentence_end_tags=None`` (or empty) reads
    one sentence per line. Blank lines are skipped.

    ``first_alternative=True`` keeps the first of ambiguous tags such as ``NN|JJ`` (automatic
    taggers write them). Returns columns ``tokens`` and ``tags``.
    """
    ends = set(sentence_end_tags or ())
    closers = set(closing_tags)
    escaped = "\\" + separator
    all_tokens: list[list[str]] = []
    all_tags: list[list[str]] = []
    for number, line in lines(path, encoding):
        items = line.split()
        if not items:
            continue
        tokens: list[str] = []
        tags: list[str] = []
        ended = False
        for item in items:
            word, sep, tag = item.rpartition(separator)
            if not sep:
                raise UserError(f"{where(path, number)}: the token {item!r} has no tag "
                                f"(expected word{separator}TAG)")
            if not word or not tag:
                raise UserError(f"{where(path, number)}: the token {item!r} has an empty "
                                f"{'word' if not word else 'tag'} (expected word{separator}TAG)")
            if first_alternative and "|" in tag:
                tag = tag.split("|", 1)[0]
            if ended and tag not in closers:
                all_tokens.append(tokens)
                all_tags.append(tags)
                tokens, tags, ended = [], [], False
            tokens.append(word.replace(escaped, separator))
            tags.append(tag)
            if tag in ends:
                ended = True
        all_tokens.append(tokens)
        all_tags.append(tags)
    if not all_tokens:
        raise empty_error(path, "sentences")
    return make_dataset({"tokens": all_tokens, "tags": all_tags})

