"""The HDF5 dump of embedded sentences, as AllenNLP's ``elmo`` command writes it and its readers expect.

One float32 dataset per sentence, keyed by its 0-based line number (or by the sentence text with
sentence keys): (3, n, 2P) for ``all`` layers, (n, 2P) for ``top`` or ``average``; with
``pool="mean"`` the mean over the sentence's tokens, (3, 2P) or (2P,), i.e. a sentence vector.
Unless sentence keys are used, ``sentence_to_index`` is a shape-(1,) variable-length string
dataset holding a JSON map from each stripped line to its key, read as
``json.loads(f["sentence_to_index"][0])``; a sentence that occurs twice maps to its last line, as
AllenNLP's map does.

Beyond AllenNLP's layout (readers that know only it ignore attributes):

* each sentence dataset's attribute ``tokens`` holds the tokens its vectors belong to, in order, as a
  JSON list (``json.loads(f["0"].attrs["tokens"])``): the words as the tokenizer split them, so a
  vector lines up with its word also for PTB-split text;
* the file's attributes ``layers``, ``pool``, ``keys`` (``line`` or ``sentence``) and ``tokenize``
  (``whitespace``, or the tokenizer function, e.g. ``elmo_tasks.data.tokenize.tokenize`` for ptb)
  say how it was made.

Sentence keys are checked before anything is embedded (:func:`check_sentence_keys`): a sentence
that cannot be an HDF5 name (empty, ``.``, ``..``, containing ``/`` or a NUL, ``sentence_to_index``) or that occurs twice
is refused with one line naming the file and line; nothing is escaped, so a key is always the
sentence itself.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import h5py
import numpy as np

from elmo_tasks.atomic import atomic_path
from elmo_tasks.errors import UserError

LAYER_CHOICES = ("all", "top", "average")
POOL_CHOICES = ("none", "mean")
SENTENCE_INDEX = "sentence_to_index"
TOKENS_ATTRIBUTE = "tokens"


def sentence_key_problem(sentence: str) -> str | None:
    """Why a (stripped) sentence cannot name an HDF5 dataset, or None."""
    if not sentence:
        return "the line is empty"
    if sentence in (".", ".."):
        return f"{sentence!r} names a group, not a dataset"
    if "/" in sentence:
        return f"the sentence {sentence[:60]!r} contains '/', which HDF5 reads as a group separator"
    if "\0" in sentence:
        return "the sentence contains a NUL character"
    if sentence == SENTENCE_INDEX:
        return f"the sentence {SENTENCE_INDEX!r} is the name of the file's index dataset"
    return None


def check_sentence_keys(numbered: Iterable[tuple[int, str]], source: str) -> None:
    """Refuse, naming ``source`` and the 1-based line, the first line whose stripped text cannot be a
    dataset name or repeats an earlier line (``numbered``: 0-based line index, text)."""
    seen: dict[str, int] = {}
    for index, text in numbered:
        sentence = text.strip()
        problem = sentence_key_problem(sentence)
        if problem is None and sentence in seen:
            problem = (f"the sentence {sentence[:60]!r} occurs twice (lines {seen[sentence] + 1} and {index + 1}), and "
                       "sentence keys must be unique")
        if problem is not None:
            raise UserError(f"{source}, line {index + 1}: {problem}: --use-sentence-keys cannot name its dataset "
                            "(nothing was embedded); drop --use-sentence-keys to key datasets by line number")
        seen[sentence] = index


def reduce_layers(array: np.ndarray, layers: str = "all", pool: str = "none") -> np.ndarray:
    """(L, n, 2P) -> the requested layers, then optionally the mean over tokens (zeros for no token)."""
    if layers == "top":
        array = array[-1]
    elif layers == "average":
        array = array.mean(axis=0)
    elif layers != "all":
        raise UserError(f"layers must be one of {', '.join(LAYER_CHOICES)}, got {layers!r}")
    if pool == "mean":
        tokens = array.shape[-2]
        array = array.mean(axis=-2) if tokens else np.zeros(array.shape[:-2] + array.shape[-1:], array.dtype)
    elif pool != "none":
        raise UserError(f"pool must be one of {', '.join(POOL_CHOICES)}, got {pool!r}")
    return array.astype(np.float32, copy=False)


def write_sentence_index(handle: h5py.File, mapping: dict[str, str]) -> None:
    dataset = handle.create_dataset(SENTENCE_INDEX, (1,), dtype=h5py.string_dtype())
    dataset[0] = json.dumps(mapping)


class DumpWriter:
    """Writes sentence datasets into an open HDF5 file; ``finish()`` adds ``sentence_to_index``."""

    def __init__(self, handle: h5py.File, layers: str = "all", pool: str = "none",
                 use_sentence_keys: bool = False, sentence_index: bool = True, tokenize: str = "whitespace") -> None:
        self.handle, self.layers, self.pool = handle, layers, pool
        self.use_sentence_keys = use_sentence_keys
        self.sentence_index = sentence_index and not use_sentence_keys
        self.mapping: dict[str, tuple[int, str]] = {}  # sentence -> (line, key) of its last line
        reduce_layers(np.zeros((1, 0, 1), np.float32), layers, pool)  # validates the choices up front
        handle.attrs.update({"layers": layers, "pool": pool, "keys": "sentence" if use_sentence_keys else "line",
                             "tokenize": tokenize})

    def add(self, index: int, text: str, array: np.ndarray, tokens: list[str] | None = None) -> None:
        """One sentence's dataset (line ``index``, 0-based), with its ``tokens`` as an attribute when given."""
        sentence = text.strip()
        key = sentence if self.use_sentence_keys else str(index)
        if self.use_sentence_keys:  # checked before the work (check_sentence_keys); this guards other callers
            problem = sentence_key_problem(sentence) or ("it occurs twice" if key in self.handle else None)
            if problem is not None:
                raise UserError(f"line {index + 1}: {problem}: drop --use-sentence-keys to key datasets by line number")
        dataset = self.handle.create_dataset(key, data=reduce_layers(array, self.layers, self.pool))
        if tokens is not None:
            dataset.attrs[TOKENS_ATTRIBUTE] = json.dumps(list(tokens), ensure_ascii=False)
        if self.sentence_index and (sentence not in self.mapping or self.mapping[sentence][0] < index):
            self.mapping[sentence] = (index, key)

    def finish(self) -> None:
        if self.sentence_index:
            write_sentence_index(self.handle, {s: key for s, (_, key) in self.mapping.items()})


def write_dump(path: str | Path, items: Iterable[tuple[int, str, np.ndarray]], layers: str = "all",
               pool: str = "none", use_sentence_keys: bool = False, sentence_index: bool = True) -> int:
    """Write (line index, line text, (L, n, 2P) array) items to ``path`` atomically, each dataset with
    its whitespace-split tokens; returns the count."""
    count = 0
    with atomic_path(Path(path)) as tmp, h5py.File(tmp, "w") as handle:
        writer = DumpWriter(handle, layers, pool, use_sentence_keys, sentence_index)
        for index, text, array in items:
            writer.add(index, text, array, text.split())
            count += 1
        writer.finish()
    return count
