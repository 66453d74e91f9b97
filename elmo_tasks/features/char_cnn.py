"""``chars``: a character CNN trained with the task (the NER recipe's companion to GloVe and ELMo).

Each token's UTF-8 bytes (the same ids the biLM uses, cut to ``max_chars``) are embedded, run through
one convolution and max-pooled over the positions into a ``filters``-wide vector. The smallest
feature: copy it to write a new one.

A batch holds each distinct token once (``chars``) and where each position's token is (``index``):
in a batch of 64 tweets about half the tokens repeat, and padding is one row.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from elmo_tasks.bilm.char_ids import MAX_CHARS_PER_TOKEN, token_to_char_ids
from elmo_tasks.features.base import Feature, pad
from elmo_tasks.schema import ConfigError

N_CHAR_IDS = 262  # the biLM's character ids, 0 = padding


@dataclass
class CharsOptions:
    """The NER recipe's: 16-dim chars, 128 filters of width 3."""

    dim: int = 16
    filters: int = 128
    width: int = 3
    max_chars: int = 20  # longer tokens are cut (bytes)

    def check(self) -> None:
        for key in ("dim", "filters", "width", "max_chars"):
            if getattr(self, key) < 1:
                raise ConfigError(f"must be at least 1, got {getattr(self, key)}", key=key)
        if self.width > self.max_chars:
            raise ConfigError(f"{self.width} is wider than features.chars.max_chars = {self.max_chars}", key="width")


def char_ids(tokens: list[str], max_chars: int) -> np.ndarray:
    """(n, max_chars) int64 ids: begin-of-word mark, bytes, end-of-word mark, padding; 0 past the end."""
    out = np.zeros((len(tokens), max_chars), dtype=np.int64)
    for i, token in enumerate(tokens):
        ids = token_to_char_ids(token)
        out[i] = ids[:max_chars] if max_chars <= MAX_CHARS_PER_TOKEN else list(ids) + [0] * (max_chars - len(ids))
    return out


@dataclass
class TokenTypes:
    """A split's distinct tokens as character ids (row 0: padding, all zeros) and each sentence's
    tokens as row numbers of that table."""

    table: np.ndarray  # (types + 1, max_chars)
    sentences: list[np.ndarray]  # (n_i,) int64 each


class CharCNN(Feature):
    Options = CharsOptions

    def __init__(self, options: CharsOptions) -> None:
        super().__init__()
        self.max_chars = options.max_chars
        self.embedding = nn.Embedding(N_CHAR_IDS, options.dim, padding_idx=0)
        self.conv = nn.Conv1d(options.dim, options.filters, options.width, padding=options.width // 2)
        self.output_dim = options.filters

    def prepare(self, split: str, tokens: list[list[str]]) -> TokenTypes:
        types: dict[str, int] = {}
        sentences = [np.array([types.setdefault(t, len(types) + 1) for t in sentence], dtype=np.int64)
                     for sentence in tokens]
        table = np.concatenate([np.zeros((1, self.max_chars), dtype=np.int64), char_ids(list(types), self.max_chars)])
        return TokenTypes(table, sentences)

    def collate(self, prepared: TokenTypes, rows: list[int], width: int) -> dict[str, torch.Tensor]:
        positions = pad([prepared.sentences[i] for i in rows], width)  # (B, width) rows of the table, 0 past the end
        distinct, index = np.unique(positions.numpy(), return_inverse=True)
        return {"chars": torch.from_numpy(prepared.table[distinct]),
                "index": torch.from_numpy(index.reshape(positions.shape))}

    def forward(self, inputs: dict[str, torch.Tensor], mask: Any = None) -> list[torch.Tensor]:
        """{"chars": (U, C) ids of the batch's distinct tokens, "index": (B, T) into them} -> [(B, T, filters)]."""
        x = self.embedding(inputs["chars"]).transpose(1, 2)  # (U, dim, C)
        x = torch.relu(self.conv(x).max(dim=2).values)  # relu after the max: the same value, less work
        return [x[inputs["index"]]]
