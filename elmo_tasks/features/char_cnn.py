"""``chars``: a character CNN trained with the task (the NER recipe's companion to GloVe and ELMo).

Each token's UTF-8 bytes (the same ids the biLM uses, cut to ``max_chars``) are embedded, run through
one convolution and max-pooled over the positions into a ``filters``-wide vector. The smallest
feature: copy it to write a new one.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch import nn

from elmo_tasks.bilm.char_ids import MAX_CHARS_PER_TOKEN, token_to_char_ids
from elmo_tasks.features.base import Feature

N_CHAR_IDS = 262  # the biLM's character ids, 0 = padding


@dataclass
class CharsOptions:
    """The NER recipe's: 16-dim chars, 128 filters of width 3."""

    dim: int = 16
    filters: int = 128
    width: int = 3
    max_chars: int = 20  # longer tokens are cut (bytes)


def char_ids(tokens: list[str], max_chars: int) -> np.ndarray:
    """(n, max_chars) int64 ids: begin-of-word mark, bytes, end-of-word mark, padding; 0 past the end."""
    out = np.zeros((len(tokens), max_chars), dtype=np.int64)
    for i, token in enumerate(tokens):
        ids = token_to_char_ids(token)
        out[i] = ids[:max_chars] if max_chars <= MAX_CHARS_PER_TOKEN else list(ids) + [0] * (max_chars - len(ids))
    return out


class CharCNN(Feature):
    Options = CharsOptions

    def __init__(self, options: CharsOptions) -> None:
        super().__init__()
        self.max_chars = options.max_chars
        self.embedding = nn.Embedding(N_CHAR_IDS, options.dim, padding_idx=0)
        self.conv = nn.Conv1d(options.dim, options.filters, options.width, padding=options.width // 2)
        self.output_dim = options.filters

    def prepare(self, split: str, tokens: list[list[str]]) -> list[np.ndarray]:
        return [char_ids(sentence, self.max_chars) for sentence in tokens]

    def forward(self, ids: torch.Tensor, mask: Any = None) -> list[torch.Tensor]:
        """(B, T, C) ids -> [(B, T, filters)]."""
        b, t, c = ids.shape
        x = self.embedding(ids.reshape(b * t, c)).transpose(1, 2)  # (BT, dim, C)
        x = torch.relu(self.conv(x)).max(dim=2).values
        return [x.reshape(b, t, -1)]
