"""The biLM as a language model over unrolled windows: its parts called directly, for training and scoring.

The token encoder runs once per distinct token of a batch, with the convolutions cut to the
characters the tokens have (``elmo_tasks.bilm.distinct_tokens``, four groups by length), then both
directions' LSTM stacks run at once (``lstm.run_stacks``) over their (B, T, P) windows from the given
states. Both directions' windows come from ``batches.Batch``; the backward window is already
reversed, so both stacks read left to right.
"""

from __future__ import annotations

import numpy as np
import torch

from elmo_tasks.bilm.distinct_tokens import encode_by_length
from elmo_tasks.bilm.lstm import run_stacks
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.pretrain.batches import Batch

State = tuple[torch.Tensor, torch.Tensor]


def token_vectors(model: BiLM, char_table: np.ndarray, inputs: np.ndarray, device: torch.device) -> torch.Tensor:
    """(R, T) type ids -> (R, T, P); ``char_table`` holds each type's 50 character ids."""
    unique, inverse = np.unique(inputs, return_inverse=True)
    chars = torch.from_numpy(char_table[unique].astype(np.int64)).to(device)
    max_width = max(width for width, _ in model.options.filters)
    vectors = encode_by_length(model.token_encoder, chars, max_width, group_size=-(-len(chars) // 4))
    index = torch.from_numpy(inverse.reshape(inputs.shape).astype(np.int64)).to(device)
    return vectors[index]


def run_windows(model: BiLM, char_table: np.ndarray, batch: Batch, states: tuple[list[State], list[State]],
                dropout: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, tuple]:
    """Top-layer outputs of both directions, (B, T, P) each, and the detached final states.

    Rows flagged in ``batch.reset`` (per-sentence mode) start from a zero state.
    """
    b, steps = batch.fwd_inputs.shape
    x = token_vectors(model, char_table, np.concatenate([batch.fwd_inputs, batch.bwd_inputs]), device)
    if batch.reset is not None and batch.reset.any():
        keep = torch.from_numpy(~batch.reset).to(device).unsqueeze(1).float()
        states = tuple([(h * keep, c * keep) for h, c in direction] for direction in states)
    # both directions at once: (2, T, B, P), time-major
    x = x.view(2, b, steps, -1).transpose(1, 2)
    stacks = (model.forward_lstm, model.backward_lstm)
    outputs, finals = run_stacks([stack.layers for stack in stacks], x, [b] * steps, list(states),
                                 dropout if model.training else 0.0, model.forward_lstm.use_skip_connections)
    top = outputs[-1]
    detached = tuple([(h.detach(), c.detach()) for h, c in direction] for direction in finals)
    return top[0].transpose(0, 1), top[1].transpose(0, 1), detached
