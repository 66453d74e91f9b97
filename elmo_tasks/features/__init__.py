"""Task features: GloVe vectors, ELMo mixes over cached biLM layers and a character CNN.

:func:`build_features` turns the config's ``features`` into a :class:`FeatureStack` and fills each
:class:`~elmo_tasks.training.data.Split` with what the stack reads (GloVe ids, character ids, the
cached ELMo layers, built on first use). The task model's input is the concatenation, in the order
glove, chars, elmo; with ``elmo.where: output|both`` a second ELMo mix is handed to the head for its
encoder's output.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from elmo_tasks.config import FeaturesConfig


@dataclass
class Features:
    inputs: torch.Tensor  # (B, T, input_dim)
    output: torch.Tensor | None  # (B, T, output_dim): ELMo for the encoder's output, if configured
    mask: torch.Tensor  # (B, T) bool


class FeatureStack(nn.Module):
    def __init__(self, glove: nn.Module | None = None, chars: nn.Module | None = None, elmo: nn.Module | None = None) -> None:
        super().__init__()
        self.glove, self.chars, self.elmo = glove, chars, elmo
        self.input_dim = sum(m.output_dim for m in (glove, chars) if m is not None)
        self.output_dim = 0
        if elmo is not None:
            self.input_dim += elmo.dim if "input" in elmo.places else 0
            self.output_dim = elmo.dim if "output" in elmo.places else 0

    def forward(self, batch: dict[str, Any]) -> Features:
        mask = batch["mask"]
        parts, output = [], None
        if self.glove is not None:
            parts.append(self.glove(batch["glove"]))
        if self.chars is not None:
            parts.append(self.chars(batch["chars"]))
        if self.elmo is not None:
            reps = self.elmo(batch.get("elmo"), mask, batch.get("elmo_chars"))
            if "input" in reps:
                parts.append(reps["input"])
            output = reps.get("output")
        return Features(torch.cat(parts, dim=-1) * mask.unsqueeze(-1), output, mask)

    def penalty(self) -> torch.Tensor:
        return self.elmo.penalty() if self.elmo is not None else torch.tensor(0.0)

    def mix_report(self) -> list[dict] | None:
        return self.elmo.mix_report() if self.elmo is not None else None


def build_features(config: FeaturesConfig, splits: dict[str, Any], progress: bool = True,
                   recompute_elmo: bool = False, log=lambda message: print(message, file=sys.stderr)) -> tuple[FeatureStack, dict]:
    """The feature stack for ``splits`` (a dict of Split), filling their feature inputs.

    Returns the stack and facts worth recording (GloVe coverage, the ELMo model and its caches).
    ``recompute_elmo`` runs the biLM on every batch instead of reading the cache (for benchmarks).
    """
    info: dict[str, Any] = {}
    glove = chars = elmo = None
    if config.glove is not None:
        from elmo_tasks.features.glove import GloveEmbedding, load_glove

        words = {t for s in splits.values() for tokens in s.tokens for t in tokens}
        vocab, table, hits = load_glove(config.glove.source, words, config.glove.lowercase)
        glove = GloveEmbedding(vocab, table, config.glove.trainable, config.glove.lowercase)
        for split in splits.values():
            split.glove = [glove.ids(tokens) for tokens in split.tokens]
        total = sum(len(t) for s in splits.values() for t in s.tokens)
        known = sum(int((ids > 1).sum()) for s in splits.values() for ids in s.glove)
        info["glove"] = {"source": config.glove.source, "words": len(words), "found": hits,
                         "token_coverage": round(known / max(total, 1), 4)}
        log(f"GloVe: {hits:,} of {len(words):,} word types found; {known / max(total, 1):.1%} of tokens covered")
    if config.chars is not None:
        from elmo_tasks.features.chars import CharCNN, char_ids

        chars = CharCNN(config.chars)
        for split in splits.values():
            split.chars = [char_ids(tokens, config.chars.max_chars) for tokens in split.tokens]
    if config.elmo is not None:
        from elmo_tasks.features.cache import LayerCache
        from elmo_tasks.features.elmo import ElmoFeatures, model_shape, resolve_model_dir

        model_dir = resolve_model_dir(config.elmo.model)
        num_layers, dim = model_shape(model_dir)
        bilm = None
        if recompute_elmo:
            from elmo_tasks.bilm.weights import load_bilm_dir

            bilm = load_bilm_dir(model_dir).eval()
            for split in splits.values():
                split.elmo_chars = True
        else:
            cache = LayerCache(model_dir, config.elmo.cache_dir, config.elmo.cache_dtype, config.elmo.batch_size)
            info["elmo_cache"] = {}
            for name, split in splits.items():
                split.elmo = cache.get(split.tokens, progress=progress, desc=f"ELMo cache ({name})")
                info["elmo_cache"][name] = str(split.elmo.path)
        elmo = ElmoFeatures(config.elmo, num_layers, dim, bilm)
        info["elmo_model"] = {"dir": str(model_dir), "num_layers": num_layers, "dim": dim}
    return FeatureStack(glove, chars, elmo), info
