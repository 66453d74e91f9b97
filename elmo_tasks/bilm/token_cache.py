"""The inference engine's token cache: the vectors of recently seen tokens, kept across batches.

A token's vector depends on its characters only, and text repeats its tokens, so many tokens of a
batch were already encoded for an earlier one. The cache is a bounded least-recently-used map;
32,768 tokens of 512 floats take 64 MiB.
"""

from __future__ import annotations

from collections import OrderedDict

import torch

DEFAULT_TOKEN_CACHE_SIZE = 32768  # distinct tokens kept across calls (32768 x 512 floats = 64 MiB)


class TokenVectorCache:
    """Least-recently-used map from a token's 50 character ids to its vector, at most ``capacity`` tokens.

    Vectors live in one preallocated table (grown by doubling up to ``capacity`` rows). The cache
    belongs to one set of weights: ``validate`` empties it whenever the weights, dtype or device change.
    """

    def __init__(self, capacity: int) -> None:
        if capacity < 0:
            raise ValueError(f"token cache capacity must be >= 0, got {capacity}")
        self.capacity = capacity
        self._slots: OrderedDict[bytes, int] = OrderedDict()
        self._table: torch.Tensor | None = None
        self._weights_key: tuple | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._slots)

    def clear(self) -> None:
        self._slots.clear()
        self._table = None
        self._weights_key = None

    def validate(self, weights_key: tuple) -> None:
        if weights_key != self._weights_key:
            self.clear()
            self._weights_key = weights_key

    def lookup(self, keys: list[bytes]) -> list[int]:
        """The table slot of each key, -1 where absent; found keys become the most recently used."""
        slots = []
        for key in keys:
            slot = self._slots.get(key, -1)
            if slot >= 0:
                self._slots.move_to_end(key)
            slots.append(slot)
        found = sum(1 for s in slots if s >= 0)
        self.hits += found
        self.misses += len(slots) - found
        return slots

    def gather(self, slots: list[int]) -> torch.Tensor:
        assert self._table is not None
        return self._table[torch.tensor(slots, device=self._table.device)]

    def store(self, keys: list[bytes], vectors: torch.Tensor) -> None:
        """Insert new keys (not already present), evicting the least recently used ones beyond capacity."""
        if self.capacity == 0 or not keys:
            return
        if len(keys) > self.capacity:
            keys, vectors = keys[-self.capacity :], vectors[-self.capacity :]
        needed = len(self._slots) + len(keys)
        if self._table is None or (self._table.shape[0] < needed and self._table.shape[0] < self.capacity):
            rows = min(self.capacity, max(needed, 2 * (0 if self._table is None else self._table.shape[0]), 1024))
            table = vectors.new_empty(rows, vectors.shape[1])
            if self._table is not None:
                table[: self._table.shape[0]] = self._table
            self._table = table
        free = list(range(len(self._slots), min(needed, self._table.shape[0])))
        while len(free) < len(keys):  # full: reuse the least recently used slots
            free.append(self._slots.popitem(last=False)[1])
        slots = free[: len(keys)]
        self._table[torch.tensor(slots, device=vectors.device)] = vectors
        for key, slot in zip(keys, slots):
            self._slots[key] = slot
