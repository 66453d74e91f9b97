"""The biLM: token encoder plus independent forward and backward LSTM stacks, read top to bottom.

``BiLM.forward`` takes character ids of the words only, (B, T, 50) right-padded with zero tokens,
adds ``<S>``/``</S>`` around every sentence (exactly once), and returns its representation layers
with the boundary positions removed (``keep_boundaries=True`` keeps them, as AllenNLP's ``_ElmoBiLm``):

* layer 0: the token vector, duplicated to width 2P;
* layer l (1..n_layers): [forward LSTM layer l ; backward LSTM layer l], residual included.

States: by default every sentence starts from a zero state, so a sentence's vectors do not depend
on its batch, its row or what ran before. With ``stateful=True`` the final state of each batch row
is carried into the same row of the next call, as the reference implementations do.

This is the plain, differentiable model: one module call per direction. For embedding text,
``elmo_tasks.bilm.inference.InferenceEngine`` computes the same numbers (up to float rounding)
much faster from the same module, with its own caches and settings. ``contextualize`` runs the
LSTMs on token vectors from anywhere (AllenNLP's vocabulary cache looks them up by word id).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from elmo_tasks.bilm.char_ids import BOS_IDS, EOS_IDS
from elmo_tasks.bilm.lstm import LSTMStack, State, run_stacks
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.token_encoder import CharCNNTokenEncoder
from elmo_tasks.modules import reverse_within_lengths


@dataclass
class BiLMOutput:
    """``layers``: (B, n_layers + 1, T, 2P), zero at padding; ``mask``: (B, T) bool, True at words."""

    layers: torch.Tensor
    mask: torch.Tensor


def sort_by_length(lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, list[int]]:
    """Rows longest first, for the LSTMs to run only the rows still active at each step.

    Returns ``order`` (sorted row -> input row), ``restore`` (its inverse), the sorted lengths and
    ``batch_sizes``: how many sorted rows are still active at each step.
    """
    order = torch.argsort(lengths, descending=True, stable=True)
    sorted_lengths = lengths[order]
    length_list = sorted_lengths.tolist()
    batch_sizes = [sum(1 for n in length_list if n > t) for t in range(length_list[0])] if length_list else []
    return order, torch.argsort(order), sorted_lengths, batch_sizes


class BiLM(nn.Module):
    """A weight-compatible ELMo biLM (see ``elmo_tasks.bilm.weights`` for the file format)."""

    def __init__(self, options: BiLMOptions, stateful: bool = False) -> None:
        super().__init__()
        self.options = options
        self.stateful = stateful
        self.token_encoder = CharCNNTokenEncoder(options)

        def stack() -> LSTMStack:
            return LSTMStack(options.n_layers, options.projection_dim, options.lstm_dim,
                             options.cell_clip, options.proj_clip, options.use_skip_connections)

        self.forward_lstm = stack()
        self.backward_lstm = stack()
        self.register_buffer("bos_ids", torch.tensor(BOS_IDS), persistent=False)
        self.register_buffer("eos_ids", torch.tensor(EOS_IDS), persistent=False)
        self._states: list[State] | None = None  # forward layers then backward layers, by batch row

    @property
    def num_layers(self) -> int:
        """Number of representation layers (token layer + LSTM layers)."""
        return self.options.n_layers + 1

    @property
    def output_dim(self) -> int:
        return self.options.output_dim

    def reset_states(self, mask: torch.Tensor | None = None) -> None:
        """Forget the carried LSTM states (only meaningful with ``stateful=True``): all of them, or
        the rows where ``mask`` (B,) is true, as AllenNLP's ``reset_states(mask)``."""
        if mask is None or self._states is None:
            self._states = None if mask is None else self._states
            return
        rows = mask.to(torch.bool).reshape(-1)
        for h, c in self._states:
            n = min(rows.shape[0], h.shape[0])
            reset = rows[:n].to(h.device)
            h[:n][reset] = 0
            c[:n][reset] = 0

    # -- pieces -----------------------------------------------------------------------------------

    def with_boundaries(self, char_ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Word mask (B, T), ids with ``<S>``/``</S>`` (B, T+2, 50), their lengths and mask: every forward starts here."""
        word_mask = (char_ids > 0).any(dim=2)
        lengths = word_mask.sum(dim=1)
        ids = self.add_boundaries(char_ids, lengths)
        return word_mask, ids, lengths + 2, (ids > 0).any(dim=2)

    def add_boundaries(self, char_ids: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """(B, T, 50) word ids -> (B, T+2, 50) with ``<S>`` at 0 and ``</S>`` after the last word."""
        batch, width = char_ids.shape[0], char_ids.shape[1]
        with_boundaries = char_ids.new_zeros(batch, width + 2, char_ids.shape[2])
        with_boundaries[:, 1 : width + 1] = char_ids
        with_boundaries[:, 0] = self.bos_ids
        with_boundaries[torch.arange(batch, device=char_ids.device), lengths + 1] = self.eos_ids
        return with_boundaries

    def encode_tokens(self, char_ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Token vectors (B, T, P) for (B, T, 50) ids; only real tokens are encoded, padding is 0."""
        vectors = char_ids.new_zeros(*mask.shape, self.options.projection_dim, dtype=self.token_encoder.projection.weight.dtype)
        if mask.any():
            vectors[mask] = self.token_encoder(char_ids[mask])
        return vectors

    def initial_states(self, batch: int, like: torch.Tensor) -> list[State]:
        """Zero states for ``batch`` rows, or (stateful) the carried ones where rows have them."""
        p, c = self.options.projection_dim, self.options.lstm_dim
        zeros = [(like.new_zeros(batch, p), like.new_zeros(batch, c)) for _ in range(2 * self.options.n_layers)]
        if not self.stateful or self._states is None:
            return zeros
        states = []
        for (h0, c0), (h_old, c_old) in zip(zeros, self._states):
            rows = min(batch, h_old.shape[0])
            h0[:rows], c0[:rows] = h_old[:rows], c_old[:rows]
            states.append((h0, c0))
        return states

    def store_states(self, finals: list[State]) -> None:
        """Row k of this call's final states replaces row k of the carried states (rows grow as needed)."""
        if self._states is None:
            self._states = [(h.detach().clone(), c.detach().clone()) for h, c in finals]
            return
        merged = []
        for (h_new, c_new), (h_old, c_old) in zip(finals, self._states):
            rows = max(h_new.shape[0], h_old.shape[0])
            h = h_new.new_zeros(rows, h_new.shape[1])
            c = c_new.new_zeros(rows, c_new.shape[1])
            h[: h_old.shape[0]], c[: c_old.shape[0]] = h_old, c_old
            h[: h_new.shape[0]], c[: c_new.shape[0]] = h_new.detach(), c_new.detach()
            merged.append((h, c))
        self._states = merged

    # -- the whole model --------------------------------------------------------------------------

    def forward(self, char_ids: torch.Tensor, keep_boundaries: bool = False) -> BiLMOutput:
        """Representation layers for (B, T, 50) character ids of words (no boundary tokens).

        ``keep_boundaries``: keep the ``<S>``/``</S>`` positions, (B, L, T+2, 2P) with the mask of
        the words and both boundaries, as AllenNLP's ``_ElmoBiLm`` returns them.
        """
        _, ids, full_lengths, full_mask = self.with_boundaries(char_ids)
        return self.contextualize(self.encode_tokens(ids, full_mask), full_lengths, keep_boundaries)

    def contextualize(self, tokens: torch.Tensor, full_lengths: torch.Tensor,
                      keep_boundaries: bool = False) -> BiLMOutput:
        """The layers for token vectors (B, T+2, P) that already hold ``<S>`` at 0 and ``</S>`` at
        ``full_lengths - 1`` (0 beyond): the LSTMs and the assembly, wherever the vectors came from."""
        order, restore, sorted_lengths, batch_sizes = sort_by_length(full_lengths)
        x = tokens[order]

        initial = self.initial_states(tokens.shape[0], tokens)
        n = self.options.n_layers
        fwd_init = [(h[order], c[order]) for h, c in initial[:n]]
        bwd_init = [(h[order], c[order]) for h, c in initial[n:]]
        # both directions at once, time-major (2, T+2, B, P); the backward input reversed within each length
        both = torch.stack([x, reverse_within_lengths(x, sorted_lengths)]).transpose(1, 2)
        outputs, (fwd_final, bwd_final) = run_stacks([self.forward_lstm.layers, self.backward_lstm.layers], both,
                                                      batch_sizes, [fwd_init, bwd_init],
                                                      use_skip_connections=self.options.use_skip_connections)
        fwd_out = [out[0].transpose(0, 1) for out in outputs]
        bwd_out = [reverse_within_lengths(out[1].transpose(0, 1), sorted_lengths) for out in outputs]
        if self.stateful:
            self.store_states([(h[restore], c[restore]) for h, c in fwd_final + bwd_final])

        # without the boundaries, output position j is input position j + 1, for j < length - 2
        span, mask = output_span(tokens.shape[1], full_lengths, keep_boundaries)
        keep = mask.unsqueeze(2).to(tokens.dtype)
        layers = [torch.cat([tokens, tokens], dim=2)[:, span] * keep]
        for f, b in zip(fwd_out, bwd_out):
            layers.append(torch.cat([f, b], dim=2)[restore][:, span] * keep)
        return BiLMOutput(layers=torch.stack(layers, dim=1), mask=mask)


def output_span(steps: int, full_lengths: torch.Tensor, keep_boundaries: bool) -> tuple[slice, torch.Tensor]:
    """Which of the T+2 positions the output keeps, and its mask: all of them and the words with
    both boundaries, or positions 1..T and the words only (an empty sentence: all False)."""
    positions = torch.arange(steps if keep_boundaries else steps - 2, device=full_lengths.device)
    lengths = full_lengths if keep_boundaries else full_lengths - 2
    return slice(0, steps) if keep_boundaries else slice(1, steps - 1), positions.unsqueeze(0) < lengths.unsqueeze(1)
