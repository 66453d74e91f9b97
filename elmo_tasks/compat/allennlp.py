"""AllenNLP's ELMo API (``allennlp.modules.elmo``, the 0.9 ``ElmoEmbedder``...) on this toolkit's biLM.

A legacy script changes its import lines only::

    from elmo_tasks.compat.allennlp import Elmo, batch_to_ids   # was: from allennlp.modules.elmo import ...
    elmo = Elmo(options_file, weight_file, 2, dropout=0)
    out = elmo(batch_to_ids([["First", "sentence", "."], ["Another", "."]]))
    out["elmo_representations"]  # 2 x (2, 3, 2P) tensors; out["mask"] (2, 3) bool

The names: ``Elmo``, ``batch_to_ids``, ``ElmoTokenEmbedder``, ``ElmoEmbedder`` (here), ``_ElmoBiLm``,
``_ElmoCharacterEncoder``, ``remove_sentence_boundaries``, ``add_sentence_boundary_token_ids``
(``allennlp_bilm``), ``ELMoCharacterMapper``, ``ELMoTokenCharactersIndexer``, ``Token``
(``allennlp_indexer``) and ``ConfigurationError`` (this toolkit's ``UserError``). docs/allennlp-compat.md
lists what matches AllenNLP exactly and every difference; the main ones:

* **State.** AllenNLP's biLM is stateful: each batch row starts from the LSTM state that row ended
  with in the previous call, so the same sentence gets different vectors depending on what ran
  before. Here every call starts from a zero state by default, which gives AllenNLP's numbers for
  the first call after loading and deterministic ones after. ``stateful=True`` (on every class)
  carries the states by row exactly as AllenNLP does, and reproduces its numbers call after call;
  ``reset_states()`` (or AllenNLP's path ``elmo._elmo_lstm._elmo_lstm.reset_states()``) clears them.
* Masks are bool tensors (AllenNLP 0.9's are 0/1 int64).
* Model files are local paths or URLs (every file argument goes through ``allennlp_bilm.load_model_files``):
  a URL, such as the default of ``ElmoEmbedder()`` (AllenNLP's original model), is downloaded once into
  the cache (``elmo_tasks.download``), and a model's name (``ElmoEmbedder("small")``) takes its files.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch import nn

from elmo_tasks.bilm.char_ids import batch_to_ids as _batch_to_ids
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.compat.allennlp_bilm import (  # noqa: F401  (public names)
    DEFAULT_OPTIONS_FILE,
    DEFAULT_WEIGHT_FILE,
    _ElmoBiLm,
    _ElmoCharacterEncoder,
    add_sentence_boundary_token_ids,
    load_model_files,
    remove_sentence_boundaries,
)
from elmo_tasks.compat.allennlp_indexer import ELMoCharacterMapper, ELMoTokenCharactersIndexer, Token  # noqa: F401
from elmo_tasks.dump import write_dump
from elmo_tasks.embedder import Embedder
from elmo_tasks.errors import UserError
from elmo_tasks.modules import Dropout
from elmo_tasks.scalar_mix import ScalarMix

ConfigurationError = UserError  # what AllenNLP raises for a user's mistake; ``except ConfigurationError`` works
DEFAULT_BATCH_SIZE = 64
logger = logging.getLogger(__name__)


def batch_to_ids(batch: Sequence[Sequence[str]]) -> torch.Tensor:
    """Character ids (B, max_len, 50) of tokenised sentences, right-padded with zero tokens."""
    check_token_lists(batch, "batch_to_ids")
    return _batch_to_ids(batch)


def check_token_lists(batch: object, where: str) -> None:
    """A one-line error when a plain string stands where a list of token lists is expected."""
    if isinstance(batch, str):
        raise UserError(f"{where} takes a list of tokenised sentences (lists of strings), not a string: "
                        "use [sentence.split()]")
    for index, sentence in enumerate(batch):  # type: ignore[arg-type]
        if isinstance(sentence, str):
            raise UserError(f"{where}: sentence {index} is a string, not a list of tokens: use {sentence.split()!r}")


class Elmo(nn.Module):
    """AllenNLP's ``Elmo``: one biLM run, ``num_output_representations`` independent scalar mixes.

    The mixes see the boundary-inclusive layers and mask, as AllenNLP's (so ``do_layer_norm``
    counts ``<S>``/``</S>`` too); the boundaries are then removed unless ``keep_sentence_boundaries``.
    ``module`` replaces the biLM (files then None): anything with ``num_layers`` whose
    ``forward(char_ids, word_ids)`` returns ``{"activations", "mask"}``, such as an ``_ElmoBiLm``.
    """

    def __init__(self, options_file: str | Path | None, weight_file: str | Path | None,
                 num_output_representations: int, requires_grad: bool = False, do_layer_norm: bool = False,
                 dropout: float = 0.5, vocab_to_cache: list[str] | None = None, keep_sentence_boundaries: bool = False,
                 scalar_mix_parameters: list[float] | None = None, module: nn.Module | None = None,
                 stateful: bool = False) -> None:
        super().__init__()
        if module is not None:
            if options_file is not None or weight_file is not None:
                raise UserError("Elmo(module=...) takes options_file=None and weight_file=None: the module is the biLM")
            if not hasattr(module, "num_layers"):
                raise UserError(f"Elmo(module=...): {type(module).__name__} has no num_layers (use an _ElmoBiLm)")
            self._elmo_lstm = module
        else:
            self._elmo_lstm = _ElmoBiLm(options_file, weight_file, requires_grad=requires_grad,
                                        vocab_to_cache=vocab_to_cache, stateful=stateful)
        self._has_cached_vocab = vocab_to_cache is not None
        self._keep_sentence_boundaries = keep_sentence_boundaries
        self._dropout = Dropout(p=dropout)
        self._scalar_mixes: list[ScalarMix] = []
        for k in range(num_output_representations):  # registered as AllenNLP names them
            mix = ScalarMix(self._elmo_lstm.num_layers, do_layer_norm=do_layer_norm, fixed=scalar_mix_parameters)
            self.add_module(f"scalar_mix_{k}", mix)
            self._scalar_mixes.append(mix)

    @property
    def bilm(self) -> BiLM | None:
        """This toolkit's biLM inside (None for a ``module`` that is not an ``_ElmoBiLm``)."""
        return getattr(self._elmo_lstm, "bilm", None)

    def get_output_dim(self) -> int:
        return self._elmo_lstm.get_output_dim()

    def reset_states(self, mask: torch.Tensor | None = None) -> None:
        """Clear the carried LSTM states (all, or the rows where ``mask`` is true); ``stateful=True`` only."""
        self._elmo_lstm._elmo_lstm.reset_states(mask)

    def forward(self, inputs: torch.Tensor, word_inputs: torch.Tensor | None = None) -> dict:
        """``{"elmo_representations": [(…, T, 2P)] * N, "mask": (…, T) bool}`` for (…, T, 50) character ids
        (T + 2 with ``keep_sentence_boundaries``); ``word_inputs`` (…, T) are word ids into ``vocab_to_cache``."""
        if not isinstance(inputs, torch.Tensor) or inputs.dim() < 3 or inputs.shape[-1] != 50:
            shape = tuple(inputs.shape) if isinstance(inputs, torch.Tensor) else type(inputs).__name__
            raise UserError(f"Elmo takes character ids of shape (batch, timesteps, 50), got {shape}")
        leading = inputs.shape[:-2]
        flat_words = None
        if word_inputs is not None and not self._has_cached_vocab:
            logger.warning("Word inputs were passed to Elmo but it has no cached vocabulary (vocab_to_cache): ignored")
        elif word_inputs is not None:
            leading = word_inputs.shape[:-1]
            flat_words = word_inputs.reshape(-1, word_inputs.shape[-1])
        out = self._elmo_lstm(inputs.reshape(-1, *inputs.shape[-2:]), flat_words)
        layers, mask = torch.stack(list(out["activations"]), dim=1), out["mask"].to(torch.bool)
        kept_mask = mask if self._keep_sentence_boundaries else remove_sentence_boundaries(mask, mask)[1]
        representations = []
        for mix in self._scalar_mixes:
            representation = mix(layers, mask)  # over the boundary-inclusive layers, as AllenNLP
            if not self._keep_sentence_boundaries:
                representation = remove_sentence_boundaries(representation, mask)[0]
            representations.append(self._dropout(representation))
        return {"elmo_representations": [r.reshape(*leading, *r.shape[1:]) for r in representations],
                "mask": kept_mask.reshape(*leading, kept_mask.shape[-1])}


