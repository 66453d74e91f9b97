"""A character CNN trained with the task (the NER recipe's companion to GloVe and ELMo).

Each token's UTF-8 bytes (the same ids the biLM uses, cut to ``max_chars``) are embedded, run through
one convolution and max-pooled over the positions into a ``filters``-wide vector.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from elmo_tasks.bilm.char_ids import MAX_CHARS_PER_TOKEN, token_to_char_ids
from elmo_tasks.config import CharsConfig

N_CHAR_IDS = 262  # the biLM's character ids, 0 = padding


def char_ids(tokens: list[str], max_chars: int) -> np.ndarray:
    """(n, max_chars) int64 ids: begin-of-word mark, bytes, end-of-word mark, padding; 0 past the end."""
    out = np.zeros((len(tokens), max_chars), dtype=np.int64)
    for i, token in enumerate(tokens):
        ids = token_to_char_ids(token)
        out[i] = ids[:max_chars] if max_chars <= MAX_CHARS_PER_TOKEN else list(ids) + [0] * (max_chars - len(ids))
    return out


class CharCNN(nn.Module):
    def __init__(self, config: CharsConfig) -> None:
        super().__init__()
        self.max_chars = config.max_chars
        self.embedding = nn.Embedding(N_CHAR_IDS, config.dim, padding_idx=0)
        self.conv = nn.Conv1d(config.dim, config.filters, config.width, padding=config.width // 2)
        self.output_dim = config.filters

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        """(B, T, C) ids -> (B, T, filters)."""
        b, t, c = ids.shape
        x = self.embedding(ids.reshape(b * t, c)).transpose(1, 2)  # (BT, dim, C)
        x = torch.relu(self.conv(x)).max(dim=2).values
        return x.reshape(b, t, -1)
