"""The inference engine: a ``BiLM``'s outputs for embedding text, much faster, no autograd.

``InferenceEngine(bilm, InferenceSettings(...))`` computes what ``bilm(char_ids)`` computes (up to
float rounding; exactly in ``bfloat16`` it is not) and owns everything that makes it fast, so that
the model stays the plain module:

* each distinct token of a batch encoded once, its convolutions cut to its characters
  (``distinct_tokens``), through a bounded token cache across batches (``token_cache``);
* on a CPU with oneDNN, the character CNN's filters as one product (``fused_cnn``) and every LSTM
  product on prepacked weights (``packed``), kept in the engine's ``converted`` map;
* the first LSTM layer's input gates once per distinct token, both directions at once, in place
  (``fast_lstm``), on two worker threads with half of torch's threads each (``workers``);
* optionally, bfloat16 matrix products (an opt-in speed/accuracy trade; results stay float32).

Every trick is one field of ``InferenceSettings``, so a benchmark takes each away by changing
one field. Stateful models (``BiLM(stateful=True)``) carry their states through the engine as
through ``BiLM.forward``. One engine serves one thread (its caches are not thread-safe).
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass, replace

import torch

from elmo_tasks.bilm import fused_cnn, packed
from elmo_tasks.bilm.distinct_tokens import distinct_rows, encode_by_length, token_lengths
from elmo_tasks.bilm.fast_lstm import run_bidirectional
from elmo_tasks.bilm.model import BiLM, BiLMOutput, output_span, sort_by_length
from elmo_tasks.bilm.token_cache import DEFAULT_TOKEN_CACHE_SIZE, TokenVectorCache
from elmo_tasks.bilm.workers import split_threads

PRECISIONS = {"float32": torch.float32, "bfloat16": torch.bfloat16}
ENCODE_CHUNK = 512  # distinct tokens per CNN call: bounds the conv maps (about 180 KB per token)


@dataclass(frozen=True)
class InferenceSettings:
    """How the engine runs; each field switches one trick (all on by default, but ``precision``).

    precision: ``float32`` (exact) or ``bfloat16`` (the matrix products; faster on CPUs with
        bfloat16 units, not exact).
    token_cache_size: distinct tokens whose vectors are kept across calls (0: no cache).
    fused_cnn: the character CNN's filters as one packed product (needs ``packed_products``).
    packed_products: matrix products on weights prepacked for oneDNN (CPU); else ``torch.mm``.
    workers: 2 runs the two LSTM directions (and halves of the CNN's tokens) on two threads with
        half of torch's threads each; 1 runs everything on the calling thread.
    sort_by_length: ``Embedder`` batches sentences of similar length (stateless models only).
    fast_forward: the engine's own forward (distinct tokens, joint in-place LSTM); False runs
        ``BiLM.forward`` itself, the plain path (the fields above but ``sort_by_length`` then do nothing).
    """

    precision: str = "float32"
    token_cache_size: int = DEFAULT_TOKEN_CACHE_SIZE
    fused_cnn: bool = True
    packed_products: bool = True
    workers: int = 2
    sort_by_length: bool = True
    fast_forward: bool = True

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")
        if self.token_cache_size < 0:
            raise ValueError(f"token_cache_size must be >= 0, got {self.token_cache_size}")
        if self.workers not in (1, 2):
            raise ValueError(f"workers must be 1 or 2, got {self.workers}")

    @property
    def dtype(self) -> torch.dtype:
        return PRECISIONS[self.precision]

    @classmethod
    def every_trick_off(cls) -> "InferenceSettings":
        """The engine's forward with no cache, no packed or fused products, one thread, no sorting."""
        return cls(token_cache_size=0, fused_cnn=False, packed_products=False, workers=1, sort_by_length=False)


class InferenceEngine:
    """Runs a ``BiLM`` for inference: ``engine(char_ids)`` equals ``bilm(char_ids)`` up to rounding.

    ``bilm`` is used as it is (its weights, device, states): load it, move the engine with
    ``engine.to(device)``, change settings with ``engine.set(field=value)``.
    """

    def __init__(self, bilm: BiLM, settings: InferenceSettings | None = None) -> None:
        self.bilm = bilm
        self.settings = settings or InferenceSettings()
        self.token_cache = TokenVectorCache(self.settings.token_cache_size)
        self.converted = packed.ConvertedWeights()  # packed / low-precision weight copies

    def set(self, **changes: object) -> "InferenceEngine":
        """Replace some settings (``engine.set(precision="bfloat16")``, validated as in the constructor).

        Cached token vectors are kept per precision and weights, converted weights per kind, so
        nothing computed under other settings is reused wrongly; a new cache size empties the cache.
        """
        self.settings = replace(self.settings, **changes)
        if self.settings.token_cache_size != self.token_cache.capacity:
            self.token_cache = TokenVectorCache(self.settings.token_cache_size)
        return self

    def to(self, device: str | torch.device) -> "InferenceEngine":
        """Move the biLM (e.g. to a GPU); the caches, which belong to the old device, are emptied."""
        self.bilm.to(device)
        self.clear_caches()
        return self

    def clear_caches(self) -> None:
        """Forget cached token vectors and converted weights (they are remade on demand)."""
        self.token_cache.clear()
        self.converted.clear()

    @property
    def device(self) -> torch.device:
        return next(self.bilm.parameters()).device

    def _parallel(self, device: torch.device) -> bool:
        return self.settings.workers == 2 and device.type == "cpu"

    # -- token vectors ----------------------------------------------------------------------------

    @torch.no_grad()
    def encode_tokens(self, char_ids: torch.Tensor) -> torch.Tensor:
        """(N, P) token vectors of (N, 50) ids, each distinct row encoded once (or taken from the cache)."""
        if char_ids.shape[0] == 0 or not self.settings.fast_forward:
            return self.bilm.token_encoder(char_ids)
        vectors, inverse = self.encode_distinct(char_ids)
        return vectors[inverse]

    @torch.no_grad()
    def encode_distinct(self, char_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(U, P) vectors of the distinct rows of ``char_ids`` (N, 50) and, for each row, its index
        among them: ``vectors[inverse]`` is the encoding of ``char_ids``."""
        encoder = self.bilm.token_encoder
        keys, first, inverse = distinct_rows(char_ids)
        cache = self.token_cache
        use_cache = cache.capacity > 0 and not torch.is_autocast_enabled(char_ids.device.type)
        if use_cache:
            cache.validate((self.settings.precision,) + tuple(
                (p.data_ptr(), p._version, p.dtype, p.device) for p in encoder.parameters()))
            slots = cache.lookup(keys)
        else:
            slots = [-1] * len(keys)
        vectors = encoder.projection.weight.new_empty(len(keys), encoder.projection.out_features)
        hit = [i for i, s in enumerate(slots) if s >= 0]
        if hit:
            vectors[torch.tensor(hit, device=vectors.device)] = cache.gather([slots[i] for i in hit])
        missing = [i for i, s in enumerate(slots) if s < 0]
        if missing:
            miss_index = torch.tensor(missing, device=vectors.device)
            source_rows = torch.from_numpy(first[missing]).to(char_ids.device)
            vectors[miss_index] = self._encode_by_length(char_ids[source_rows]).to(vectors.dtype)
            if use_cache:
                cache.store([keys[i] for i in missing], vectors[miss_index])
        return vectors, inverse

    def _encode_by_length(self, char_ids: torch.Tensor) -> torch.Tensor:
        """Distinct rows through the encoder in length groups (``distinct_tokens.encode_by_length``),
        each group by the fused product where it applies, else the per-filter encoder."""
        encoder = self.bilm.token_encoder
        device = char_ids.device.type
        low = self.settings.dtype != torch.float32
        outer = torch.is_autocast_enabled(device)  # autocast is per thread: the workers take the caller's
        autocast_dtype = self.settings.dtype if low else torch.get_autocast_dtype(device)
        fused = None
        if self.settings.fused_cnn and self.settings.packed_products and not (low or outer):
            fused = fused_cnn.fused_weights(encoder, self.converted)

        def encode(ids: torch.Tensor) -> torch.Tensor:
            if fused is not None and fused_cnn.has_padding_tail(encoder, ids):
                return fused_cnn.encode_fused(encoder, ids, fused)
            with torch.autocast(device, dtype=autocast_dtype, enabled=low or outer):
                return encoder(ids)

        parallel = self._parallel(char_ids.device)
        # the fused product takes the tokens that leave a padding tail on their own, the per-filter
        # encoder the longer ones: a token's path, and so its vector, never depends on its batch
        # (a group mixing both went per-filter whole: vectors 2.6e-6 apart, kept by the token cache)
        short = None if fused is None else token_lengths(char_ids) + encoder.max_width <= char_ids.shape[1]
        if short is None or bool(short.all()) or not bool(short.any()):
            return encode_by_length(encode, char_ids, encoder.max_width, ENCODE_CHUNK, parallel=parallel)
        out = encoder.projection.weight.new_empty(char_ids.shape[0], encoder.projection.out_features)
        for rows in (short, ~short):
            out[rows] = encode_by_length(encode, char_ids[rows], encoder.max_width, ENCODE_CHUNK,
                                         parallel=parallel).to(out.dtype)
        return out

    # -- the whole model --------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(self, char_ids: torch.Tensor, keep_boundaries: bool = False) -> BiLMOutput:
        """Representation layers for (B, T, 50) character ids of words, as ``BiLM.forward``."""
        if not self.settings.fast_forward or char_ids.shape[0] == 0:
            return self.bilm(char_ids, keep_boundaries)
        with split_threads() if self._parallel(char_ids.device) else nullcontext():
            bilm = self.bilm
            _, ids, full_lengths, full_mask = bilm.with_boundaries(char_ids)
            # the batch's distinct tokens, plus a zero row for padding positions
            distinct, inverse = self.encode_distinct(ids[full_mask])
            table = torch.cat([distinct, distinct.new_zeros(1, distinct.shape[1])])
            position_rows = torch.full(full_mask.shape, distinct.shape[0], dtype=torch.long, device=ids.device)
            position_rows[full_mask] = inverse
            return self._contextualize(table, position_rows, full_lengths, keep_boundaries)

    @torch.no_grad()
    def contextualize(self, table: torch.Tensor, position_rows: torch.Tensor, full_lengths: torch.Tensor,
                      keep_boundaries: bool = False) -> BiLMOutput:
        """``BiLM.contextualize`` of the token vectors ``table[position_rows]`` (B, T+2, P), boundaries
        included; each row of ``table`` goes through the first layer's input product once."""
        if not self.settings.fast_forward or position_rows.shape[0] == 0:
            return self.bilm.contextualize(table[position_rows], full_lengths, keep_boundaries)
        with split_threads() if self._parallel(table.device) else nullcontext():
            return self._contextualize(table, position_rows, full_lengths, keep_boundaries)

    def _contextualize(self, table: torch.Tensor, position_rows: torch.Tensor, full_lengths: torch.Tensor,
                       keep_boundaries: bool) -> BiLMOutput:
        bilm = self.bilm
        batch, steps = position_rows.shape
        p = table.shape[1]
        device = position_rows.device

        order, restore, sorted_lengths, batch_sizes = sort_by_length(full_lengths)

        # time-major rows of the table: [:, :, 0] forward, [:, :, 1] reversed within each row's length
        forward_rows = position_rows[order].t()  # (T+2, B)
        positions = torch.arange(steps, device=device).unsqueeze(1)
        row_lengths = sorted_lengths.unsqueeze(0)
        reverse = torch.where(positions < row_lengths, row_lengths - 1 - positions, positions)  # (T+2, B)
        token_index = torch.stack([forward_rows, forward_rows.gather(0, reverse)], dim=2)

        initial = [(h[order], c[order]) for h, c in bilm.initial_states(batch, table)]
        outputs, finals = run_bidirectional(bilm.forward_lstm, bilm.backward_lstm, None, batch_sizes, initial,
                                            self.converted, matmul_dtype=self.settings.dtype,
                                            token_rows=(table, token_index), use_packed=self.settings.packed_products,
                                            parallel=self._parallel(device))
        if bilm.stateful:
            bilm.store_states([(h[restore], c[restore]) for h, c in finals])

        span, mask = output_span(steps, full_lengths, keep_boundaries)
        width = mask.shape[1]
        keep = mask.unsqueeze(2).to(table.dtype)
        layers = table.new_empty(batch, bilm.num_layers, width, 2 * p)
        layers[:, 0, :, :p] = table[position_rows[:, span]] * keep
        layers[:, 0, :, p:] = layers[:, 0, :, :p]
        back_index = reverse[span].unsqueeze(2).expand(-1, -1, p)
        for index, out in enumerate(outputs, start=1):
            layer = layers[:, index].view(batch, width, 2, p)
            forward_part = out[span, :, 0]  # (width, B, P), sorted rows
            backward_part = out[:, :, 1].gather(0, back_index)  # back to the forward frame
            layer[:, :, 0] = forward_part.transpose(0, 1)[restore]
            layer[:, :, 1] = backward_part.transpose(0, 1)[restore]
            layers[:, index] *= keep
        return BiLMOutput(layers=layers, mask=mask)