class ElmoTokenEmbedder(nn.Module):
    """AllenNLP's ``ElmoTokenEmbedder`` as a plain module: one ELMo representation (B, T, 2P), optionally
    projected to ``projection_dim`` by a Linear layer (with bias) per token. The files default to
    AllenNLP's original model (downloaded once)."""

    def __init__(self, options_file: str | Path | None = DEFAULT_OPTIONS_FILE,
                 weight_file: str | Path | None = DEFAULT_WEIGHT_FILE, do_layer_norm: bool = False,
                 dropout: float = 0.5, requires_grad: bool = False, projection_dim: int | None = None,
                 vocab_to_cache: list[str] | None = None, scalar_mix_parameters: list[float] | None = None,
                 stateful: bool = False) -> None:
        super().__init__()
        self._elmo = Elmo(options_file, weight_file, 1, do_layer_norm=do_layer_norm, dropout=dropout,
                          requires_grad=requires_grad, vocab_to_cache=vocab_to_cache,
                          scalar_mix_parameters=scalar_mix_parameters, stateful=stateful)
        self._projection = nn.Linear(self._elmo.get_output_dim(), projection_dim) if projection_dim else None
        self.output_dim = projection_dim or self._elmo.get_output_dim()

    def get_output_dim(self) -> int:
        return self.output_dim

    def forward(self, inputs: torch.Tensor, word_inputs: torch.Tensor | None = None) -> torch.Tensor:
        representation = self._elmo(inputs, word_inputs)["elmo_representations"][0]
        return self._projection(representation) if self._projection is not None else representation


