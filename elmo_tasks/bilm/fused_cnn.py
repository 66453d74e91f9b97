"""The character CNN with all its filters as one matrix product (CPU inference, oneDNN packed weights).

Every filter is zero-padded on the right to the widest width and all are stacked into one
(n_filters, d * max_width) matrix, so the convolutions become one product over the character
windows; each highway's carry and transform matrices are stacked into one. ``encode_fused``
equals ``CharCNNTokenEncoder.forward`` up to float rounding on ids whose last ``max_width``
positions are within-word padding in every row (``distinct_tokens.encode_by_length`` cuts most
groups of tokens that way).
"""

from __future__ import annotations

import torch
from torch import nn

from elmo_tasks.bilm import packed
from elmo_tasks.bilm.distinct_tokens import PAD_ID
from elmo_tasks.bilm.token_encoder import CharCNNTokenEncoder

WINDOW_ROWS = 512  # character windows per product: its maps (4 MiB for 2048 filters) stay in cache

FusedWeights = tuple  # (filters, filter bias, [(highway weights, highway bias)], projection), packed


def fused_weights(encoder: CharCNNTokenEncoder, store: packed.ConvertedWeights) -> FusedWeights | None:
    """The encoder's weights packed for ``encode_fused`` (kept in ``store``, remade when the weights
    change), or None where packed products are unavailable (then the per-filter path runs)."""
    if not packed.ready(encoder.projection.weight.device):
        return None

    def convert(_) -> FusedWeights:
        filters = torch.cat([nn.functional.pad(conv.weight, (0, encoder.max_width - conv.kernel_size[0]))
                             for conv in encoder.convolutions]).flatten(1)
        highways = [(packed.pack(torch.cat([h.carry.weight, h.transform.weight])),
                     torch.cat([h.carry.bias, h.transform.bias])) for h in encoder.highways]
        return (packed.pack(filters), torch.cat([conv.bias for conv in encoder.convolutions]), highways,
                packed.pack(encoder.projection.weight))

    return store.get(encoder, "fused", list(encoder.parameters()), convert)


def has_padding_tail(encoder: CharCNNTokenEncoder, char_ids: torch.Tensor) -> bool:
    """Whether the last ``max_width`` positions of every row are within-word padding (``encode_fused``'s condition)."""
    return char_ids.shape[1] >= encoder.max_width and bool((char_ids[:, -encoder.max_width :] == PAD_ID).all())


def encode_fused(encoder: CharCNNTokenEncoder, char_ids: torch.Tensor, fused: FusedWeights) -> torch.Tensor:
    """``encoder(char_ids)`` for (N, keep) ids with a padding tail (``has_padding_tail``), the
    convolutions as one matrix product over the windows.

    A filter of width w < max_width, padded with zeros, gives the same value at every window start
    up to ``keep - max_width``; the starts it loses lie wholly in the all-padding tail, and equal
    the window at the first all-padding start, which is kept. So the max over windows, and the
    output, are those of the plain encoder up to float rounding.
    """
    filters, filter_bias, highways, projection = fused
    n, keep = char_ids.shape
    starts = keep - encoder.max_width + 1
    windows = encoder.char_embedding(char_ids).unfold(1, encoder.max_width, 1)  # (N, starts, d, max_width)
    pooled = filter_bias.new_empty(n, filter_bias.shape[0])
    step = max(1, WINDOW_ROWS // starts)  # bounds the (windows, n_filters) map of one product
    for first in range(0, n, step):
        block = windows[first : first + step]
        maps = packed.linear(block.reshape(-1, windows.shape[2] * windows.shape[3]), filters, filter_bias)
        torch.amax(maps.view(block.shape[0], starts, -1), dim=1, out=pooled[first : first + step])
    x = encoder.activation(pooled)
    width = x.shape[1]
    for weights, bias in highways:
        both = packed.linear(x, weights, bias)
        gate = torch.sigmoid(both[:, :width])
        x = gate * torch.relu(both[:, width:]) + (1.0 - gate) * x
    return packed.linear(x, projection, encoder.projection.bias)
