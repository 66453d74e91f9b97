"""Training checkpoints: one file, written atomically (temporary file, fsync, rename).

A checkpoint holds everything a resumed run needs to continue exactly where the saved run was:
model, softmax and optimizer state, the carried LSTM states, every random generator's state, the
data position (global step), the counters and the evaluation history. It holds tensors and plain
data only and is read with ``torch.load(weights_only=True)``, so a crafted file cannot run code.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch

from elmo_tasks.atomic import atomic_path
from elmo_tasks.errors import UserError

CHECKPOINT_NAME = "checkpoint.pt"


def save_checkpoint(state: dict[str, Any], directory: Path) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / CHECKPOINT_NAME
    with atomic_path(target) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)
        handle.flush()
        os.fsync(handle.fileno())
    return target


def load_checkpoint(directory: Path) -> dict[str, Any]:
    path = directory / CHECKPOINT_NAME
    if not path.is_file():
        raise UserError(f"--resume: no checkpoint in {directory} (expected {path})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # a truncated or foreign file
        raise UserError(f"{path}: cannot read the checkpoint ({type(exc).__name__}: {exc})") from None
