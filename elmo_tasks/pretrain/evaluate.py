"""Held-out perplexity of a biLM (full softmax) and of a unigram model on the same targets.

The held-out text is batched exactly as in training (rows of continuous streams, unrolled windows,
states carried from window to window in the stateful mode), in file order. Perplexity per direction
is exp(mean negative log-likelihood over every target position: the words, ``</S>`` for the forward
LM, ``<S>`` for the backward LM); the average is exp of the mean of the two directions' losses, as
bilm-tf reports it. Words outside the vocabulary are the target ``<UNK>``, so the figures depend on
the vocabulary, like every word-level perplexity.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch

from elmo_tasks.bilm.model import BiLM
from elmo_tasks.pretrain.batches import Batch, Streams, build_streams, stream_length
from elmo_tasks.pretrain.softmax import IGNORE, Softmax
from elmo_tasks.pretrain.text_source import EncodedText

State = tuple[torch.Tensor, torch.Tensor]


@dataclass
class Perplexity:
    forward: float
    backward: float
    average: float
    tokens: int  # target positions per direction

    def as_dict(self) -> dict[str, float]:
        return {"heldout_ppl_forward": self.forward, "heldout_ppl_backward": self.backward,
                "heldout_ppl": self.average, "heldout_tokens": self.tokens}


def heldout_streams(text: EncodedText, target_map: np.ndarray, rows: int, unroll: int, per_sentence: bool,
                    max_tokens: int | None = None) -> Streams:
    """The held-out text in file order, cut into ``rows`` streams (fewer for a tiny text)."""
    need = stream_length(text, per_sentence, unroll)
    if need < rows * unroll:
        rows = max(1, need // unroll)
    return build_streams(text, np.arange(text.n_sentences), target_map, rows, unroll, per_sentence,
                         max_positions=max_tokens)


def zero_states(model: BiLM, rows: int, device: torch.device) -> list[State]:
    o = model.options
    return [(torch.zeros(rows, o.projection_dim, device=device), torch.zeros(rows, o.lstm_dim, device=device))
            for _ in range(o.n_layers)]


def _from_nll(sums: list[float], counts: list[int]) -> Perplexity:
    mean_f, mean_b = sums[0] / max(counts[0], 1), sums[1] / max(counts[1], 1)
    return Perplexity(math.exp(mean_f), math.exp(mean_b), math.exp(0.5 * (mean_f + mean_b)), counts[0])


@torch.no_grad()
def bilm_perplexity(run_windows: Callable[[Batch, tuple], tuple], softmax: Softmax, streams: Streams,
                    initial_states: tuple, per_sentence: bool, device: torch.device,
                    progress: bool = False) -> Perplexity:
    """``run_windows(batch, states) -> (top_fwd (B,T,P), top_bwd (B,T,P), final states)`` over every batch;
    ``progress`` shows a tqdm bar (on stderr)."""
    states = initial_states
    sums, counts = [0.0, 0.0], [0, 0]
    batches = range(streams.n_batches)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, unit="batch", desc="perplexity", file=sys.stderr, dynamic_ncols=True)
    for k in batches:
        batch = streams.batch(k, per_sentence)
        top_f, top_b, states = run_windows(batch, states)
        for i, (top, targets) in enumerate(((top_f, batch.fwd_targets), (top_b, batch.bwd_targets))):
            target = torch.from_numpy(targets.reshape(-1).astype(np.int64)).to(device)
            sums[i] += float(softmax.full_nll(top.reshape(-1, top.shape[-1]), target).sum())
            counts[i] += int((target != IGNORE).sum())
    return _from_nll(sums, counts)


def unigram_log_probs(train: EncodedText, target_map: np.ndarray, vocab_size: int, boundary: int,
                      other_boundary: int) -> np.ndarray:
    """log P(v) of one direction's unigram model, from training counts with add-one smoothing.

    A direction predicts its words and one closing boundary per sentence (``</S>`` forward, ``<S>``
    backward); the other boundary is never a target of that direction and gets no probability.
    """
    ids = target_map[train.tokens]
    counts = np.bincount(ids[ids >= 0], minlength=vocab_size).astype(np.float64)
    counts[boundary] += train.n_sentences
    counts += 1.0
    counts[other_boundary] = 0.0
    with np.errstate(divide="ignore"):
        return np.log(counts / counts.sum())


def unigram_perplexity(train: EncodedText, target_map: np.ndarray, vocab_size: int, bos: int, eos: int,
                       streams: Streams) -> Perplexity:
    """A unigram model scored on exactly the target positions the biLM is scored on."""
    sums, counts = [0.0, 0.0], [0, 0]
    directions = ((streams.fwd_targets, eos, bos), (streams.bwd_targets, bos, eos))
    for i, (targets, boundary, other) in enumerate(directions):
        log_probs = unigram_log_probs(train, target_map, vocab_size, boundary, other)
        t = targets[:, : streams.n_batches * streams.unroll].reshape(-1)
        t = t[t != IGNORE]
        sums[i] = float(-log_probs[t].sum())
        counts[i] = int(len(t))
    return _from_nll(sums, counts)
