"""A fresh biLM for pretraining: its options from the config and the recipe's initialisers (§10.3)."""

from __future__ import annotations

import dataclasses
import math

import torch
from torch import nn

from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.pretrain.settings import PretrainConfig


def bilm_options(config: PretrainConfig) -> BiLMOptions:
    """The config's ``model`` section as the biLM reads it (a clip of 0 means no clipping)."""
    m = config.model
    return dataclasses.replace(m, cell_clip=m.cell_clip or None, proj_clip=m.proj_clip or None,
                               filters=[list(f) for f in m.filters], extra={})


def init_bilm(model: BiLM) -> None:
    """The recipe's initialisers (§10.3), in this model's layout."""
    enc = model.token_encoder
    with torch.no_grad():
        nn.init.uniform_(enc.char_embedding.weight, -1.0, 1.0)
        enc.char_embedding.weight[0].zero_()  # the padding row (not a trained character)
        for conv in enc.convolutions:
            if model.options.activation == "relu":
                nn.init.uniform_(conv.weight, -0.05, 0.05)
            else:
                nn.init.normal_(conv.weight, std=math.sqrt(1.0 / (conv.kernel_size[0] * conv.in_channels)))
            conv.bias.zero_()
        f = model.options.n_filters
        for highway in enc.highways:
            nn.init.normal_(highway.carry.weight, std=math.sqrt(1.0 / f))
            nn.init.normal_(highway.transform.weight, std=math.sqrt(1.0 / f))
            highway.carry.bias.fill_(-2.0)
            highway.transform.bias.zero_()
        nn.init.normal_(enc.projection.weight, std=math.sqrt(1.0 / f))
        enc.projection.bias.zero_()
        for stack in (model.forward_lstm, model.backward_lstm):
            for layer in stack.layers:
                c = layer.cell_dim
                fan_in = layer.input_linear.in_features + layer.state_linear.in_features
                limit = math.sqrt(6.0 / (fan_in + 4 * c))  # Glorot on the joint [x; h] kernel
                nn.init.uniform_(layer.input_linear.weight, -limit, limit)
                nn.init.uniform_(layer.state_linear.weight, -limit, limit)
                layer.state_linear.bias.zero_()
                layer.state_linear.bias[c : 2 * c] = 1.0  # TF's forget bias (gate order i, f, g, o)
                limit = math.sqrt(6.0 / (c + layer.projection_dim))
                nn.init.uniform_(layer.projection.weight, -limit, limit)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def exported_parameters(model: BiLM) -> int:
    """Parameters in the exported file (the char table without its padding row)."""
    return count_parameters(model) - model.options.char_embedding_dim
