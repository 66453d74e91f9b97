"""Code execution: run checkpoints (last.pt, best.pt) load with ``weights_only``, so a crafted pickle
cannot run code; broken checkpoints are one-line errors. (Pretraining checkpoints: see test_pretrain.)"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from elmo_tasks.errors import UserError
from elmo_tasks.training import run_folder

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tests" / "fixtures" / "tasks"
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1"}


class _Payload:
    """Unpickling this calls os.system: what a malicious checkpoint does."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def crafted(path: Path, marker: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"fingerprint": "x", "epoch": 1, "model": {"w": torch.zeros(2)}, "evil": _Payload(marker)}, path)
    return path


def test_the_crafted_file_does_run_code_without_weights_only(tmp_path):
    """The payload is real: plain pickle loading runs it (so the tests below can fail)."""
    marker = tmp_path / "ran"
    torch.load(crafted(tmp_path / "x.pt", marker), weights_only=False)
    assert marker.exists()


@pytest.mark.parametrize("name", ["last.pt", "best.pt"])
def test_load_checkpoint_refuses_code(tmp_path, name):
    marker = tmp_path / "ran"
    with pytest.raises(UserError, match=f"{name}: not a readable checkpoint") as caught:
        run_folder.load_checkpoint(crafted(tmp_path / name, marker))
    assert "\n" not in str(caught.value) and not marker.exists()


def test_run_with_a_crafted_last_pt_runs_no_code(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(f"extends: {TASKS / 'glosses_glove.yaml'}\ndataset: {{max_examples: 20}}\n", encoding="utf-8")
    out, marker = tmp_path / "run", tmp_path / "ran"
    crafted(out / "checkpoints" / "last.pt", marker)
    result = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "run", str(config), "--out", str(out)],
                            capture_output=True, text=True, env=ENV, timeout=300)
    assert result.returncode == 2 and not marker.exists()
    assert result.stderr.count("\n") == 1 and "Traceback" not in result.stderr
    assert f"{out / 'checkpoints' / 'last.pt'}: not a readable checkpoint" in result.stderr


@pytest.mark.parametrize("content", [b"", os.urandom(512), b"PK\x03\x04garbage"])
def test_broken_checkpoints_are_user_errors(tmp_path, content):
    path = tmp_path / "last.pt"
    path.write_bytes(content)
    with pytest.raises(UserError, match="not a readable checkpoint"):
        run_folder.load_checkpoint(path)


def test_optimizer_state_and_plain_data_load_with_weights_only(tmp_path):
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(1, 3)).sum().backward()
    optimizer.step()
    state = {"fingerprint": "f", "epoch": 2, "model": model.state_dict(), "optimizer": optimizer.state_dict(),
             "history": [{"epoch": 1, "train_loss": 0.5, "dev": {"accuracy": 0.7}}], "best_score": 0.7,
             "best_epoch": 1, "rng": torch.get_rng_state()}
    torch.save(state, tmp_path / "last.pt")
    loaded = run_folder.load_checkpoint(tmp_path / "last.pt")
    again = torch.optim.Adam(torch.nn.Linear(3, 2).parameters(), lr=0.01)
    again.load_state_dict(loaded["optimizer"])
    assert loaded["history"] == state["history"] and torch.equal(loaded["rng"], state["rng"])
    assert torch.equal(again.state_dict()["state"][0]["exp_avg"], optimizer.state_dict()["state"][0]["exp_avg"])
