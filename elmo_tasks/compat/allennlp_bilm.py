"""AllenNLP's lower-level ELMo modules, ``_ElmoCharacterEncoder`` and ``_ElmoBiLm``, on this toolkit's biLM.

Both keep the sentence boundaries, as AllenNLP's do: ``_ElmoCharacterEncoder`` returns
``{"token_embedding": (B, T+2, P), "mask": (B, T+2)}`` and ``_ElmoBiLm`` returns
``{"activations": [3 x (B, T+2, 2P)], "mask": (B, T+2)}`` for (B, T, 50) character ids;
``remove_sentence_boundaries`` strips them. Masks are bool (AllenNLP 0.9's are 0/1 int64; both
sum and multiply alike). Frozen modules run the inference engine; ``requires_grad=True`` runs the
plain differentiable model whenever gradients are on (the same numbers to ~1e-6).

``vocab_to_cache`` caches the character CNN's vector of every listed word (``vocab_to_cache[i]``
has word id ``i``; id 0 is padding, its row zero). ``forward(char_ids, word_ids)`` then looks
word ids up instead of running the CNN. Unlike AllenNLP, a word id is trusted only where the
position's character ids spell the cached word (or are all zero: word ids alone): an
out-of-vocabulary word mapped to ``@@UNKNOWN@@``, or an id beyond the table, is encoded from its
own characters, so cached and uncached runs give the same vectors.

The state of a ``stateful=True`` biLM lives in ``_elmo_lstm`` (this toolkit's ``BiLM``), so
AllenNLP's ``elmo._elmo_lstm._elmo_lstm.reset_states()`` works as written.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
from torch import nn

from elmo_tasks.bilm.char_ids import BOS_TOKEN, EOS_TOKEN, MAX_CHARS_PER_TOKEN, token_to_char_ids
from elmo_tasks.bilm.inference import InferenceEngine
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.errors import UserError
from elmo_tasks.model_sources import fetch_pair, resolve_remote
from elmo_tasks.models.registry import find, is_url

# AllenNLP 0.9's defaults (allennlp.commands.elmo): the original model, 2x4096_512_2048cnn_2xhighway
_ORIGINAL = "https://allennlp.s3.amazonaws.com/models/elmo/2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway"
DEFAULT_OPTIONS_FILE = f"{_ORIGINAL}_options.json"
DEFAULT_WEIGHT_FILE = f"{_ORIGINAL}_weights.hdf5"


def load_model_files(options_file: str | Path | None, weight_file: str | Path | None, stateful: bool = False) -> BiLM:
    """The one place the compat's ``options_file``/``weight_file`` arguments become a biLM (frozen): local
    paths, URLs (downloaded once into the cache, checked before use), or, flair-style, a model's name
    as ``options_file`` (``"original"``, ``"small"``...; ``weight_file`` then None or left at its default)."""
    for name, value in (("options_file", options_file), ("weight_file", weight_file)):
        if value is None and not (name == "weight_file" and _is_name(options_file)):
            raise UserError(f"{name} is None: give both model files (or Elmo(None, None, ..., module=a_bilm))")
    if _is_name(options_file):
        if weight_file not in (None, DEFAULT_WEIGHT_FILE, options_file):
            raise UserError(f"options_file {options_file!r} names a model; its weights come with it: give "
                            f"weight_file=None (got {weight_file})")
        folder = resolve_remote(str(options_file))
        options_file, weight_file = folder / "options.json", folder / "weights.hdf5"
    else:
        options_file, weight_file = fetch_pair(options_file, weight_file)  # type: ignore[arg-type]
    return load_bilm(options_file, weight_file, stateful=stateful)


def _is_name(value: object) -> bool:
    """A registry name (not a URL, not an existing file) given where a file is expected."""
    return isinstance(value, str) and not is_url(value) and not Path(value).exists() and find(value) is not None


def _check_char_ids(inputs: torch.Tensor, where: str) -> None:
    if not isinstance(inputs, torch.Tensor) or inputs.dim() != 3 or inputs.shape[-1] != MAX_CHARS_PER_TOKEN:
        shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
        raise UserError(f"{where} takes character ids of shape (batch, timesteps, 50), got {shape}")


def remove_sentence_boundaries(tensor: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T+2, ...) with ``<S>`` at 0 and ``</S>`` after the last word -> (B, T, ...) words only, and their mask."""
    lengths = mask.sum(dim=1) - 2
    width = tensor.shape[1] - 2
    new_mask = torch.arange(width, device=tensor.device).unsqueeze(0) < lengths.unsqueeze(1)
    inner = tensor[:, 1 : width + 1]
    keep = new_mask.reshape(*new_mask.shape, *([1] * (tensor.dim() - 2)))
    return torch.where(keep, inner, torch.zeros((), dtype=tensor.dtype, device=tensor.device)), new_mask


