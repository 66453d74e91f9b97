"""The biLM's sizes, read from and written to the public ``options.json`` format."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo_tasks.errors import UserError
from elmo_tasks.paths import read_json_file


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
    max_characters_per_token: int = 50
    n_characters: int = 262
    extra: dict[str, Any] = field(default_factory=dict)  # training-only fields, kept on save

    @property
    def n_filters(self) -> int:
        return sum(count for _, count in self.filters)

    @property
    def output_dim(self) -> int:
        """Width of each of the biLM's output layers (2P)."""
        return 2 * self.projection_dim

    @classmethod
    def from_dict(cls, data: dict, source: str = "options.json") -> "BiLMOptions":
        """Parse the public format; an error names the missing or wrong key and the file."""

        def get(path: str, default: Any = KeyError) -> Any:
            node: Any = data
            for part in path.split("."):
                if not isinstance(node, dict) or part not in node:
                    if default is KeyError:
                        raise UserError(f"{source}: missing key '{path}'")
                    return default
                node = node[part]
            return node

        def number(path: str, kind: type, default: Any = KeyError) -> Any:
            value = get(path, default)
            if value is None:
                return None
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise UserError(f"{source}: key '{path}' must be a number, got {value!r}")
            if kind is int and int(value) != value:
                raise UserError(f"{source}: key '{path}' must be an integer, got {value!r}")
            return kind(value)

        filters = get("char_cnn.filters")
        if (
            not isinstance(filters, list)
            or not filters
            or not all(isinstance(f, list) and len(f) == 2 and all(isinstance(v, int) and v > 0 for v in f) for f in filters)
        ):
            raise UserError(f"{source}: key 'char_cnn.filters' must be a list of [width, count] pairs of positive integers")
        activation = get("char_cnn.activation", "relu")
        if activation not in ("relu", "tanh"):
            raise UserError(f"{source}: key 'char_cnn.activation' must be 'relu' or 'tanh', got {activation!r}")
        n_characters = number("char_cnn.n_characters", int, 262)
        if n_characters not in (261, 262):
            raise UserError(f"{source}: key 'char_cnn.n_characters' must be 261 (training) or 262 (inference), got {n_characters}")
        max_chars = number("char_cnn.max_characters_per_token", int, 50)
        if max_chars != 50:
            raise UserError(f"{source}: key 'char_cnn.max_characters_per_token' must be 50, got {max_chars}")
        skip = get("lstm.use_skip_connections", False)
        if not isinstance(skip, bool):
            raise UserError(f"{source}: key 'lstm.use_skip_connections' must be true or false")
        known_lstm = {"dim", "projection_dim", "n_layers", "cell_clip", "proj_clip", "use_skip_connections"}
        known_cnn = {"embedding", "filters", "n_highway", "activation", "max_characters_per_token", "n_characters"}
        extra = {k: v for k, v in data.items() if k not in ("lstm", "char_cnn")}
        extra.update({f"lstm.{k}": v for k, v in data.get("lstm", {}).items() if k not in known_lstm})
        extra.update({f"char_cnn.{k}": v for k, v in data.get("char_cnn", {}).items() if k not in known_cnn})
        options = cls(
            lstm_dim=number("lstm.dim", int),
            projection_dim=number("lstm.projection_dim", int),
            n_layers=number("lstm.n_layers", int, 2),
            cell_clip=number("lstm.cell_clip", float, None) or None,
            proj_clip=number("lstm.proj_clip", float, None) or None,
            use_skip_connections=skip,
            char_embedding_dim=number("char_cnn.embedding.dim", int),
            filters=[list(f) for f in filters],
            n_highway=number("char_cnn.n_highway", int, 0) or 0,
            activation=activation,
            max_characters_per_token=max_chars,
            n_characters=n_characters,
            extra=extra,
        )
        for name in ("lstm_dim", "projection_dim", "n_layers", "char_embedding_dim"):
            if getattr(options, name) <= 0:
                raise UserError(f"{source}: {name.replace('_', '.')} must be positive, got {getattr(options, name)}")
        return options

    @classmethod
    def load(cls, path: str | Path) -> "BiLMOptions":
        path = Path(path)
        data = read_json_file(path, "options file")
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
