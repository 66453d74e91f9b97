"""ELMo as a task feature: learned scalar mixes over the biLM's layers, read from the layer cache.

The biLM is frozen, so its layers come from :mod:`elmo_tasks.features.cache`; only the mixes
(weights ``w``, scale ``gamma``) and the dropout live here, in :class:`elmo_tasks.elmo.Elmo`. With
``where: both`` there are two independent mixes, one for the head's input and one for its encoder's
output. ``from_bilm=True`` recomputes the layers with the biLM on every batch instead (what the
cache saves; ``benchmarks/cache_vs_recompute.py`` measures the difference).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from elmo_tasks.config import ElmoConfig
from elmo_tasks.elmo import Elmo
from elmo_tasks.formats.convert import resolve_model_dir as resolve_source


def resolve_model_dir(model: str) -> Path:
    """``default`` -> the toolkit's default model, ``fixture`` -> the tiny test model, else a folder."""
    from elmo_tasks.embedder import FIXTURE_MODEL_DIR, default_model_dir

    if model == "default":
        return default_model_dir()
    if model == "fixture":
        return FIXTURE_MODEL_DIR
    return resolve_source(model)  # a model folder, or a TF-Hub / bilm-tf / NLPL source converted once


def model_shape(model_dir: Path) -> tuple[int, int]:
    """(number of representation layers, their width 2P) from a model's options.json."""
    from elmo_tasks.bilm.options import BiLMOptions

    options = BiLMOptions.load(model_dir / "options.json")
    return options.n_layers + 1, options.output_dim


class ElmoFeatures(nn.Module):
    """Mixes (B, L, T, D) layers into ``{"input": (B, T, D), "output": (B, T, D)}`` as configured."""

    def __init__(self, config: ElmoConfig, num_layers: int, dim: int, bilm: nn.Module | None = None) -> None:
        super().__init__()
        self.places = {"input": ["input"], "output": ["output"], "both": ["input", "output"]}[config.where]
        self.dim = dim
        self.elmo = Elmo(bilm, num_output_representations=len(self.places), dropout=config.dropout,
                         do_layer_norm=config.layer_norm, fixed=config.fixed, l2_coef=config.l2, num_layers=num_layers)

    def forward(self, layers: torch.Tensor | None, mask: torch.Tensor, char_ids: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        if layers is None:  # recompute with the biLM (benchmark mode)
            reps = self.elmo(char_ids).representations
        else:
            reps = self.elmo.mix(layers, mask)
        return dict(zip(self.places, reps))

    def penalty(self) -> torch.Tensor:
        return self.elmo.penalty()

    def mix_report(self) -> list[dict]:
        """The learned mixes: softmax weights s_j, gamma and where each goes."""
        return [{"where": place, "weights": [round(w, 6) for w in mix.normalized_weights().tolist()],
                 "gamma": round(mix.gamma.item(), 6), "trainable": bool(mix.weights.requires_grad)}
                for place, mix in zip(self.places, self.elmo.scalar_mixes)]
