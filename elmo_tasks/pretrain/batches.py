"""Batches of unrolled steps over the token stream, as the bilm-tf recipe makes them (§10.2).

A sentence w1..wn is [<S>, w1..wn, </S>]: the forward inputs are all but the last element, the
targets all but the first. The backward stream reverses the words and swaps the boundaries:
inputs </S> wn..w1, targets wn..w1 <S>. Each epoch shuffles the sentences (seeded), lays them end
to end and cuts the stream into ``batch_size`` rows; batch k is columns [k*T, (k+1)*T) of every row,
so each row is a continuous stream and a sentence cut by the window continues in the same row in
the next batch. The final incomplete batch is dropped.

State modes:

* ``stateful`` (the recipe): no padding; LSTM states run on from batch to batch, never reset.
* ``per_sentence``: every sentence starts at a window boundary (its last window is padded, the
  padding is not a target) and the LSTM state of a row is reset to zero where a sentence starts.

Both directions read the same sentence order, so a sentence's forward and backward windows are the
same batch columns (bilm-tf shuffles the two directions independently; sharing the order lets one
char-CNN pass serve both directions).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from elmo_tasks.errors import UserError
from elmo_tasks.pretrain.text_source import BOS_TYPE, EOS_TYPE, PAD_TYPE, EncodedText


@dataclass
class Batch:
    """Type ids of the inputs, vocabulary ids of the targets (-1: no target), all (B, T)."""

    fwd_inputs: np.ndarray
    fwd_targets: np.ndarray
    bwd_inputs: np.ndarray
    bwd_targets: np.ndarray
    reset: np.ndarray | None  # (B,) bool: start this row from a zero state (per_sentence mode)

    def take_rows(self, rows: slice) -> "Batch":
        """The rows one data-parallel process trains on."""
        if rows == slice(0, self.fwd_inputs.shape[0]):
            return self
        return Batch(self.fwd_inputs[rows], self.fwd_targets[rows], self.bwd_inputs[rows], self.bwd_targets[rows],
                     None if self.reset is None else self.reset[rows])


@dataclass
class Streams:
    fwd_inputs: np.ndarray  # (B, L) int32 type ids
    fwd_targets: np.ndarray  # (B, L) int32 vocabulary ids, -1 at padding
    bwd_inputs: np.ndarray
    bwd_targets: np.ndarray
    starts: np.ndarray  # (B, L) bool: a sentence starts here
    unroll: int

    @property
    def n_batches(self) -> int:
        return self.fwd_inputs.shape[1] // self.unroll

    def batch(self, k: int, per_sentence: bool) -> Batch:
        cols = slice(k * self.unroll, (k + 1) * self.unroll)
        reset = None
        if per_sentence:
            reset = self.starts[:, cols.start].copy() if k > 0 else np.ones(self.starts.shape[0], dtype=bool)
        return Batch(self.fwd_inputs[:, cols], self.fwd_targets[:, cols], self.bwd_inputs[:, cols],
                     self.bwd_targets[:, cols], reset)


def stream_length(text: EncodedText, per_sentence: bool, unroll: int) -> int:
    """Positions in one epoch's stream (before cutting into rows)."""
    m = np.diff(text.offsets) + 1
    if per_sentence:
        m = -(-m // unroll) * unroll
    return int(m.sum())


def build_streams(text: EncodedText, order: np.ndarray, target_map: np.ndarray, batch_size: int,
                  unroll: int, per_sentence: bool, max_positions: int | None = None) -> Streams:
    """Lay the sentences out in ``order`` and cut the stream into ``batch_size`` rows.

    ``max_positions`` (evaluation) stops after that many stream positions.
    """
    n = np.diff(text.offsets)[order]  # words per sentence, in stream order
    m = n + 1  # input positions per sentence
    if per_sentence:
        m = -(-m // unroll) * unroll
    q = np.zeros(len(m), dtype=np.int64)  # where each sentence starts in the stream
    np.cumsum(m[:-1], out=q[1:])
    total = int(m.sum())
    if max_positions is not None and total > max_positions:
        keep = int(np.searchsorted(q, max_positions, side="right"))  # sentences starting before the limit
        keep = max(keep, 1)
        order, n, m, q = order[:keep], n[:keep], m[:keep], q[:keep]
        total = int(m.sum())
    rows_len = (total // (batch_size * unroll)) * unroll
    if rows_len == 0:
        raise UserError(
            f"the corpus is too small: its stream has {total} positions, fewer than one batch of "
            f"batch_size x unroll_steps = {batch_size} x {unroll}; use a smaller batch or more text"
        )

    sentence = np.repeat(np.arange(len(n)), n)  # stream sentence index of every word
    first_word = np.zeros(len(n), dtype=np.int64)
    np.cumsum(n[:-1], out=first_word[1:])
    within = np.arange(int(n.sum()), dtype=np.int64) - first_word[sentence]
    start_src = text.offsets[:-1][order][sentence]
    fwd_words = text.tokens[start_src + within]
    bwd_words = text.tokens[start_src + n[sentence] - 1 - within]
    position = q[sentence] + 1 + within  # input position of word j (the j-th after the boundary)

    def stream(boundary_in: int, boundary_out: int, words: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inputs = np.full(total, PAD_TYPE, dtype=np.int32)
        targets = np.full(total, PAD_TYPE, dtype=np.int32)
        inputs[q] = boundary_in
        inputs[position] = words
        targets[position - 1] = words
        targets[q + n] = boundary_out
        return inputs, target_map[targets]

    fwd_in, fwd_tgt = stream(BOS_TYPE, EOS_TYPE, fwd_words)
    bwd_in, bwd_tgt = stream(EOS_TYPE, BOS_TYPE, bwd_words)
    starts = np.zeros(total, dtype=bool)
    starts[q] = True
    used = batch_size * rows_len

    def rows(a: np.ndarray) -> np.ndarray:
        return np.ascontiguousarray(a[:used].reshape(batch_size, rows_len))

    return Streams(rows(fwd_in), rows(fwd_tgt), rows(bwd_in), rows(bwd_tgt), rows(starts), unroll)


def epoch_order(n_sentences: int, seed: int, epoch: int) -> np.ndarray:
    """The sentence order of one epoch: a fixed function of the seed and the epoch number."""
    return np.random.default_rng([seed, epoch]).permutation(n_sentences)