def empty_embedding(dim: int) -> np.ndarray:
    return np.zeros((3, 0, dim), dtype=np.float32)


class ElmoEmbedder:
    """AllenNLP 0.9's ``ElmoEmbedder``: the frozen biLM's three layers as numpy arrays.

    The files default to AllenNLP's original model (downloaded once into the cache). ``elmo_bilm`` is
    the ``_ElmoBiLm`` AllenNLP's has (sharing the weights); the embedding methods run this toolkit's
    batching ``Embedder`` on the same biLM.
    """

    def __init__(self, options_file: str | Path | None = DEFAULT_OPTIONS_FILE,
                 weight_file: str | Path | None = DEFAULT_WEIGHT_FILE, cuda_device: int = -1,
                 stateful: bool = False) -> None:
        self.elmo_bilm = _ElmoBiLm(options_file, weight_file, stateful=stateful)
        self.embedder = Embedder(self.elmo_bilm.bilm)
        self.cuda_device = cuda_device
        if cuda_device >= 0:
            self.elmo_bilm.to(f"cuda:{cuda_device}")
            self.embedder.to(f"cuda:{cuda_device}")

    def reset_states(self) -> None:
        self.embedder.bilm.reset_states()

    def batch_to_embeddings(self, batch: list[list[str]]) -> tuple[torch.Tensor, torch.Tensor]:
        """Activations (B, 3, T, 2P) and mask (B, T), as tensors."""
        check_token_lists(batch, "batch_to_embeddings")
        out = self.embedder.layers(batch)
        return out.layers, out.mask

    def embed_sentence(self, sentence: list[str]) -> np.ndarray:
        """(3, n, 2P) for one tokenised sentence."""
        check_token_lists([sentence], "embed_sentence")
        return self.embed_batch([sentence])[0]

    def embed_batch(self, batch: list[list[str]]) -> list[np.ndarray]:
        """One (3, n, 2P) array per sentence."""
        check_token_lists(batch, "embed_batch")
        return self.embedder.embed_batch(batch)

    def embed_sentences(self, sentences: Iterable[list[str]], batch_size: int = DEFAULT_BATCH_SIZE) -> Iterator[np.ndarray]:
        """Consecutive groups of ``batch_size`` sentences, in order (as AllenNLP batches them)."""
        group: list[list[str]] = []
        for sentence in sentences:
            group.append(sentence)
            if len(group) == batch_size:
                yield from self.embed_batch(group)
                group = []
        if group:
            yield from self.embed_batch(group)

    def embed_file(self, input_file: IO | str | Path, output_file_path: str | Path, output_format: str = "all",
                   batch_size: int = DEFAULT_BATCH_SIZE, forget_sentences: bool = False,
                   use_sentence_keys: bool = False) -> None:
        """AllenNLP's dump: one dataset per line (or per sentence with ``use_sentence_keys``) and, unless
        forgetting or using sentence keys, ``sentence_to_index``; blank lines are an error."""
        if isinstance(input_file, (str, Path)):
            with open(input_file, encoding="utf-8") as handle:
                lines = [line.strip() for line in handle]
            name = str(input_file)
        else:
            lines = [line.strip() for line in input_file]
            name = getattr(input_file, "name", "input")
        blank = [i for i, line in enumerate(lines) if not line]
        if blank:
            raise UserError(f"{name}: empty lines at indexes {blank[:10]}{' ...' if len(blank) > 10 else ''}: remove them")
        arrays = self.embed_sentences((line.split() for line in lines), batch_size)
        write_dump(output_file_path, zip(range(len(lines)), lines, arrays), output_format,
                   use_sentence_keys=use_sentence_keys, sentence_index=not forget_sentences)
