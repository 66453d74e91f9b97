"""A run folder's life: what it holds, whether it is finished, resumable or another config's.

::

    config.yaml           the resolved config (extends merged, defaults filled, paths absolute)
    log.txt               one line per event, appended across resumes
    metrics.json          written last: its presence means the run is complete
    mix.json              the learned ELMo mix(es): softmax weights, gamma, where each goes
    predictions/dev.jsonl, predictions/test.jsonl   one object per sentence: tokens, gold, pred
    checkpoints/best.pt   the weights with the best dev metric
    checkpoints/last.pt   the state after the last finished epoch (removed when the run completes)

Every file is written atomically (``elmo_tasks.atomic``).
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elmo_tasks.atomic import atomic_path, write_text_atomic
from elmo_tasks.errors import UserError
from elmo_tasks.schema import dump_yaml


class RunFolder:
    """One run's folder, tied to the fingerprint of the config that owns it."""

    def __init__(self, path: str | Path, fingerprint: str, echo: bool = True) -> None:
        self.path, self.fingerprint, self.echo = Path(path), fingerprint, echo
        self.metrics_path = self.path / "metrics.json"
        self.state_path = self.path / "checkpoints" / "last.pt"
        self.best_path = self.path / "checkpoints" / "best.pt"

    def clear(self) -> None:
        """Remove what a previous run left (``--restart``)."""
        for name in ("metrics.json", "mix.json", "log.txt", "config.yaml"):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / "checkpoints", ignore_errors=True)
        shutil.rmtree(self.path / "predictions", ignore_errors=True)

    def finished(self) -> dict[str, Any] | None:
        """The metrics of a complete run of this config, None if there is none; another config's is an error."""
        if not self.metrics_path.is_file():
            return None
        done = json.loads(self.metrics_path.read_text())
        if done.get("fingerprint") != self.fingerprint:
            raise UserError(f"{self.path} holds a finished run of another config; use --out DIR or --restart")
        return done

    def resume_state(self) -> dict[str, Any] | None:
        """The state after the last finished epoch of an unfinished run of this config, if any."""
        state = torch.load(self.state_path, weights_only=False) if self.state_path.is_file() else None
        if state is not None and state.get("fingerprint") != self.fingerprint:
            raise UserError(f"{self.path} holds an unfinished run of another config; use --out DIR or --restart")
        return state

    def start(self, config: dict[str, Any]) -> None:
        """Create the folder and write the resolved config."""
        (self.path / "checkpoints").mkdir(parents=True, exist_ok=True)
        (self.path / "predictions").mkdir(exist_ok=True)
        write_text_atomic(self.path / "config.yaml", dump_yaml(config))

    def log(self, message: str) -> None:
        """Append a time-stamped line to log.txt (and echo it on stderr)."""
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}"
        with open(self.path / "log.txt", "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        if self.echo:
            print(message, file=sys.stderr)

    def save_best(self, model: nn.Module) -> None:
        _save(model.state_dict(), self.best_path)

    def load_best(self, model: nn.Module) -> None:
        model.load_state_dict(torch.load(self.best_path, weights_only=False))

    def save_state(self, state: dict[str, Any]) -> None:
        _save({"fingerprint": self.fingerprint, **state}, self.state_path)

    def write_predictions(self, split: str, rows: list[dict[str, Any]]) -> None:
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        write_text_atomic(self.path / "predictions" / f"{split}.jsonl", "\n".join(lines) + ("\n" if lines else ""))

    def write_json(self, name: str, data: Any) -> Path:
        write_text_atomic(self.path / name, json.dumps(data, indent=1) + "\n")
        return self.path / name

    def finish(self, metrics: dict[str, Any]) -> Path:
        """Write metrics.json (marking the run complete) and drop the resume state."""
        path = self.write_json("metrics.json", metrics)
        self.state_path.unlink(missing_ok=True)
        return path


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
