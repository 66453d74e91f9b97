"""Seconds per training epoch of a task head, three ways: as it was (``nn.Dropout``, float32), with
``modules.Dropout`` (float32), and with ``modules.Dropout`` under ``trainer.amp`` (bfloat16 products).

The offline suite's hour depends on these epochs: its 150 runs are task heads trained on cached
ELMo layers, and most of an epoch is the head's own BiLSTM. Each config is prepared once; the
three arms train copies of the same initial model on the same batches, in interleaved rounds (so
they see the same machine load), and the median epoch is reported.

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
from pathlib import Path

import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elmo_tasks import modules  # noqa: E402
from elmo_tasks.device import bf16_supported  # noqa: E402
from elmo_tasks.errors import run_script  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.training import trainer  # noqa: E402

ARMS = ("nn.Dropout float32", "Dropout float32", "Dropout bfloat16")


def with_nn_dropout(model: nn.Module) -> nn.Module:
    """The same model with every ``modules.Dropout`` swapped for ``nn.Dropout`` (the code before)."""
    for parent in model.modules():
        for name, child in list(parent.named_children()):
            if isinstance(child, modules.Dropout):
                setattr(parent, name, nn.Dropout(child.p))
    return model


def time_config(path: str, epochs: int) -> dict:
    config = load_config(path, {"trainer.amp": False})
    task, splits, model, _ = trainer.prepare(config, progress=False, log=lambda m: None)
    models = {arm: copy.deepcopy(model) for arm in ARMS}
    with_nn_dropout(models[ARMS[0]])
    models[ARMS[2]].amp = bf16_supported(torch.device("cpu"))
    optimizers = {arm: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=config.trainer.lr)
                  for arm, m in models.items()}
    seconds: dict[str, list[float]] = {arm: [] for arm in ARMS}
    losses: dict[str, float] = {}
    for epoch in range(1, epochs + 1):  # rounds: every arm once per round
        for arm in ARMS:
            tick = time.perf_counter()
            losses[arm] = trainer.train_epoch(models[arm], splits["train"], config, optimizers[arm], epoch,
                                              torch.device("cpu"), progress=False)
            seconds[arm].append(time.perf_counter() - tick)
    base = statistics.median(seconds[ARMS[0]])
    return {"config": path, "head": config.head.name, "train_sentences": len(splits["train"]),
            "bfloat16_units": models[ARMS[2]].amp,
            "arms": {arm: {"epoch_seconds": round(statistics.median(s), 3), "speedup": round(base / statistics.median(s), 2),
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
    print(f"{'config':<44}" + "".join(f"{arm:>22}" for arm in ARMS))
    for r in results:
        cells = "".join(f"{a['epoch_seconds']:>13.2f} ({a['speedup']:.2f}x)" for a in r["arms"].values())
        print(f"{Path(r['config']).name:<44}{cells}")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "head_speed")
