"""Context-independent token vectors: character embedding -> CNN -> highway -> projection.

Two ways through the same weights:

* the plain path (any time gradients are needed): every row of ids goes through the whole encoder;
* the inference path (no gradients): each *distinct* token is encoded once, its convolutions run
  only over the characters it has (plus enough padding for one all-padding window, which every
  token of up to 43 bytes also has in the plain path), and its vector is kept in a bounded LRU
  cache across calls. On a CPU with oneDNN, all the filters run as one matrix product over the
  character windows (``_encode_fused``, weights packed by ``elmo_tasks.bilm.packed``). The result
  equals the plain path up to float rounding.
"""

from __future__ import annotations

from collections import OrderedDict

import numpy as np
import torch
from torch import nn

from elmo_tasks.bilm import packed
from elmo_tasks.bilm.char_ids import MAX_CHARS_PER_TOKEN, PAD_CHAR
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.workers import run_pair

PAD_ID = PAD_CHAR + 1  # the within-word padding id after the +1 offset
DEFAULT_TOKEN_CACHE_SIZE = 32768  # distinct tokens kept across calls (32768 x 512 floats = 64 MiB)
ENCODE_CHUNK = 512  # distinct tokens per CNN call: bounds the conv maps (about 180 KB per token)
WINDOW_ROWS = 512  # character windows per product of the fused CNN: its maps (4 MiB for 2048 filters) stay in cache


