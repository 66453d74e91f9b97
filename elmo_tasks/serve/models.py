"""What the worker thread owns (the biLM's ``Embedder`` and the ``TaskModel``s) and how it runs one batch."""

from __future__ import annotations

from typing import Any

from elmo_tasks.dump import reduce_layers
from elmo_tasks.embedder import Embedder
from elmo_tasks.serve.payloads import EmbedItem

EMBED = "embed"  # the batch kind of the biLM; a task model's kind is "predict:NAME"


class Models:
    """The loaded models; ``run(kind, items)`` is the batcher's runner (called only in its worker thread)."""

    def __init__(self, embedder: Embedder, bilm_name: str, bilm_digest: str | None,
                 tasks: dict[str, Any] | None = None) -> None:
        self.embedder = embedder
        self.bilm_name = bilm_name
        self.bilm_digest = bilm_digest
        self.tasks = dict(tasks or {})

    def run(self, kind: str, items: list[Any]) -> list[Any]:
        if kind == EMBED:
            return self._embed(items)
        model = self.tasks[kind.split(":", 1)[1]]
        return model.predict_examples(items, batch_size=max(1, len(items)))

    def _embed(self, items: list[EmbedItem]) -> list[Any]:
        arrays = self.embedder.embed_batch([item.tokens for item in items])
        return [reduce_layers(a, item.layers, item.pool) for item, a in zip(items, arrays)]

    def info(self) -> dict[str, Any]:
        """``GET /v1/models``: the biLM with its digest and each task model's ``info()``."""
        return {"bilm": {"name": self.bilm_name, "digest": self.bilm_digest, "output_dim": self.embedder.output_dim,
                         "layers": self.embedder.num_layers},
                "models": [{**model.info(), "name": name} for name, model in self.tasks.items()]}
