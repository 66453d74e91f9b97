"""Seconds per training epoch of a task head, three ways (issue 21): "before" (the CRF's log
partition through autograd, as kept in bench_common.py), "now" (``CRF``'s log-partition function;
the BiLSTM as two ``nn.LSTM`` per layer in both) and "fused" (now, with ``BiLSTM(fused=True)``: both
directions in one hand-written recurrence), each in float32 and under ``trainer.amp`` (bfloat16).

The offline suite's hour depends on these epochs: its runs are task heads trained on cached ELMo
layers, and most of an epoch is the head's own BiLSTM and CRF. Each config is prepared once; the
arms train copies of the same initial model on the same batches, in interleaved rounds (so they
see the same machine load), and the median epoch is reported.

    python benchmarks/head_speed.py configs/benchmarks/wnut16_glove_elmo.yaml configs/benchmarks/polarity_glove_elmo.yaml

Run it on a quiet machine: it times wall-clock seconds on one thread.
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench_common import autograd_crf_nll  # noqa: E402

from elmo_tasks import modules  # noqa: E402
from elmo_tasks.device import bf16_supported  # noqa: E402
from elmo_tasks.errors import run_script  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.heads.crf import CRF  # noqa: E402
from elmo_tasks.training import trainer  # noqa: E402

ARMS = tuple(f"{code} {dtype}" for dtype in ("float32", "bfloat16") for code in ("before", "now", "fused"))


def as_before(model: nn.Module) -> nn.Module:
    """The same model running the code before: the CRF through autograd."""
    for module in model.modules():
        if isinstance(module, CRF):
            module.nll = types.MethodType(autograd_crf_nll, module)
    return model


def time_config(path: str, epochs: int) -> dict:
    config = load_config(path, {"trainer.amp": False})
    task, splits, model, _ = trainer.prepare(config, progress=False, log=lambda m: None)
    models = {arm: copy.deepcopy(model) for arm in ARMS}
    bf16 = bf16_supported(torch.device("cpu"))
    for arm, m in models.items():
        if arm.startswith("before"):
            as_before(m)
        for module in m.modules():
            if isinstance(module, modules.BiLSTM):
                module.fused = arm.startswith("fused")
        m.amp = bf16 and arm.endswith("bfloat16")
    optimizers = {arm: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=config.trainer.lr)
                  for arm, m in models.items()}
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    losses: dict[str, float] = {}
    for epoch in range(1, epochs + 1):  # rounds: every arm once per round
        for arm in ARMS:
            torch.manual_seed(epoch)  # the same dropout masks for before and now
            tick = time.perf_counter()
            losses[arm] = trainer.train_epoch(models[arm], splits["train"], config, optimizers[arm], epoch,
                                              torch.device("cpu"), progress=False)
            seconds[arm].append(time.perf_counter() - tick)
    base = {kind: statistics.median(seconds[f"before {kind}"]) for kind in ("float32", "bfloat16")}
    return {"config": path, "head": config.head.name, "train_sentences": len(splits["train"]),
            "bfloat16_units": bf16,
            "arms": {arm: {"epoch_seconds": round(statistics.median(s), 3),
                           "speedup": round(base[arm.split()[1]] / statistics.median(s), 2),
                           "epochs": [round(x, 3) for x in s], "last_train_loss": round(losses[arm], 4)}
                     for arm, s in seconds.items()}}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("configs", nargs="+", metavar="CONFIG", help="experiment YAMLs (their trainer.amp is ignored)")
    parser.add_argument("--epochs", type=int, default=3, help="rounds; the median epoch is reported")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results = [time_config(path, args.epochs) for path in args.configs]
    print(f"seconds per training epoch, one thread, median of {args.epochs} interleaved rounds "
          f"(bfloat16 units here: {results[0]['bfloat16_units']})")
    print("speedups against 'before' of the same precision (before: the CRF through autograd; fused: BiLSTM(fused=True))")
    print(f"{'config':<44}" + "".join(f"{arm:>22}" for arm in ARMS))
    for r in results:
        cells = "".join(f"{a['epoch_seconds']:>13.2f} ({a['speedup']:.2f}x)" for a in r["arms"].values())
        print(f"{Path(r['config']).name:<44}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "head_speed")
