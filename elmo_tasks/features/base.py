"""What every feature implements. Copy ``char_cnn.py`` (the smallest) to start a new one.

A feature is an ``nn.Module`` that turns a batch of sentences into vectors the head reads. It
declares ``Options``, a dataclass of its settings (the config's ``features.NAME:`` keys fill it,
checked like the rest of the config; an optional ``check()`` method raises
``ConfigError(message, key="field")`` for values that are wrong together or on disk; a field
with ``metadata={"path": (names...)}`` holds a path relative to the config file, unless it is one
of ``names``), and:

* ``build(options, tokens, context)``: the feature for a task whose splits hold ``tokens``
  (split name -> sentences); GloVe keeps the task's words, ELMo opens its layer cache;
* ``prepare(split, tokens)``: the split's input, computed once (word ids, character ids, cached
  layers); the trainer's ``Split.inputs[NAME]`` holds it;
* ``collate(prepared, rows, width)``: the input of sentences ``rows``, padded to ``width`` tokens;
* ``forward(inputs, mask)``: one (B, T, ``output_dim``) tensor per entry of ``places``
  (``"input"``: concatenated to the head's input; ``"output"``: handed to the head's encoder output).

An ``Options`` may also define ``identity()``: a dict naming the content of the files it reads (the
ELMo model's digest), which the run fingerprint includes so that a changed file is not taken for a
finished run. ``penalty()`` (added to the loss), ``report()`` (facts for ``metrics.json``) and ``mix_report()``
are optional.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn


@dataclass
class BuildContext:
    """What building a feature may use besides its options."""

    progress: bool = True  # progress bars on stderr (cache builds)
    recompute: bool = False  # features with a cache compute their input per batch instead (benchmarks)
    log: Callable[[str], None] = field(default=lambda message: print(message, file=sys.stderr))


class Feature(nn.Module):
    Options: ClassVar[type]
    places: tuple[str, ...] = ("input",)
    output_dim: int = 0

    @classmethod
    def build(cls, options: Any, tokens: dict[str, list[list[str]]], context: BuildContext) -> "Feature":
        return cls(options)

    def prepare(self, split: str, tokens: list[list[str]]) -> Any:
        raise NotImplementedError

    def collate(self, prepared: Any, rows: list[int], width: int) -> Any:
        """By default ``prepared`` is one array per sentence, padded here."""
        return pad([prepared[i] for i in rows], width)

    def forward(self, inputs: Any, mask: torch.Tensor) -> list[torch.Tensor]:
        raise NotImplementedError

    def penalty(self) -> torch.Tensor:
        return torch.tensor(0.0)

    def report(self) -> dict[str, Any]:
        """Facts for ``metrics.json``'s ``feature_info`` (top-level keys)."""
        return {}

    def mix_report(self) -> list[dict] | None:
        """The learned layer mix(es), for features that have one."""
        return None


def pad(arrays: list[np.ndarray], width: int, fill: int = 0) -> torch.Tensor:
    """Per-sentence arrays (n_i, ...) stacked into one (B, width, ...) tensor, ``fill`` past each end."""
    shape = (len(arrays), width, *arrays[0].shape[1:])
    out = np.full(shape, fill, dtype=arrays[0].dtype)
    for b, a in enumerate(arrays):
        out[b, :len(a)] = a
    return torch.from_numpy(out)
