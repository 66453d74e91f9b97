"""Token -> 50 character ids, exactly as the reference ELMo implementations make them.

Each token becomes its UTF-8 bytes (at most 48, cut at byte level) between a begin-of-word and an
end-of-word mark, padded with a within-word padding id to 50 slots; every id is then shifted by +1
so that 0 can mean "no token here". The strings ``<S>`` and ``</S>`` map to the sentence-boundary
arrays. Sentence boundaries are *not* added here: the biLM adds them once, itself.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache

import numpy as np
import torch

from elmo_tasks.errors import UserError

MAX_CHARS_PER_TOKEN = 50
MAX_BYTES_PER_TOKEN = MAX_CHARS_PER_TOKEN - 2  # room for the begin/end-of-word marks

# Raw ids (before the +1 offset); 0..255 are UTF-8 byte values.
BOS_CHAR = 256
EOS_CHAR = 257
BOW_CHAR = 258
EOW_CHAR = 259
PAD_CHAR = 260
N_RAW_CHARS = 261  # rows of the trained character table; inference adds a zero row -> 262

BOS_TOKEN = "<S>"
EOS_TOKEN = "</S>"


_ID_OBJECTS = tuple(range(N_RAW_CHARS + 1))  # one shared int per id, so that cached tuples stay small


def _with_marks(body: Sequence[int]) -> tuple[int, ...]:
    raw = [BOW_CHAR, *body, EOW_CHAR]
    raw += [PAD_CHAR] * (MAX_CHARS_PER_TOKEN - len(raw))
    return tuple(_ID_OBJECTS[r + 1] for r in raw)


@lru_cache(maxsize=100_000)
def token_to_char_ids(token: str) -> tuple[int, ...]:
    """The 50 final (offset) character ids of one token."""
    return _char_ids(token)


def _char_ids(token: str) -> tuple[int, ...]:
    if token == BOS_TOKEN:
        return _with_marks([BOS_CHAR])
    if token == EOS_TOKEN:
        return _with_marks([EOS_CHAR])
    data = token.encode("utf-8", "ignore")[:MAX_BYTES_PER_TOKEN]
    return _with_marks(data)


def marked_char_ids(raw_id: int) -> tuple[int, ...]:
    """The 50 final ids of a token spelt by one raw id between the word marks: ``<S>`` (256),
    ``</S>`` (257), or a special token of AllenNLP's ``tokens_to_add``."""
    return _with_marks([raw_id])


BOS_IDS = token_to_char_ids(BOS_TOKEN)
EOS_IDS = token_to_char_ids(EOS_TOKEN)


def batch_to_ids(sentences: Sequence[Sequence[str]]) -> torch.Tensor:
    """Character ids of a batch of tokenised sentences: int64 (B, max_len, 50), right-padded with 0.

    A plain string where a list of token lists belongs is a one-line error (iterating it would
    silently embed its characters as tokens).
    """
    if isinstance(sentences, str) or any(isinstance(s, str) for s in sentences):
        raise UserError("expected a list of tokenised sentences (each a list of token strings), got a string: "
                        "tokenise it first, e.g. [text.split()]")
    lengths = torch.tensor([len(s) for s in sentences], dtype=torch.long)
    max_len = int(lengths.max()) if len(sentences) else 0
    ids = torch.zeros(len(sentences), max_len, MAX_CHARS_PER_TOKEN, dtype=torch.long)
    rows = b"".join([_token_bytes(t) for sentence in sentences for t in sentence])
    if rows:  # one array for the whole batch, scattered into the word positions
        flat = np.frombuffer(rows, dtype=np.int16).reshape(-1, MAX_CHARS_PER_TOKEN)
        ids[torch.arange(max_len) < lengths.unsqueeze(1)] = torch.from_numpy(flat.astype(np.int64))
    return ids


@lru_cache(maxsize=50_000)
def _token_bytes(token: str) -> bytes:
    """``token_to_char_ids(token)`` as 50 int16 values (100 bytes), to build batches without Python ints."""
    return np.array(_char_ids(token), dtype=np.int16).tobytes()
