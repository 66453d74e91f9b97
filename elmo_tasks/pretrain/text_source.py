"""Reading the pretraining corpus: whitespace-tokenised sentences, one per line, into integer arrays.

Every distinct token string gets a *type id* (its characters feed the char CNN, so out-of-vocabulary
words keep their spelling); the softmax targets are vocabulary ids (see ``vocab.py``). Type 0 is
``<S>``, type 1 is ``</S>``, type 2 is the padding token (all-zero characters, used only in the
per-sentence state mode), words follow in order of first appearance.

Bad input never crashes: a file that is not UTF-8 is a ``UserError`` naming the file and line, an
empty file (no sentence at all) is a ``UserError`` naming the file, blank lines are skipped, and a
very long line is simply a long sentence (the token stream is cut into windows anyway).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from elmo_tasks.bilm.char_ids import BOS_TOKEN, EOS_TOKEN, MAX_CHARS_PER_TOKEN, token_to_char_ids
from elmo_tasks.errors import UserError

BOS_TYPE, EOS_TYPE, PAD_TYPE = 0, 1, 2
PAD_STRING = ""  # never a token: str.split() yields no empty strings
LONG_LINE_TOKENS = 1000  # lines longer than this are counted in the statistics (and still used)


class TypeTable:
    """Token string <-> type id, shared by every text read into one run."""

    def __init__(self) -> None:
        self.strings: list[str] = [BOS_TOKEN, EOS_TOKEN, PAD_STRING]
        self.index: dict[str, int] = {s: i for i, s in enumerate(self.strings)}

    def __len__(self) -> int:
        return len(self.strings)

    def ids(self, tokens: list[str]) -> list[int]:
        index, strings = self.index, self.strings
        out = []
        for token in tokens:
            i = index.get(token)
            if i is None:
                i = index[token] = len(strings)
                strings.append(token)
            out.append(i)
        return out

    def char_table(self) -> np.ndarray:
        """(n_types, 50) int16 character ids (offset +1, as the biLM takes them); padding is all 0."""
        table = np.zeros((len(self.strings), MAX_CHARS_PER_TOKEN), dtype=np.int16)
        for i, s in enumerate(self.strings):
            if i != PAD_TYPE:
                table[i] = token_to_char_ids(s)
        return table


@dataclass
class EncodedText:
    """Sentences as type ids: sentence i is ``tokens[offsets[i]:offsets[i+1]]`` (no boundaries)."""

    tokens: np.ndarray  # int32
    offsets: np.ndarray  # int64, n_sentences + 1
    sources: list[str] = field(default_factory=list)
    long_lines: int = 0

    @property
    def n_sentences(self) -> int:
        return len(self.offsets) - 1

    @property
    def n_tokens(self) -> int:
        return int(len(self.tokens))


def read_lines(path: Path) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 file; an undecodable line is a UserError naming file and line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield number, raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise UserError(
                    f"{path}, line {number}: not valid UTF-8 ({exc.reason} at byte {exc.start}); "
                    "the corpus must be UTF-8 text, one sentence per line"
                ) from None


def encode_lines(lines: Iterable[str], types: TypeTable, what: str) -> EncodedText:
    tokens: list[int] = []
    offsets = [0]
    long_lines = 0
    for text in lines:
        words = text.split()
        if not words:
            continue
        if len(words) > LONG_LINE_TOKENS:
            long_lines += 1
        tokens.extend(types.ids(words))
        offsets.append(len(tokens))
    if len(offsets) == 1:
        raise UserError(f"{what}: no sentences (the text is empty or blank)")
    return EncodedText(np.asarray(tokens, dtype=np.int32), np.asarray(offsets, dtype=np.int64), long_lines=long_lines)


def encode_files(files: list[str], types: TypeTable) -> EncodedText:
    """Read text files (one whitespace-tokenised sentence per line) into one EncodedText."""
    parts = []
    for name in files:
        path = Path(name)
        if not path.is_file():
            raise UserError(f"corpus file not found: {path}")
        part = encode_lines((text for _, text in read_lines(path)), types, str(path))
        part.sources = [str(path)]
        parts.append(part)
    return concatenate(parts)


def concatenate(parts: list[EncodedText]) -> EncodedText:
    tokens = np.concatenate([p.tokens for p in parts])
    offsets, base = [np.zeros(1, dtype=np.int64)], 0
    for p in parts:
        offsets.append(p.offsets[1:] + base)
        base += p.n_tokens
    return EncodedText(tokens, np.concatenate(offsets), [s for p in parts for s in p.sources],
                       sum(p.long_lines for p in parts))


def encode_dataset(path: str, name: str | None, data_files: dict | None, split: str, column: str,
                   types: TypeTable) -> EncodedText:
    """A ``datasets`` split whose ``column`` holds whitespace-tokenised sentences."""
    try:
        import datasets
    except ImportError:
        raise UserError("corpus.dataset needs the 'datasets' package (pip install datasets)") from None
    what = f"dataset {path}" + (f"/{name}" if name else "") + f" split {split}"
    try:
        data = datasets.load_dataset(path, name, data_files=data_files, split=split)
    except Exception as exc:  # the hub is unreachable offline; say so in one line
        first = (str(exc).splitlines() or [type(exc).__name__])[0]
        raise UserError(f"cannot load {what}: {first} (a hub dataset needs internet or a local copy)") from None
    if column not in data.column_names:
        raise UserError(f"{what}: no column {column!r} (columns: {', '.join(data.column_names)})")
    part = encode_lines((str(t) for t in data[column]), types, what)
    part.sources = [what]
    return part
