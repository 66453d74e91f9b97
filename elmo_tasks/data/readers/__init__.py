"""Read labelled task data from local files (CoNLL, word/TAG, CSV/TSV, JSON lines) or the dataset hub.

Every reader returns a ``datasets.Dataset`` in one of the task schemas:

* tagging: ``tokens`` (list[str]) and ``tags`` (list[str], BIO for NER);
* classification: ``tokens`` (list[str]) and ``label`` (str);
* word sense: ``tokens``, ``target`` (int), ``lemma``, ``pos`` (n/v/a/r), ``sense`` (a WordNet sense
  key), as written by the ``wordnet-wsd`` recipe and read back with :func:`read_jsonl`.

Malformed input (an empty file, a wrong column count, a token without a tag, a missing label,
bytes that are not valid UTF-8, bad JSON) raises :class:`~elmo_tasks.errors.UserError` whose
message names the file and the 1-based line number. :func:`load_hub` passes hub names
(``conll2003``, ``sst2``, ...) to ``datasets.load_dataset`` and turns a failed download into a
one-line ``UserError``.

One module per input kind: :mod:`.tagging` (CoNLL columns, word/TAG), :mod:`.tables` (CSV/TSV),
:mod:`.jsonl`, :mod:`.hub`; shared line reading and tokenisers in :mod:`.common`.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable
from typing import Any

from elmo_tasks.data.readers.common import fallback_tokenize, get_tokenizer, lines, ptb_tokenizer_name
from elmo_tasks.data.readers.hub import HUB_PRESETS, load_hub, normalize_splits, offline
from elmo_tasks.data.readers.jsonl import JsonlOptions, read_jsonl
from elmo_tasks.data.readers.tables import TableOptions, read_table
from elmo_tasks.data.readers.tagging import (
    CLOSING_TAGS,
    SENTENCE_END_TAGS,
    ConllOptions,
    WordTagOptions,
    read_conll,
    read_word_tag,
)

# ``dataset.format`` -> (reader, the dataclass of its ``dataset.options``); csv and tsv are the table
# reader with a comma or a tab as the default delimiter
FILE_FORMATS: dict[str, tuple[Callable[..., Any], type]] = {
    "conll": (read_conll, ConllOptions),
    "word_tag": (read_word_tag, WordTagOptions),
    "csv": (read_table, TableOptions),
    "tsv": (read_table, TableOptions),
    "table": (read_table, TableOptions),
    "jsonl": (read_jsonl, JsonlOptions),
}
# formats whose text is raw (a table's text column, a JSONL line's "text"): dataset.tokenize splits it,
# PTB by default; the others hold one token per item already (CoNLL lines, word/TAG items, JSONL "tokens")
RAW_TEXT_FORMATS = ("csv", "tsv", "table", "jsonl")
_DEFAULT_DELIMITERS = {"csv": ",", "tsv": "\t"}


def read_file(format: str, path: str | os.PathLike, options: Any = None, tokenize: str = "ptb") -> Any:
    """One split of ``format`` (a key of :data:`FILE_FORMATS`) with its options (the dataclass or a mapping).

    ``tokenize`` (``ptb`` or ``whitespace``) splits raw text; pre-tokenised formats ignore it."""
    reader = FILE_FORMATS[format][0]
    values = dataclasses.asdict(options) if dataclasses.is_dataclass(options) else dict(options or {})
    if format in _DEFAULT_DELIMITERS and values.get("delimiter") is None:
        values["delimiter"] = _DEFAULT_DELIMITERS[format]
    if format in RAW_TEXT_FORMATS:
        values["tokenize"] = tokenize
    return reader(path, **values)


__all__ = ["CLOSING_TAGS", "FILE_FORMATS", "HUB_PRESETS", "RAW_TEXT_FORMATS", "SENTENCE_END_TAGS", "ConllOptions",
           "JsonlOptions", "TableOptions", "WordTagOptions", "fallback_tokenize", "get_tokenizer", "lines",
           "load_hub", "normalize_splits", "offline", "ptb_tokenizer_name", "read_conll", "read_file", "read_jsonl",
           "read_table", "read_word_tag"]
