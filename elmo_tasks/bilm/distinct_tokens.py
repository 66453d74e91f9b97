"""Encode each distinct token once, grouped by length: the character CNN's one trick shared by
inference (``elmo_tasks.bilm.inference``) and pretraining (``elmo_tasks.pretrain.windows``).

A token of L character ids (word marks included) followed by within-word padding has, besides its
windows over its characters, only identical all-padding windows. Keeping the first
``L + max_width`` positions keeps one of those and every other window, so the max-pooled
convolutions, and the token vector, are unchanged. Tokens sorted by length and cut group by group
to their longest member's ``L + max_width`` make the CNN do about a third of the work (most tokens
are short), gradients included.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from elmo_tasks.bilm.char_ids import PAD_CHAR
from elmo_tasks.bilm.workers import run_pair

PAD_ID = PAD_CHAR + 1  # the within-word padding id after the +1 offset


def distinct_rows(char_ids: torch.Tensor) -> tuple[list[bytes], np.ndarray, torch.Tensor]:
    """The distinct rows of (N, 50) ids: their keys (the ids' bytes, e.g. for a cache), the index of
    each one's first occurrence, and for each input row its index among them (``inverse``, (N,))."""
    rows = char_ids.detach().cpu().numpy().astype(np.int16)
    keyed = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * 2))).ravel()
    distinct, first, inverse = np.unique(keyed, return_index=True, return_inverse=True)
    return [k.tobytes() for k in distinct], first, torch.from_numpy(inverse.reshape(-1)).to(char_ids.device)


def token_lengths(char_ids: torch.Tensor) -> torch.Tensor:
    """(N,) for (N, W) ids: the index of each row's last id that is not within-word padding, + 1."""
    positions = torch.arange(1, char_ids.shape[1] + 1, device=char_ids.device)
    return ((char_ids != PAD_ID) * positions).amax(dim=1)


def encode_by_length(encode: Callable[[torch.Tensor], torch.Tensor], char_ids: torch.Tensor, max_width: int,
                     group_size: int, parallel: bool = False) -> torch.Tensor:
    """``encode(char_ids)`` for (N, W) ids, computed on groups of ``group_size`` tokens of similar
    length, each cut to its longest token + ``max_width`` positions (see the module docstring).

    ``parallel`` shares the groups between the two workers of ``elmo_tasks.bilm.workers`` (inference
    only; ``encode`` then runs on two threads). Differentiable when ``encode`` is.
    """
    n, width = char_ids.shape
    if n == 0:
        return encode(char_ids)
    lengths = token_lengths(char_ids)
    order = torch.argsort(lengths)
    groups = list(order.split(max(1, group_size)))
    pieces: list[torch.Tensor | None] = [None] * len(groups)

    def encode_groups(worker: int) -> None:
        for index in range(worker, len(groups), 2):
            rows = groups[index]
            keep = min(width, max(int(lengths[rows].max()) + max_width, max_width))
            pieces[index] = encode(char_ids[rows, :keep])

    run_pair(encode_groups, parallel=parallel and len(groups) > 1)
    return torch.cat(pieces)[torch.argsort(order)]  # type: ignore[arg-type]