class Highway(nn.Module):
    """One highway layer in the TF naming: ``x <- g*relu(transform(x)) + (1-g)*x``, ``g = sigmoid(carry(x))``.

    Note the "carry" gate multiplies the *transformed* branch (that is how the public weights are
    defined). The nonlinearity is always relu.
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.carry = nn.Linear(dim, dim)
        self.transform = nn.Linear(dim, dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        gate = torch.sigmoid(self.carry(x))
        return gate * torch.relu(self.transform(x)) + (1.0 - gate) * x


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


class CharCNNTokenEncoder(nn.Module):
    """Maps (N, 50) character ids to (N, P) token vectors.

    Row 0 of the character table is the all-zero padding row (ids are offset by +1); the trained
    table is rows 1..261. ``cache`` holds the vectors of recently seen tokens for the inference path.
    """

    def __init__(self, options: BiLMOptions, token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE) -> None:
        super().__init__()
        self.char_embedding = nn.Embedding(262, options.char_embedding_dim, padding_idx=0)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(options.char_embedding_dim, count, kernel_size=width) for width, count in options.filters
        )
        self.activation = torch.relu if options.activation == "relu" else torch.tanh
        self.highways = nn.ModuleList(Highway(options.n_filters) for _ in range(options.n_highway))
        self.projection = nn.Linear(options.n_filters, options.projection_dim)
        self.max_width = max(width for width, _ in options.filters)
        self.cache = TokenVectorCache(token_cache_size)
        self.fast = True  # False forces the plain path (used by the tests to compare the two)
        self.fused_cnn = True  # False: the inference path runs the filters one by one (benchmarks compare)
        self.precision = torch.float32  # bfloat16: the inference path computes under bfloat16 autocast

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        if self.fast and not _needs_grad(self, char_ids):
            return self.encode_inference(char_ids)
        return self.encode_plain(char_ids)

    # -- the plain path ---------------------------------------------------------------------------

    def encode_plain(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Every row through the whole encoder (differentiable)."""
        return self.projection(self._highways(self._pooled_convolutions(char_ids)))

    def _pooled_convolutions(self, char_ids: torch.Tensor) -> torch.Tensor:
        chars = self.char_embedding(char_ids).transpose(1, 2)  # (N, d, positions)
        # max over positions then the activation: equal to activation-then-max (both monotone)
        return torch.cat([self.activation(conv(chars).amax(dim=2)) for conv in self.convolutions], dim=1)

    def _highways(self, x: torch.Tensor) -> torch.Tensor:
        for highway in self.highways:
            x = highway(x)
        return x

    # -- the inference path -----------------------------------------------------------------------

    @torch.no_grad()
    def encode_inference(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Each distinct row once, through the cache; equal to ``encode_plain`` up to rounding."""
        if char_ids.shape[0] == 0:
            return self.encode_plain(char_ids)
        vectors, inverse = self.encode_distinct(char_ids)
        return vectors[inverse]

    @torch.no_grad()
    def encode_distinct(self, char_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, P) vectors of the distinct rows of ``char_ids`` (N, 50) and, for each row, its index
        among them: ``vectors[inverse]`` is the encoding of ``char_ids``."""
        rows = char_ids.detach().cpu().numpy().astype(np.int16)
        keyed = np.ascontiguousarray(rows).view(np.dtype((np.void, rows.shape[1] * 2))).ravel()
        distinct, first, inverse = np.unique(keyed, return_index=True, return_inverse=True)
        keys = [k.tobytes() for k in distinct]
        use_cache = self.cache.capacity > 0 and not torch.is_autocast_enabled(char_ids.device.type)
        if use_cache:
            self.cache.validate((self.precision,) + self._weights_key())
            slots = self.cache.lookup(keys)
        else:
            slots = [-1] * len(keys)
        vectors = self.projection.weight.new_empty(len(keys), self.projection.out_features)
        hit = [i for i, s in enumerate(slots) if s >= 0]
        if hit:
            vectors[torch.tensor(hit, device=vectors.device)] = self.cache.gather([slots[i] for i in hit])
        missing = [i for i, s in enumerate(slots) if s < 0]
        if missing:
            miss_index = torch.tensor(missing, device=vectors.device)
            source_rows = torch.from_numpy(first[missing]).to(char_ids.device)
            if self.precision == torch.float32:
                computed = self._encode_distinct(char_ids[source_rows])
            else:
                with torch.autocast(char_ids.device.type, dtype=self.precision):
                    computed = self._encode_distinct(char_ids[source_rows])
            vectors[miss_index] = computed.to(vectors.dtype)
            if use_cache:
                self.cache.store([keys[i] for i in missing], vectors[miss_index])
        return vectors, torch.from_numpy(inverse.reshape(-1)).to(vectors.device)

    def _encode_distinct(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Encode rows in chunks of similar length, each cut to its longest token + one padding window.

        A token of L characters (marks included) has windows over its characters and, when
        L + width <= 50, identical all-padding windows; keeping L_max + max_width positions
        keeps every distinct window of every token in the chunk, so the max is unchanged.
        The chunks are shared between the two workers (``workers.run_pair``).
        """
        not_pad = char_ids != PAD_ID
        positions = torch.arange(1, char_ids.shape[1] + 1, device=char_ids.device)
        lengths = (not_pad * positions).amax(dim=1)  # index of the last non-padding id, + 1
        order = torch.argsort(lengths)
        out = self.projection.weight.new_empty(char_ids.shape[0], self.projection.out_features)
        starts = list(range(0, char_ids.shape[0], ENCODE_CHUNK))
        device = char_ids.device.type  # autocast is per thread: the helper takes the caller's
        autocast, autocast_dtype = torch.is_autocast_enabled(device), torch.get_autocast_dtype(device)
        fused = None if autocast or not self.fused_cnn else self._fused_weights(char_ids.device)

        def encode_chunks(worker: int) -> None:
            with torch.autocast(device, dtype=autocast_dtype, enabled=autocast):
                for start in starts[worker::2]:
                    rows = order[start : start + ENCODE_CHUNK]
                    longest = int(lengths[rows].max())
                    keep = max(min(MAX_CHARS_PER_TOKEN, longest + self.max_width), self.max_width)
                    if fused is not None and longest + self.max_width <= MAX_CHARS_PER_TOKEN:
                        out[rows] = self._encode_fused(char_ids[rows, :keep], fused)
                    else:
                        out[rows] = self.encode_plain(char_ids[rows, :keep]).to(out.dtype)

        run_pair(encode_chunks, parallel=char_ids.device.type == "cpu" and len(starts) > 1)
        return out

    def _fused_weights(self, device: torch.device) -> tuple | None:
        """The encoder's weights for ``_encode_fused``, packed for oneDNN (made once per version of
        the weights), or None where packed products are unavailable (the per-filter path runs).

        Every filter is zero-padded on the right to the widest width and all are stacked into one
        (n_filters, d * max_width) matrix, so the convolutions become one matrix product over the
        windows; each highway's carry and transform matrices are stacked into one.
        """
        if not packed.ready(device):
            return None

        def convert(_) -> tuple:
            filters = torch.cat([nn.functional.pad(conv.weight, (0, self.max_width - conv.kernel_size[0]))
                                 for conv in self.convolutions]).flatten(1)
            highways = [(packed.pack(torch.cat([h.carry.weight, h.transform.weight])),
                         torch.cat([h.carry.bias, h.transform.bias])) for h in self.highways]
            return (packed.pack(filters), torch.cat([conv.bias for conv in self.convolutions]), highways,
                    packed.pack(self.projection.weight))

        return packed.converted(self, "fused", list(self.parameters()), convert)

    def _encode_fused(self, char_ids: torch.Tensor, fused: tuple) -> torch.Tensor:
        """``encode_plain`` for (N, keep) ids whose last ``max_width`` positions are padding in every row,
        with all the convolutions as one matrix product over the windows.

        A filter of width w < max_width, padded with zeros, gives the same value at every window
        start up to ``keep - max_width``; the starts it loses lie wholly in the all-padding tail,
        and equal the window at the first all-padding start, which is kept. So the max over windows,
        and the output, are those of the plain path up to float rounding.
        """
        filters, filter_bias, highways, projection = fused
        n, keep = char_ids.shape
        starts = keep - self.max_width + 1
        windows = self.char_embedding(char_ids).unfold(1, self.max_width, 1)  # (N, starts, d, max_width)
        pooled = filter_bias.new_empty(n, filter_bias.shape[0])
        step = max(1, WINDOW_ROWS // starts)  # bounds the (windows, n_filters) map of one product
        for first in range(0, n, step):
            block = windows[first : first + step]
            maps = packed.linear(block.reshape(-1, windows.shape[2] * windows.shape[3]), filters, filter_bias)
            torch.amax(maps.view(block.shape[0], starts, -1), dim=1, out=pooled[first : first + step])
        x = self.activation(pooled)
        width = x.shape[1]
        for weights, bias in highways:
            both = packed.linear(x, weights, bias)
            gate = torch.sigmoid(both[:, :width])
            x = gate * torch.relu(both[:, width:]) + (1.0 - gate) * x
        return packed.linear(x, projection, self.projection.bias)

    def _weights_key(self) -> tuple:
        return tuple((p.data_ptr(), p._version, p.dtype, p.device) for p in self.parameters())


def _needs_grad(module: nn.Module, *inputs: torch.Tensor) -> bool:
    """Whether autograd would record this call (then only the plain, differentiable path may run)."""
    if not torch.is_grad_enabled():
        return False
    return any(p.requires_grad for p in module.parameters()) or any(x.requires_grad for x in inputs)
