"""A run folder's life: what it holds, whether it is finished, resumable or another config's.

::

    config.yaml           the resolved config (extends merged, defaults filled, paths absolute)
    log.txt               one line per event, appended across resumes
    metrics.json          written last: its presence means the run is complete
    mix.json              the learned ELMo mix(es): softmax weights, gamma, where each goes
    predictions/dev.jsonl, predictions/test.jsonl   one object per sentence: tokens, gold, pred
    checkpoints/best.pt   the weights with the best dev metric
    checkpoints/last.pt   the state after the last finished epoch (removed when the run completes)
    failed.json           only after a failure: the error (removed when the run starts again)
    .lock                 only while a process runs it (``elmo_tasks.lock``: a second one is refused)

Every file is written atomically (``elmo_tasks.atomic``). Checkpoints are read with
``torch.load(weights_only=True)``: tensors and plain data only, so a crafted file cannot run code.
"""

from __future__ import annotations

import json
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch
from torch import nn

from elmo_tasks.atomic import atomic_path, write_text_atomic
from elmo_tasks.errors import UserError
from elmo_tasks.lock import LOCK_NAME, hold
from elmo_tasks.schema import dump_yaml

FAILED_NAME = "failed.json"


class RunFolder:
    """One run's folder, tied to the fingerprint of the config that owns it."""

    def __init__(self, path: str | Path, fingerprint: str, echo: bool = True) -> None:
        self.path, self.fingerprint, self.echo = Path(path), fingerprint, echo
        self.metrics_path = self.path / "metrics.json"
        self.state_path = self.path / "checkpoints" / "last.pt"
        self.best_path = self.path / "checkpoints" / "best.pt"

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Create the folder and hold its lock for the block: a second process is refused, naming this one."""
        try:
            self.path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create the run folder {self.path}: {exc.strerror or exc}") from None
        with hold(self.path / LOCK_NAME, f"run folder {self.path}"):
            yield

    def clear(self) -> None:
        """Remove what a previous run left (``--restart``)."""
        for name in ("metrics.json", "mix.json", "log.txt", "config.yaml", FAILED_NAME):
            (self.path / name).unlink(missing_ok=True)
        shutil.rmtree(self.path / "checkpoints", ignore_errors=True)
        shutil.rmtree(self.path / "predictions", ignore_errors=True)

    def finished(self) -> dict[str, Any] | None:
        """The metrics of a complete run of this config, None if there is none; another config's is an error."""
        if not self.metrics_path.is_file():
            return None
        try:
            done = json.loads(self.metrics_path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{self.metrics_path}: not valid JSON ({exc}); --restart runs it again") from None
        if not isinstance(done, dict):
            raise UserError(f"{self.metrics_path}: not a metrics.json of elmo-tasks run (expected a JSON object); "
                            "--restart runs it again")
        if done.get("fingerprint") != self.fingerprint:
            raise UserError(f"{self.path} holds a finished run of another config; use --out DIR or --restart")
        return done

    def resume_state(self) -> dict[str, Any] | None:
        """The state after the last finished epoch of an unfinished run of this config, if any."""
        state = load_checkpoint(self.state_path) if self.state_path.is_file() else None
        if state is None:
            return None
        needed = {"fingerprint": str, "epoch": int, "model": dict, "history": list, "best_epoch": int}
        if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in needed.items()):
            raise UserError(f"{self.state_path}: not a checkpoint of elmo-tasks run; --restart discards it")
        if state["fingerprint"] != self.fingerprint:
            raise UserError(f"{self.path} holds an unfinished run of another config; use --out DIR or --restart")
        return state

    def start(self, config: dict[str, Any]) -> None:
        """Create the folder and write the resolved config."""
        (self.path / FAILED_NAME).unlink(missing_ok=True)
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
        if not self.best_path.is_file():
            raise UserError(f"{self.best_path}: missing (the folder was changed during the run); --restart runs it again")
        model.load_state_dict(load_checkpoint(self.best_path))

    def save_state(self, state: dict[str, Any]) -> None:
        _save({"fingerprint": self.fingerprint, **state}, self.state_path)

    def write_predictions(self, split: str, rows: list[dict[str, Any]]) -> None:
        lines = [json.dumps(row, ensure_ascii=False) for row in rows]
        write_text_atomic(self.path / "predictions" / f"{split}.jsonl", "\n".join(lines) + ("\n" if lines else ""))

    def write_json(self, name: str, data: Any) -> Path:
        write_text_atomic(self.path / name, json.dumps(data, indent=1) + "\n")
        return self.path / name

    def mark_failed(self, exc: BaseException) -> None:
        """Write failed.json (the error), so that the folder is never taken for a finished run."""
        self.write_json(FAILED_NAME, {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__,
                                      "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())})

    def finish(self, metrics: dict[str, Any]) -> Path:
        """Write metrics.json (marking the run complete) and drop the resume state."""
        path = self.write_json("metrics.json", metrics)
        self.state_path.unlink(missing_ok=True)
        return path


def load_checkpoint(path: Path) -> Any:
    """A checkpoint of this module: tensors and plain data only (``weights_only``: a crafted file
    cannot run code); an unreadable one is a UserError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError, ...)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint of elmo-tasks run ({reason[:160]}); "
                        "--restart discards it") from None


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)
