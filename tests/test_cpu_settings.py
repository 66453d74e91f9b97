"""Settings that depend on the CPU: bfloat16 autocast (trainer.amp, training.amp) only where the CPU has
bfloat16 units oneDNN can use; elsewhere float32 and one line that says so. A CPU without them is
emulated by capping oneDNN's instruction set (ONEDNN_MAX_CPU_ISA=AVX512_CORE) in a child process."""

from __future__ import annotations

import json
from pathlib import Path

import yaml
from cli_util import ENV, run_cli
from tasks_util import TASK_FIXTURES

ROOT = Path(__file__).parents[1]
NO_BF16 = {**ENV, "ONEDNN_MAX_CPU_ISA": "AVX512_CORE"}
LINE = "training in float32, since bfloat16 autocast would slow it down here: this CPU has no bfloat16 units oneDNN can use"


def test_task_heads_fall_back_to_float32_with_one_line(tmp_path):
    config = tmp_path / "c.yaml"
    config.write_text(yaml.safe_dump({"extends": str(TASK_FIXTURES / "glosses_glove.yaml"), "dataset": {"max_examples": 20},
                                      "trainer": {"epochs": 1, "amp": True}}))
    result = run_cli("run", config, "--out", tmp_path / "run", env=NO_BF16)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "trainer.amp" in line]
    assert len(lines) == 1 and f"trainer.amp: {LINE}" in lines[0] and "ONEDNN_MAX_CPU_ISA=AVX512_CORE" in lines[0]
    assert json.loads((tmp_path / "run" / "metrics.json").read_text())["precision"] == "float32"
    assert "trainer.amp" in (tmp_path / "run" / "log.txt").read_text()


def test_pretraining_falls_back_to_float32_with_one_line(tmp_path):
    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "tiny.yaml").read_text())
    data["corpus"] = {k: [str(ROOT / "tests" / "fixtures" / "pretrain" / f"{k}.txt")] for k in ("train", "heldout")}
    data["training"].update(amp=True, max_steps=4, eval_every_steps=4, checkpoint_every_steps=4, log_every_steps=2)
    config = tmp_path / "p.yaml"
    config.write_text(yaml.safe_dump(data))
    result = run_cli("pretrain", config, "--out", tmp_path / "p", env=NO_BF16)
    assert result.returncode == 0, result.stderr[-2000:]
    lines = [line for line in result.stderr.splitlines() if "training.amp" in line]
    assert len(lines) == 1 and f"training.amp: {LINE}" in lines[0]
