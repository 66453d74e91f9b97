"""AllenNLP's ELMo API (``allennlp.modules.elmo`` and the 0.9 ``ElmoEmbedder``) on this toolkit's biLM.

A legacy script changes its import line only::

    from elmo_tasks.compat.allennlp import Elmo, batch_to_ids   # was: from allennlp.modules.elmo import ...
    elmo = Elmo(options_file, weight_file, 2, dropout=0)
    out = elmo(batch_to_ids([["First", "sentence", "."], ["Another", "."]]))
    out["elmo_representations"]  # 2 x (2, 3, 2P) tensors; out["mask"] (2, 3) bool

Differences from AllenNLP, all deliberate:

* **State.** AllenNLP's biLM is stateful: each batch row starts from the LSTM state that row ended
  with in the previous call, so the same sentence gets different vectors depending on what ran
  before. Here every call starts from a zero state by default, which gives AllenNLP's numbers for
  the first call after loading and deterministic ones after. ``stateful=True`` (on ``Elmo`` and
  ``ElmoEmbedder``) carries the states by row exactly as AllenNLP does, and reproduces its numbers
  call after call; ``reset_states()`` clears them.
* ``requires_grad=True`` trains the whole biLM through its plain differentiable path; frozen (the
  default) uses the fast inference path, which gives the same numbers to ~1e-6.
* ``do_layer_norm=True`` normalises over the words only (AllenNLP also counts ``<S>``/``</S>``), so
  it differs slightly; ``keep_sentence_boundaries=True`` is not supported.
* ``vocab_to_cache`` and ``word_inputs`` are accepted and unused: token vectors are cached
  automatically, and every word is always encoded from its characters (AllenNLP's cache gives an
  out-of-vocabulary id the vector of the OOV *string*).
* Options and weights may be any model source (``--model`` accepts the same), not URLs.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import IO

import numpy as np
import torch
from torch import nn

from elmo_tasks.bilm.char_ids import batch_to_ids as _batch_to_ids
from elmo_tasks.bilm.inference import InferenceEngine
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.dump import write_dump
from elmo_tasks.embedder import Embedder
from elmo_tasks.errors import UserError
from elmo_tasks.modules import Dropout
from elmo_tasks.scalar_mix import ScalarMix

DEFAULT_BATCH_SIZE = 64


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
    """AllenNLP's ``Elmo``: one biLM run, ``num_output_representations`` independent scalar mixes."""

    def __init__(self, options_file: str | Path, weight_file: str | Path, num_output_representations: int,
                 requires_grad: bool = False, do_layer_norm: bool = False, dropout: float = 0.5,
                 vocab_to_cache: list[str] | None = None, keep_sentence_boundaries: bool = False,
                 scalar_mix_parameters: list[float] | None = None, module: nn.Module | None = None,
                 stateful: bool = False) -> None:
        super().__init__()
        if keep_sentence_boundaries:
            raise UserError("Elmo(keep_sentence_boundaries=True) is not supported: the biLM drops <S>/</S> itself")
        if module is not None:
            raise UserError("Elmo(module=...) is not supported: give options_file and weight_file")
        self._elmo_lstm = load_bilm(options_file, weight_file, stateful=stateful)
        self._elmo_lstm.requires_grad_(requires_grad)
        self._elmo_lstm.train(requires_grad)
        self._requires_grad = requires_grad
        self._engine = InferenceEngine(self._elmo_lstm)  # the frozen biLM's fast path
        self._engine_device = torch.device("cpu")
        self._dropout = Dropout(p=dropout)
        del vocab_to_cache
        self._scalar_mixes = nn.ModuleList(
            ScalarMix(self._elmo_lstm.num_layers, do_layer_norm=do_layer_norm, fixed=scalar_mix_parameters)
            for _ in range(num_output_representations))

    @property
    def bilm(self) -> BiLM:
        return self._elmo_lstm

    def get_output_dim(self) -> int:
        return self._elmo_lstm.output_dim

    def reset_states(self) -> None:
        self._elmo_lstm.reset_states()

    def train(self, mode: bool = True) -> "Elmo":
        super().train(mode)
        self._elmo_lstm.train(mode and self._requires_grad)  # a frozen biLM stays in eval mode
        return self

    def forward(self, inputs: torch.Tensor, word_inputs: torch.Tensor | None = None) -> dict:
        """``{"elmo_representations": [(…, T, 2P)] * N, "mask": (…, T) bool}`` for (…, T, 50) character ids."""
        del word_inputs
        if inputs.dim() < 3 or inputs.shape[-1] != 50:
            raise UserError(f"Elmo takes character ids of shape (batch, timesteps, 50), got {tuple(inputs.shape)}")
        leading = inputs.shape[:-2]
        flat = inputs.reshape(-1, *inputs.shape[-2:])
        device = next(self._elmo_lstm.parameters()).device
        if self._requires_grad:  # the plain, differentiable model
            out = self._elmo_lstm(flat.to(device))
        else:
            if self._engine_device != device:  # the module was moved (.to, .cuda): drop the old device's caches
                self._engine.clear_caches()
                self._engine_device = device
            with torch.no_grad():
                out = self._engine(flat.to(device))
        representations = [self._dropout(mix(out.layers, out.mask)) for mix in self._scalar_mixes]
        return {"elmo_representations": [r.reshape(*leading, *r.shape[1:]) for r in representations],
                "mask": out.mask.reshape(*leading, out.mask.shape[-1])}


def empty_embedding(dim: int) -> np.ndarray:
    return np.zeros((3, 0, dim), dtype=np.float32)


class ElmoEmbedder:
    """AllenNLP 0.9's ``ElmoEmbedder``: the frozen biLM's three layers as numpy arrays."""

    def __init__(self, options_file: str | Path, weight_file: str | Path, cuda_device: int = -1,
                 stateful: bool = False) -> None:
        self.embedder = Embedder(load_bilm(options_file, weight_file, stateful=stateful))
        self.cuda_device = cuda_device
        if cuda_device >= 0:
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
