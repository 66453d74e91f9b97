"""Context-independent token vectors: character embedding -> CNN -> highway -> projection.

This is the plain, differentiable encoder: every row of ids goes through the whole of it. The
inference engine (``elmo_tasks.bilm.inference``) runs the same weights faster: each distinct token
once, its convolutions cut to its characters (``distinct_tokens``), through a token cache
(``token_cache``) and, on a CPU with oneDNN, all the filters as one product (``fused_cnn``).
"""

from __future__ import annotations

import torch
from torch import nn

from elmo_tasks.bilm.options import BiLMOptions


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


class CharCNNTokenEncoder(nn.Module):
    """Maps (N, W) character ids (W = 50, or fewer when the tail cut is only padding) to (N, P) token vectors.

    Row 0 of the character table is the all-zero padding row (ids are offset by +1); the trained
    table is rows 1..261.
    """

    def __init__(self, options: BiLMOptions) -> None:
        super().__init__()
        self.char_embedding = nn.Embedding(262, options.char_embedding_dim, padding_idx=0)
        self.convolutions = nn.ModuleList(
            nn.Conv1d(options.char_embedding_dim, count, kernel_size=width) for width, count in options.filters
        )
        self.activation = torch.relu if options.activation == "relu" else torch.tanh
        self.highways = nn.ModuleList(Highway(options.n_filters) for _ in range(options.n_highway))
        self.projection = nn.Linear(options.n_filters, options.projection_dim)
        self.max_width = max(width for width, _ in options.filters)

    def forward(self, char_ids: torch.Tensor) -> torch.Tensor:
        chars = self.char_embedding(char_ids).transpose(1, 2)  # (N, d, positions)
        # max over positions then the activation: equal to activation-then-max (both monotone)
        x = torch.cat([self.activation(conv(chars).amax(dim=2)) for conv in self.convolutions], dim=1)
        for highway in self.highways:
            x = highway(x)
        return self.projection(x)