def add_sentence_boundary_token_ids(tensor: torch.Tensor, mask: torch.Tensor, sentence_begin_token: object,
                                    sentence_end_token: object) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids or (B, T, D) vectors -> (B, T+2, ...) with the begin token at 0 and the end token after
    each row's last position (``mask``'s count); the new mask covers words and both boundaries."""
    lengths = mask.sum(dim=1).long()
    batch, width = tensor.shape[:2]
    out = tensor.new_zeros(batch, width + 2, *tensor.shape[2:])
    out[:, 1 : width + 1] = tensor
    out[:, 0] = torch.as_tensor(sentence_begin_token, dtype=tensor.dtype, device=tensor.device)
    out[torch.arange(batch, device=tensor.device), lengths + 1] = torch.as_tensor(
        sentence_end_token, dtype=tensor.dtype, device=tensor.device)
    return out, torch.arange(width + 2, device=tensor.device).unsqueeze(0) < (lengths + 2).unsqueeze(1)


class _ElmoCharacterEncoder(nn.Module):
    """Context-independent token vectors with ``<S>``/``</S>`` added: ``{"token_embedding": (B, T+2, P),
    "mask": (B, T+2)}`` for (B, T, 50) character ids; 0 at padding (AllenNLP leaves the vector of an
    all-padding token there; it is masked downstream)."""

    def __init__(self, options_file: str | Path | None, weight_file: str | Path | None, requires_grad: bool = False,
                 *, bilm: BiLM | None = None, engine: InferenceEngine | None = None) -> None:
        super().__init__()
        if bilm is None:  # a standalone encoder: only the token encoder may train
            bilm = load_model_files(options_file, weight_file)
            bilm.token_encoder.requires_grad_(requires_grad)
        self._bilm = bilm
        self._engine = engine or InferenceEngine(bilm)
        self.requires_grad = requires_grad
        self.output_dim = bilm.options.projection_dim

    def get_output_dim(self) -> int:
        return self.output_dim

    def forward(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        _check_char_ids(inputs, "_ElmoCharacterEncoder")
        inputs = inputs.to(self._bilm.bos_ids.device)
        _, ids, _, mask = self._bilm.with_boundaries(inputs)
        if self.requires_grad and torch.is_grad_enabled():
            vectors = self._bilm.encode_tokens(ids, mask)
        else:
            weight = self._bilm.token_encoder.projection.weight
            vectors = weight.new_zeros(*mask.shape, self.output_dim)
            if bool(mask.any()):
                vectors[mask] = self._engine.encode_tokens(ids[mask]).to(weight.dtype)
        return {"mask": mask, "token_embedding": vectors}


class _ElmoBiLm(nn.Module):
    """The biLM's layers with the sentence boundaries kept: ``{"activations": [L x (B, T+2, 2P)], "mask"}``."""

    def __init__(self, options_file: str | Path | None, weight_file: str | Path | None, requires_grad: bool = False,
                 vocab_to_cache: Sequence[str] | None = None, stateful: bool = False) -> None:
        super().__init__()
        self._elmo_lstm = load_model_files(options_file, weight_file, stateful=stateful).requires_grad_(requires_grad)
        self._requires_grad = requires_grad
        self._engine = InferenceEngine(self._elmo_lstm)  # the fast path, whenever no gradient is needed
        self.num_layers = self._elmo_lstm.num_layers
        self._word_embedding: nn.Embedding | None = None
        for name in ("_bos_embedding", "_eos_embedding", "_vocab_char_ids"):
            self.register_buffer(name, None, persistent=False)
        if vocab_to_cache:
            self.create_cached_cnn_embeddings(list(vocab_to_cache))

    @property
    def bilm(self) -> BiLM:
        return self._elmo_lstm

    @property
    def _token_embedder(self) -> _ElmoCharacterEncoder:
        """AllenNLP's character encoder of this biLM (sharing its weights)."""
        return _ElmoCharacterEncoder(None, None, self._requires_grad, bilm=self._elmo_lstm, engine=self._engine)

    def get_output_dim(self) -> int:
        return self._elmo_lstm.output_dim

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda()/.half(): the engine's caches belong to the old weights
        self._engine.clear_caches()
        return super()._apply(fn, *args, **kwargs)

    def create_cached_cnn_embeddings(self, tokens: Sequence[str]) -> None:
        """Encode ``tokens`` once; word id ``i`` then stands for ``tokens[i]`` (id 0: padding, a zero row)."""
        words = list(tokens)
        bad = next((w for w in words if not isinstance(w, str)), None)
        if bad is not None or not words:
            raise UserError(f"vocab_to_cache must be a non-empty list of strings, found {bad!r}")
        device = self._elmo_lstm.bos_ids.device
        ids = torch.tensor([token_to_char_ids(w) for w in [BOS_TOKEN, EOS_TOKEN, *words]], device=device)
        vectors = self._engine.encode_tokens(ids)
        table = vectors[2:].clone()
        table[0] = 0
        self._word_embedding = nn.Embedding(len(words), vectors.shape[1], padding_idx=0, _weight=table)
        self._word_embedding.weight.requires_grad_(self._requires_grad)
        self._bos_embedding, self._eos_embedding = vectors[0].clone(), vectors[1].clone()
        self._vocab_char_ids = ids[2:].to(torch.int16)

    def forward(self, inputs: torch.Tensor, word_inputs: torch.Tensor | None = None) -> dict:
        _check_char_ids(inputs, "_ElmoBiLm")
        device = self._elmo_lstm.bos_ids.device
        inputs = inputs.to(device)
        grad = self._requires_grad and torch.is_grad_enabled()
        if self._word_embedding is not None and word_inputs is not None:
            table, rows, full_lengths = self._cached_token_rows(inputs, word_inputs.to(device), grad)
            if grad:
                out = self._elmo_lstm.contextualize(table[rows], full_lengths, keep_boundaries=True)
            else:
                out = self._engine.contextualize(table, rows, full_lengths, keep_boundaries=True)
        else:
            out = self._elmo_lstm(inputs, keep_boundaries=True) if grad else self._engine(inputs, keep_boundaries=True)
        return {"activations": list(out.layers.unbind(dim=1)), "mask": out.mask}

    def _cached_token_rows(self, inputs: torch.Tensor, word_ids: torch.Tensor,
                           grad: bool) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """A table of token vectors, each position's row in it (B, T+2) and the lengths with boundaries.

        Rows: the cached words, then ``<S>``, ``</S>``, a zero row (padding), then the vectors of the
        positions whose word id cannot be trusted, encoded from their characters.
        """
        if word_ids.shape != inputs.shape[:2]:
            raise UserError(f"word ids {tuple(word_ids.shape)} must match the character ids' batch and length "
                            f"{tuple(inputs.shape[:2])}")
        assert self._word_embedding is not None and self._vocab_char_ids is not None
        word_ids = word_ids.long()
        vocab = self._word_embedding.num_embeddings
        mask = word_ids > 0
        has_chars = (inputs > 0).any(dim=-1)
        in_table = mask & (word_ids < vocab)
        spelled = (self._vocab_char_ids[torch.where(in_table, word_ids, 0)].long() == inputs).all(dim=-1)
        cached = in_table & (spelled | ~has_chars)
        fallback = mask & ~cached
        if bool((fallback & ~has_chars).any()):
            row, col = (fallback & ~has_chars).nonzero()[0].tolist()
            raise UserError(f"word id {int(word_ids[row, col])} at ({row}, {col}) is beyond the cached vocabulary "
                            f"({vocab} words) and has no character ids: pass the character ids too")
        weight = self._word_embedding.weight
        if bool(fallback.any()):
            chars = inputs[fallback]
            extra = self._elmo_lstm.token_encoder(chars) if grad else self._engine.encode_tokens(chars)
        else:
            extra = weight.new_zeros(0, weight.shape[1])
        table = torch.cat([weight, torch.stack([self._bos_embedding, self._eos_embedding, weight.new_zeros(weight.shape[1])]),
                           extra.to(weight.dtype)])
        batch, width = word_ids.shape
        lengths = mask.sum(dim=1)
        inner = torch.where(cached, word_ids, vocab + 2)
        inner[fallback] = vocab + 3 + torch.arange(int(fallback.sum()), device=inner.device)
        rows = torch.full((batch, width + 2), vocab + 2, dtype=torch.long, device=inner.device)
        rows[:, 0] = vocab
        rows[:, 1 : width + 1] = inner
        rows[torch.arange(batch, device=inner.device), lengths + 1] = vocab + 1
        return table, rows, lengths + 2
