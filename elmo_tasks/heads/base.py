"""What every head implements. Copy ``probe.py`` (the smallest) to start a new one.

A head is an ``nn.Module`` that receives the task's :class:`~elmo_tasks.features.Features`
(``inputs`` (B, T, D), the optional ELMo for its encoder's ``output``, the ``mask``) and the batch
(``labels``, and for word senses ``target`` and ``keys``). It declares:

* ``Options``: a dataclass of its settings; the config's ``head:`` keys other than ``name`` fill it,
  with the same key and type checks as the rest of the config (``check_config`` checks the rest);
* ``tasks``: the task kinds it can do (``tagging``, ``classification``, ``wsd``);
* ``uses_output``: whether it has an encoder whose output ELMo can be added to (``where: output``).

and implements ``loss(features, batch) -> scalar tensor`` and ``predict(features, batch) -> list``
(one prediction per sentence: a list of label ids for tagging, a label id otherwise, ``None`` for
"no answer"). A head that is not trained by gradient steps (``iterative = False``) implements
``fit(features, batch)``, called once per training batch, instead of ``loss``. Under ``trainer.amp``
these run in bfloat16 autocast: turn scores into float32 (``.float()``) before a loss or a sum over
a sentence, as ``tagger.py`` does.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import nn

from elmo_tasks.features import Features
from elmo_tasks.schema import ConfigError
from elmo_tasks.task import Task


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
        """Raise ``ConfigError(message, key="dotted.key")`` for settings this head cannot use."""
        elmo = config.features.elmo
        if elmo is not None and elmo.where != "input" and not cls.uses_output:
            raise ConfigError(f"the {config.head.name} head has no encoder output; use 'input'", key="features.elmo.where")

    def loss(self, features: Features, batch: dict[str, Any]) -> torch.Tensor:
        raise NotImplementedError

    def predict(self, features: Features, batch: dict[str, Any]) -> list:
        raise NotImplementedError

    def fit(self, features: Features, batch: dict[str, Any]) -> None:
        raise NotImplementedError
