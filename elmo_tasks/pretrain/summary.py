"""``summary.json`` of a pretraining run: corpus, vocabulary, shape, steps, tokens, time, hardware, results."""

from __future__ import annotations

import json
import os
import platform
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elmo_tasks.pretrain.initialise import count_parameters, exported_parameters


def read_manifest(config) -> dict | None:
    """The corpus manifest named by the config, or the one beside the first training file."""
    path = config.corpus.manifest
    if path is None and config.corpus.train:
        candidate = Path(config.corpus.train[0]).parent / "manifest.json"
        path = str(candidate) if candidate.is_file() else None
    if not path:
        return None
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None


def run_summary(trainer, final: dict[str, float] | None) -> dict[str, Any]:
    d, t = trainer.data, trainer.config.training
    oov = float(np.mean(d.target_map[d.train.tokens] == d.vocab.unk)) if d.train.n_tokens else 0.0
    return {
        "config": trainer.config.source, "command": trainer.command, "state_mode": t.state_mode,
        "init_from": trainer.init_from, "processes": trainer.parallel.world,
        "corpus": {"train_files": d.train.sources, "train_sentences": d.train.n_sentences,
                   "train_tokens": d.train.n_tokens, "heldout_files": d.heldout.sources if d.heldout else [],
                   "heldout_sentences": d.heldout.n_sentences if d.heldout else 0,
                   "heldout_tokens": d.heldout.n_tokens if d.heldout else 0,
                   "types": len(d.types) - 3, "train_lines_over_1000_tokens": d.train.long_lines,
                   "manifest": read_manifest(trainer.config)},
        "vocab_size": len(d.vocab), "train_oov_rate": oov,
        "options": trainer.model.options.to_dict(),
        "parameters_bilm": exported_parameters(trainer.model), "parameters_softmax": count_parameters(trainer.softmax),
        "softmax": f"sampled ({t.n_negative_samples} negatives)" if trainer.sampled else "full",
        "steps": trainer.step, "skipped_steps": trainer.skipped_steps, "batches_per_epoch": trainer.batches_per_epoch,
        "epochs": trainer.step / trainer.batches_per_epoch, "tokens_seen": trainer.tokens_seen,
        "batch_size": t.batch_size, "unroll_steps": t.unroll_steps,
        "amp": bool(trainer.amp), "wall_time_s": round(trainer.elapsed, 1),
        "hardware": {"device": str(trainer.device), "cpu": platform.processor() or platform.machine(),
                     "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                     "gpu": torch.cuda.get_device_name(trainer.device) if trainer.device.type == "cuda" else None,
                     "torch": torch.__version__},
        "final_heldout": final, "history": trainer.history,
    }
