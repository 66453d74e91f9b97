"""The biLM's sizes, read from and written to the public ``options.json`` format.

:class:`BiLMOptions` is also the ``model:`` section of a pretraining config (the same field names;
``extra``, ``max_characters_per_token`` and ``n_characters`` are not keys there).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo_tasks.errors import UserError
from elmo_tasks.schema import Source, build


def _unknown() -> Any:
    """A field that collects the keys its section does not know (kept as ``extra``)."""
    return field(default_factory=dict, metadata={"unknown": True})


# the layout of options.json, as the typed loader reads it; numbers are floats here so that a file
# writing 4096.0 loads (checked for integers in BiLMOptions.from_dict)
@dataclass
class _LstmSection:
    dim: float
    projection_dim: float
    n_layers: float = 2
    cell_clip: float | None = None
    proj_clip: float | None = None
    use_skip_connections: bool = False
    extra: dict[str, Any] = _unknown()


@dataclass
class _EmbeddingSection:
    dim: float
    extra: dict[str, Any] = _unknown()  # dropped: the format has no other embedding settings


@dataclass
class _CharCnnSection:
    embedding: _EmbeddingSection
    filters: Any
    n_highway: float | None = 0
    activation: str = "relu"
    max_characters_per_token: float = 50
    n_characters: float = 262
    extra: dict[str, Any] = _unknown()


@dataclass
class _OptionsFile:
    lstm: _LstmSection
    char_cnn: _CharCnnSection
    extra: dict[str, Any] = _unknown()


@dataclass
class BiLMOptions:
    """Everything needed to build a biLM; field names follow ``options.json``."""

    lstm_dim: int = 4096  # memory cell size C
    projection_dim: int = 512  # projected hidden size P (also the token vector size)
    n_layers: int = 2
    cell_clip: float | None = 3.0  # None (or 0 in the file) means no clipping
    proj_clip: float | None = 3.0
    use_skip_connections: bool = True
    char_embedding_dim: int = 16
    filters: list[list[int]] = field(
        default_factory=lambda: [[1, 32], [2, 32], [3, 64], [4, 128], [5, 256], [6, 512], [7, 1024]]
    )
    n_highway: int = 2
    activation: str = "relu"
    max_characters_per_token: int = field(default=50, metadata={"key": False})
    n_characters: int = field(default=262, metadata={"key": False})
    # training-only fields of options.json, kept on save
    extra: dict[str, Any] = field(default_factory=dict, metadata={"key": False})

    @property
    def n_filters(self) -> int:
        return sum(count for _, count in self.filters)

    @property
    def output_dim(self) -> int:
        """Width of each of the biLM's output layers (2P)."""
        return 2 * self.projection_dim

    @classmethod
    def from_dict(cls, data: dict, source: str = "options.json") -> "BiLMOptions":
        """Parse the public format (through the typed loader); an error names the key and the file."""
        where = Source(source, quoted=True)
        file = build(_OptionsFile, data, where)
        lstm, cnn = file.lstm, file.char_cnn

        def integer(key: str, value: float | None) -> int | None:
            if value is not None and int(value) != value:
                raise where.error(key, f"must be an integer, got {value!r}")
            return None if value is None else int(value)

        filters = cnn.filters
        if (
            not isinstance(filters, list)
            or not filters
            or not all(isinstance(f, list) and len(f) == 2 and all(isinstance(v, int) and v > 0 for v in f) for f in filters)
        ):
            raise where.error("char_cnn.filters", "must be a list of [width, count] pairs of positive integers")
        if cnn.activation not in ("relu", "tanh"):
            raise where.error("char_cnn.activation", f"must be 'relu' or 'tanh', got {cnn.activation!r}")
        n_characters = integer("char_cnn.n_characters", cnn.n_characters)
        if n_characters not in (261, 262):
            raise where.error("char_cnn.n_characters", f"must be 261 (training) or 262 (inference), got {n_characters}")
        max_chars = integer("char_cnn.max_characters_per_token", cnn.max_characters_per_token)
        if max_chars != 50:
            raise where.error("char_cnn.max_characters_per_token", f"must be 50, got {max_chars}")
        extra = dict(file.extra)
        extra.update({f"lstm.{k}": v for k, v in lstm.extra.items()})
        extra.update({f"char_cnn.{k}": v for k, v in cnn.extra.items()})
        options = cls(
            lstm_dim=integer("lstm.dim", lstm.dim),
            projection_dim=integer("lstm.projection_dim", lstm.projection_dim),
            n_layers=integer("lstm.n_layers", lstm.n_layers),
            cell_clip=lstm.cell_clip or None,
            proj_clip=lstm.proj_clip or None,
            use_skip_connections=lstm.use_skip_connections,
            char_embedding_dim=integer("char_cnn.embedding.dim", cnn.embedding.dim),
            filters=[list(f) for f in filters],
            n_highway=integer("char_cnn.n_highway", cnn.n_highway) or 0,
            activation=cnn.activation,
            max_characters_per_token=max_chars,
            n_characters=n_characters,
            extra=extra,
        )
        for name, key in (("lstm_dim", "lstm.dim"), ("projection_dim", "lstm.projection_dim"),
                          ("n_layers", "lstm.n_layers"), ("char_embedding_dim", "char_cnn.embedding.dim")):
            if getattr(options, name) <= 0:
                raise where.error(key, f"must be positive, got {getattr(options, name)}")
        return options

    @classmethod
    def load(cls, path: str | Path) -> "BiLMOptions":
        path = Path(path)
        if not path.is_file():
            raise UserError(f"options file not found: {path}")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise UserError(f"{path}: not valid JSON ({exc})") from None
        if not isinstance(data, dict):
            raise UserError(f"{path}: expected a JSON object at the top level")
        return cls.from_dict(data, source=str(path))

    def to_dict(self) -> dict:
        """The public ``options.json`` layout (clipping off is written as 0, as the references read it)."""
        data: dict[str, Any] = {
            "lstm": {
                "dim": self.lstm_dim,
                "projection_dim": self.projection_dim,
                "n_layers": self.n_layers,
                "cell_clip": self.cell_clip or 0,
                "proj_clip": self.proj_clip or 0,
                "use_skip_connections": self.use_skip_connections,
            },
            "char_cnn": {
                "embedding": {"dim": self.char_embedding_dim},
                "filters": [list(f) for f in self.filters],
                "n_highway": self.n_highway,
                "activation": self.activation,
                "max_characters_per_token": self.max_characters_per_token,
                "n_characters": 262,
            },
        }
        for key, value in self.extra.items():
            if key.startswith("lstm."):
                data["lstm"][key[5:]] = value
            elif key.startswith("char_cnn."):
                data["char_cnn"][key[9:]] = value
            else:
                data[key] = value
        return data

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")
