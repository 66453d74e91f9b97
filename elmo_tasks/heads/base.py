"""What every head implements. Copy ``probe.py`` (the smallest) to start a new one.

A head is an ``nn.Module`` that receives the task's :class:`~elmo_tasks.features.Features`
(``inputs`` (B, T, D), the optional ELMo for its encoder's ``output``, the ``mask``) and the batch
(``labels``, and for word senses ``target`` and ``keys``). It declares:

* ``Options``: a dataclass of its settings; the config's ``head:`` keys other than ``name`` fill it,
  with the same key and type checks as the rest of the config;
* ``tasks``: the task kinds it can do (``tagging``, ``classification``, ``wsd``);
* ``uses_output``: whether it has an encoder whose output ELMo can be added to (``where: output``).

and implements ``loss(features, batch) -> scalar tensor`` and ``predict(features, batch) -> list``
(one prediction per sentence: a list of label ids for tagging, a label id otherwise, ``None`` for
"no answer"). A head that is not trained by gradient steps (``iterative = False``) implements
``fit(features, batch)``, called once per training batch, instead of ``loss``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from elmo_tasks.features import Features
from elmo_tasks.training.data import Task


class Head(nn.Module):
    Options: ClassVar[type]
    tasks: ClassVar[tuple[str, ...]] = ("tagging", "classification", "wsd")
    uses_output: ClassVar[bool] = False
    iterative: ClassVar[bool] = True

    def __init__(self, options: Any, task: Task, input_dim: int, output_dim: int = 0) -> None:
        super().__init__()
        if task.kind not in self.tasks:
            raise ValueError(f"the {type(self).__name__} head does {', '.join(self.tasks)}, not {task.kind}")
        self.options, self.task = options, task
        self.input_dim, self.output_dim = input_dim, output_dim

    @classmethod
    def check_config(cls, config: Any) -> None:
        """Raise ``ValueError("dotted.key: message")`` for settings this head cannot use."""
        elmo = config.features.elmo
        if elmo is not None and elmo.where != "input" and not cls.uses_output:
            raise ValueError(f"features.elmo.where: the {config.head.name} head has no encoder output; use 'input'")

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        raise NotImplementedError

    def fit(self, features: Features, batch: dict[str, Any]) -> None:
        raise NotImplementedError


class BiLSTM(nn.Module):
    """A bidirectional LSTM over padded, left-aligned sentences, exact at every real token.

    The backward direction reads each sentence reversed within its length, so padding never
    reaches a real token in either direction. It runs on plain padded tensors: on CPU this is
    several times faster than packed sequences (which also pay a large first-use cost per shape).
    """

    def __init__(self, input_dim: int, hidden: int, layers: int = 1, dropout: float = 0.0) -> None:
        super().__init__()
        dims = [input_dim] + [2 * hidden] * (layers - 1)
        self.forward_layers = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.backward_layers = nn.ModuleList(nn.LSTM(d, hidden, batch_first=True) for d in dims)
        self.dropout = nn.Dropout(dropout)
        self.output_dim = 2 * hidden

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        from elmo_tasks.bilm.model import reverse_within_lengths

        lengths = mask.sum(dim=1)
        for i, (fwd, bwd) in enumerate(zip(self.forward_layers, self.backward_layers)):
            if i:
                x = self.dropout(x)
            forward_out, _ = fwd(x)
            backward_out, _ = bwd(reverse_within_lengths(x, lengths))
            x = torch.cat([forward_out, reverse_within_lengths(backward_out, lengths)], dim=-1)
        return x * mask.unsqueeze(-1)
