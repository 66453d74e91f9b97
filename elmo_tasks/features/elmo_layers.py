"""``elmo``: learned scalar mixes over the frozen biLM's layers, read from the layer cache.

The biLM is frozen, so its layers come from :mod:`elmo_tasks.features.cache`, computed once per
(model, sentences); only the mixes (weights ``w``, scale ``gamma``) and the dropout are trained
here. With ``where: both`` there are two independent mixes, one for the head's input and one for
its encoder's output. With ``BuildContext.recompute`` the biLM runs on every batch instead of
the cache (what the cache saves; ``benchmarks/cache_vs_recompute.py`` measures the difference);
the live layers are rounded to ``cache_dtype`` first, so that the mix sees what it was trained on
(a trained task model predicts this way: :mod:`elmo_tasks.task_model`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn

from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.inference import InferenceEngine
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.errors import UserError
from elmo_tasks.features.base import BuildContext, Feature
from elmo_tasks.features.cache import CachedLayers, LayerCache
from elmo_tasks.model_folder import NAMED, ModelFolder, resolve_model
from elmo_tasks.modules import Dropout
from elmo_tasks.scalar_mix import ScalarMix, fixed_weights
from elmo_tasks.schema import ConfigError

PLACES = {"input": ("input",), "output": ("output",), "both": ("input", "output")}


@dataclass
class ElmoOptions:
    # "default": the toolkit's default model; "fixture": the tiny test model; or a model folder
    # a folder (relative to the config's folder), or a public model's name or URL (elmo-tasks models)
    model: str = field(default="default", metadata={"path": NAMED, "remote": True})
    layer_norm: bool = False
    l2: float = 0.0  # lambda * ||w||^2 on the mix weights (the paper's regulariser)
    dropout: float = 0.5  # on the mixed vector
    # fixed (not learned) pre-softmax weights: top | average | layer0 | layer1 | layer2 | [w0, w1, w2]
    fixed: str | list[float] | None = None
    # where the ELMo vector goes: the head's input, its encoder's output, or both (two mixes)
    where: Literal["input", "output", "both"] = "input"
    cache_dtype: Literal["float16", "float32"] = "float16"
    cache_dir: str | None = None  # default: $ELMO_TASKS_CACHE/features (~/.cache/elmo-tasks/features)
    batch_size: int = 64  # sentences per biLM batch when the cache is built

    def check(self) -> None:
        if self.model not in NAMED:
            try:
                resolve_model(self.model)
            except UserError as exc:  # which file is missing
                raise ConfigError(str(exc), key="model") from None
        if self.fixed is not None:
            try:
                fixed_weights(self.fixed, 3)
            except ValueError as exc:
                raise ConfigError(str(exc), key="fixed") from None
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError("must be in [0, 1)", key="dropout")
        if self.l2 < 0:
            raise ConfigError("must not be negative", key="l2")
        if self.batch_size < 1:
            raise ConfigError(f"must be at least 1, got {self.batch_size}", key="batch_size")

    def identity(self) -> dict[str, str]:
        """What the run fingerprint records beside these options: the model's content digest."""
        return {"model_digest": resolve_model(self.model).digest()}

    def layer_cache(self) -> LayerCache:
        """Where this model's layers are cached."""
        return LayerCache(resolve_model(self.model), self.cache_dir, self.cache_dtype, self.batch_size)


class ElmoFeature(Feature):
    """Mixes (B, L, T, D) layers into one (B, T, D) vector per place (``where``), with dropout."""

    Options = ElmoOptions

    def __init__(self, options: ElmoOptions, model: ModelFolder, cache: LayerCache | None = None,
                 bilm: nn.Module | None = None, progress: bool = True) -> None:
        super().__init__()
        num_layers, self.output_dim = model.shape()
        self.places = PLACES[options.where]
        self.mixes = nn.ModuleList(
            ScalarMix(num_layers, do_layer_norm=options.layer_norm, fixed=options.fixed, l2_coef=options.l2)
            for _ in self.places)
        self.dropout = Dropout(options.dropout)
        self.cache, self.bilm, self.progress = cache, bilm, progress
        self.engine = None
        self.live_dtype = torch.float16 if options.cache_dtype == "float16" else None  # live layers, as cached
        if bilm is not None:  # recompute mode: the frozen biLM runs through the fast inference path
            self.engine = InferenceEngine(bilm.requires_grad_(False))
        self.info: dict[str, Any] = {"elmo_model": {"dir": str(model), "num_layers": num_layers, "dim": self.output_dim}}

    @classmethod
    def build(cls, options: ElmoOptions, tokens: dict[str, list[list[str]]], context: BuildContext) -> "ElmoFeature":
        model = resolve_model(options.model)
        if context.recompute:
            return cls(options, model, bilm=load_bilm(model.options_file, model.weights_file).eval())
        return cls(options, model, cache=options.layer_cache(), progress=context.progress)

    def prepare(self, split: str, tokens: list[list[str]]) -> CachedLayers | list[list[str]]:
        """The split's cached layers (built on first use), or its tokens when recomputing."""
        if self.bilm is not None:
            return tokens
        cached = self.cache.get(tokens, progress=self.progress, desc=f"ELMo cache ({split})")
        self.info.setdefault("elmo_cache", {})[split] = str(cached.path)
        return cached

    def collate(self, prepared: Any, rows: list[int], width: int) -> torch.Tensor:
        if self.bilm is None:
            layers, _ = prepared.batch(rows, width)
            return layers
        ids = batch_to_ids([prepared[i] for i in rows])
        return nn.functional.pad(ids, (0, 0, 0, width - ids.shape[1]))

    def forward(self, inputs: torch.Tensor, mask: torch.Tensor) -> list[torch.Tensor]:
        if self.bilm is not None:  # character ids: run the frozen biLM (prediction, benchmarks)
            # float32 as the cache was built, even under trainer.amp's autocast
            with torch.no_grad(), torch.autocast(inputs.device.type, enabled=False):
                inputs = self.engine(inputs).layers
                if self.live_dtype is not None:
                    inputs = inputs.to(self.live_dtype)
        layers = inputs.float()
        return [self.dropout(mix(layers, mask)) for mix in self.mixes]

    def _apply(self, fn, *args, **kwargs):  # .to()/.cuda(): the engine's caches belong to the old weights
        if self.engine is not None:
            self.engine.clear_caches()
        return super()._apply(fn, *args, **kwargs)

    def penalty(self) -> torch.Tensor:
        """The summed L2 penalty of every mix's weights (add to the loss)."""
        return sum((mix.penalty() for mix in self.mixes), torch.tensor(0.0))

    def report(self) -> dict[str, Any]:
        return self.info

    def mix_report(self) -> list[dict]:
        """The learned mixes: softmax weights s_j, gamma and where each goes."""
        return [{"where": place, "weights": [round(w, 6) for w in mix.normalized_weights().tolist()],
                 "gamma": round(mix.gamma.item(), 6), "trainable": bool(mix.weights.requires_grad)}
                for place, mix in zip(self.places, self.mixes)]
