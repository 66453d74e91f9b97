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
"""

from __future__ import annotations

import csv
import json
import os
import re
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Sequence

from elmo_tasks.errors import UserError

if TYPE_CHECKING:  # datasets is imported inside the functions: it takes about a second
    from datasets import Dataset, DatasetDict

# tags after which a word/TAG sentence may end (PTB: "." covers . ? !)
SENTENCE_END_TAGS: tuple[str, ...] = (".",)
# tags of tokens that close the sentence just ended ("?/. ''/''" keeps the quote in that sentence)
CLOSING_TAGS: tuple[str, ...] = ("''", ")", "-RRB-", "-RCB-")


# ---------------------------------------------------------------------------------------------
# shared helpers


def _lines(path: str | os.PathLike, encoding: str = "utf-8") -> Iterator[tuple[int, str]]:
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


def _where(path: str | os.PathLike, line: int) -> str:
    return f"{Path(path)}, line {line}"


def _empty(path: str | os.PathLike, what: str) -> UserError:
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


def _dataset(columns: dict[str, list[Any]]) -> "Dataset":
    from datasets import Dataset

    return Dataset.from_dict(columns)


# ---------------------------------------------------------------------------------------------
# CoNLL columns


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

    for number, line in _lines(path, encoding):
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
            raise UserError(f"{_where(path, number)}: the token {parts[0].strip()!r} has no tag "
                            f"(expected at least 2 columns)")
        if width is None:
            width, width_line = len(parts), number
            for name, index in (("token_column", token_column), ("tag_column", tag_column)):
                if not -width <= index < width:
                    raise UserError(f"{_where(path, number)}: {name}={index} but the line has {width} columns")
        elif len(parts) != width:
            raise UserError(f"{_where(path, number)}: expected {width} columns (as on line {width_line}), "
                            f"found {len(parts)}")
        token, tag = parts[token_column], parts[tag_column]
        if not token:
            raise UserError(f"{_where(path, number)}: empty token")
        if not tag:
            raise UserError(f"{_where(path, number)}: the token {token!r} has an empty tag")
        tokens.append(token)
        tags.append(tag)
    flush()
    if not all_tokens:
        raise _empty(path, "sentences")
    return _dataset({"tokens": all_tokens, "tags": all_tags})


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
    for number, line in _lines(path, encoding):
        items = line.split()
        if not items:
            continue
        tokens: list[str] = []
        tags: list[str] = []
        ended = False
        for item in items:
            word, sep, tag = item.rpartition(separator)
            if not sep:
                raise UserError(f"{_where(path, number)}: the token {item!r} has no tag "
                                f"(expected word{separator}TAG)")
            if not word or not tag:
                raise UserError(f"{_where(path, number)}: the token {item!r} has an empty "
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
        raise _empty(path, "sentences")
    return _dataset({"tokens": all_tokens, "tags": all_tags})


# ---------------------------------------------------------------------------------------------
# CSV / TSV


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

    numbered = _lines(path, encoding)
    line_of_row_start = 0

    def lines() -> Iterator[str]:
        nonlocal line_of_row_start
        for number, line in numbered:
            line_of_row_start = line_of_row_start or number
            yield line

    reader = csv.reader(lines(), delimiter=delimiter)
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
            raise UserError(f"{_where(path, line_of_row_start or reader.line_num)}: malformed CSV ({exc})") from None
        start = line_of_row_start
        if not row or all(not cell.strip() for cell in row):
            continue
        if not header_seen:
            header_seen = True
            columns = {name.strip(): i for i, name in enumerate(row)}
            for name in (text_column, label_column):
                if isinstance(name, str) and name not in columns:
                    raise UserError(f"{_where(path, start)}: the header has no column {name!r} "
                                    f"(it has {', '.join(repr(c) for c in columns)})")
            continue
        text_index = columns[text_column] if isinstance(text_column, str) else text_column
        label_index = columns[label_column] if isinstance(label_column, str) else label_column
        if not all(-len(row) <= index < len(row) for index in (text_index, label_index)):
            needed = max(max(text_index, label_index) + 1, -min(text_index, label_index))
            raise UserError(f"{_where(path, start)}: expected at least {needed} columns, found {len(row)}"
                            + (" (the label is missing)" if len(row) == 1 else ""))
        label = row[label_index].strip()
        text = row[text_index].strip()
        if not label:
            raise UserError(f"{_where(path, start)}: the label is missing (empty column {label_column})")
        if label_map is not None:
            if label not in label_map:
                raise UserError(f"{_where(path, start)}: unknown label {label!r} "
                                f"(expected one of {', '.join(repr(k) for k in label_map)})")
            label = label_map[label]
        tokens = tokenizer(text)
        if not tokens:
            raise UserError(f"{_where(path, start)}: the text is empty")
        all_tokens.append(tokens)
        labels.append(label)
    if not labels:
        raise _empty(path, "rows")
    return _dataset({"tokens": all_tokens, "label": labels})


# ---------------------------------------------------------------------------------------------
# JSON lines


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
    for number, line in _lines(path, encoding):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise UserError(f"{_where(path, number)}: not valid JSON ({exc.msg} at column {exc.colno})") from None
        except RecursionError:
            raise UserError(f"{_where(path, number)}: not valid JSON for a data set (nested too deeply)") from None
        if not isinstance(row, dict):
            raise UserError(f"{_where(path, number)}: expected a JSON object, found {type(row).__name__}")
        if keys is None:
            keys, first_line = sorted(row), number
        elif sorted(row) != keys:
            missing = sorted(set(keys) - set(row))
            extra = sorted(set(row) - set(keys))
            detail = "; ".join(part for part in (f"missing {', '.join(missing)}" if missing else "",
                                                 f"extra {', '.join(extra)}" if extra else "") if part)
            raise UserError(f"{_where(path, number)}: keys differ from line {first_line} ({detail})")
        rows.append(row)
    if not rows:
        raise _empty(path, "JSON objects")
    try:
        return Dataset.from_list(rows)
    except Exception as exc:  # pyarrow type clashes between lines (a list here, a string there)
        raise UserError(f"{Path(path)}: values of one key have different types across lines ({exc})") from None


# ---------------------------------------------------------------------------------------------
# the hub


# hub name -> how its columns map onto the task schema (only used for names listed here)
HUB_PRESETS: dict[str, dict[str, Any]] = {
    "conll2003": {"tokens_column": "tokens", "tags_column": "ner_tags"},
    "eriktks/conll2003": {"tokens_column": "tokens", "tags_column": "ner_tags"},
    "conll2000": {"tokens_column": "tokens", "tags_column": "chunk_tags"},
    "eriktks/conll2000": {"tokens_column": "tokens", "tags_column": "chunk_tags"},
    "sst2": {"text_column": "sentence", "label_column": "label"},
    "stanfordnlp/sst2": {"text_column": "sentence", "label_column": "label"},
    "trec": {"text_column": "text", "label_column": "coarse_label"},
    "CogComp/trec": {"text_column": "text", "label_column": "coarse_label"},
}

_SPLIT_NAMES = {"validation": "dev", "valid": "dev", "val": "dev", "development": "dev"}


def _offline() -> bool:
    return os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_hub(name: str, *, tokens_column: str | None = None, tags_column: str | None = None,
             text_column: str | None = None, label_column: str | None = None,
             tokenize: str | Callable[[str], list[str]] = "ptb", **kwargs: Any) -> "DatasetDict":
    """A hub dataset (``datasets.load_dataset(name, **kwargs)``) in the task schema.

    Splits named ``validation`` become ``dev``. Column mapping: for the names in
    :data:`HUB_PRESETS` (``conll2003``, ``conll2000``, ``sst2``, ``trec``) it is known; otherwise
    pass ``tokens_column`` + ``tags_column`` (tagging) or ``text_column``/``tokens_column`` +
    ``label_column`` (classification). Integer class labels are turned into their names. Without
    a mapping the splits are returned as loaded (only renamed).

    Without internet (after ``datasets``' retries, or at once when ``HF_DATASETS_OFFLINE=1`` and the
    set is not in the local ``datasets`` cache) this raises a one-line ``UserError`` that says the
    data needs internet or a local copy.
    """
    import datasets

    try:
        loaded = datasets.load_dataset(name, **kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise UserError(_no_hub_message(name, exc)) from None
    except Exception as exc:  # huggingface_hub / requests errors that are not ConnectionError
        text = f"{type(exc).__name__}: {exc}"
        if any(word in text for word in ("Offline", "offline", "Connection", "resolve", "Max retries",
                                         "Temporary failure", "Network", "timed out")):
            raise UserError(_no_hub_message(name, exc)) from None
        raise
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({kwargs.get("split") or "train": loaded})
    mapping = dict(HUB_PRESETS.get(name, {}))
    given = {"tokens_column": tokens_column, "tags_column": tags_column,
             "text_column": text_column, "label_column": label_column}
    mapping.update({k: v for k, v in given.items() if v is not None})
    return normalize_splits(loaded, tokenize=tokenize, **mapping)


def _no_hub_message(name: str, exc: BaseException) -> str:
    reason = "HF_DATASETS_OFFLINE is set" if _offline() else "the hub could not be reached"
    return (f"the dataset {name!r} needs internet or a local copy ({reason}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            f"on a machine without internet use a local file (read_conll/read_table/read_jsonl) "
            f"or a prepared set (elmo-tasks data prepare --list)")


def normalize_splits(splits: "DatasetDict", *, tokens_column: str | None = None,
                     tags_column: str | None = None, text_column: str | None = None,
                     label_column: str | None = None,
                     tokenize: str | Callable[[str], list[str]] = "ptb") -> "DatasetDict":
    """Rename ``validation`` to ``dev`` and map hub columns onto ``tokens``/``tags``/``label``."""
    import datasets

    out = {}
    for split, data in splits.items():
        split = _SPLIT_NAMES.get(split, split)
        features = data.features
        if tags_column is not None:
            tokens_from = tokens_column or "tokens"
            names = _class_names(features[tags_column])

            def tagging(row: dict[str, Any], names: list[str] | None = names, tokens_from: str = tokens_from) -> dict[str, Any]:
                tags = row[tags_column]
                return {"tokens": list(row[tokens_from]),
                        "tags": [names[t] if names is not None else str(t) for t in tags]}

            data = datasets.Dataset.from_list([tagging(row) for row in data])
        elif label_column is not None:
            names = _class_names(features[label_column])
            tok = get_tokenizer(tokenize)
            source = text_column or tokens_column or "tokens"

            def classification(row: dict[str, Any], names: list[str] | None = names, source: str = source) -> dict[str, Any]:
                value = row[source]
                label = row[label_column]
                return {"tokens": tok(value) if isinstance(value, str) else list(value),
                        "label": names[label] if names is not None else str(label)}

            data = datasets.Dataset.from_list([classification(row) for row in data])
        out[split] = data
    return datasets.DatasetDict(out)


def _class_names(feature: Any) -> list[str] | None:
    """The class names of a ClassLabel feature, or of a sequence of them; ``None`` otherwise."""
    import datasets

    inner = getattr(feature, "feature", feature)  # List/Sequence wrap the item feature
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)
    return None
