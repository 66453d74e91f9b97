"""Per-epoch time of a task head on cached ELMo layers vs recomputing the biLM every epoch.

The biLM is frozen, so ``elmo-tasks run`` computes each split's layers once (the layer cache) and
every epoch only mixes them. Without the cache every epoch would run the biLM over the training
and dev sentences again. This script trains the same head both ways on the same data, seeds and
batches, and prints the seconds per epoch (training pass + dev evaluation) of each, their ratio,
and the one-off cost of building the cache.

    python benchmarks/cache_vs_recompute.py                          # WNUT-16 sample, default model
    python benchmarks/cache_vs_recompute.py --model shape:default    # random weights, default's shape
    python benchmarks/cache_vs_recompute.py --config configs/benchmarks/wnut16_glove_elmo.yaml

``--model``: ``default`` (the shipped model), ``fixture``, a model folder, or ``shape:default`` /
``shape:small`` / ``shape:original`` for random weights of the default model's or a released model's shape
(speed depends only on the shape). Caches go to a temporary folder, so the build is always timed.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elmo_tasks.bilm.model import BiLM  # noqa: E402
from elmo_tasks.bilm.options import BiLMOptions  # noqa: E402
from elmo_tasks.bilm.weights import save_bilm  # noqa: E402
from elmo_tasks.errors import run_script  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.training import trainer  # noqa: E402

SHAPES = {
    # configs/pretrain/default.yaml: LSTM 512 / projection 128, 512-filter char CNN, 1 highway
    "default": dict(lstm_dim=512, projection_dim=128, n_highway=1,
                    filters=[[1, 32], [2, 32], [3, 64], [4, 128], [5, 256]]),
    # elmo_2x1024_128_2048cnn_1xhighway (the released small model)
    "small": dict(lstm_dim=1024, projection_dim=128, n_highway=1),
    # elmo_2x4096_512_2048cnn_2xhighway (the released original model)
    "original": dict(lstm_dim=4096, projection_dim=512, n_highway=2),
}


def model_folder(spec: str, tmp: Path) -> str:
    if not spec.startswith("shape:"):
        return spec
    torch.manual_seed(0)
    bilm = BiLM(BiLMOptions(**SHAPES[spec.split(":", 1)[1]]))
    with torch.no_grad():
        for p in bilm.parameters():
            p.uniform_(-0.1, 0.1)
    return str(save_bilm(bilm, tmp / "model"))


class Mode:
    """One way of getting the ELMo layers: its model, optimizer and per-epoch timings."""

    def __init__(self, config, recompute: bool) -> None:
        started = time.perf_counter()
        self.config = config
        self.task, self.splits, self.model, _ = trainer.prepare(config, progress=False, recompute_elmo=recompute,
                                                                log=lambda m: None)
        self.setup_seconds = time.perf_counter() - started
        params = [p for p in self.model.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=config.trainer.lr)
        self.train_wall, self.dev_wall, self.train_cpu, self.dev_cpu, self.dev = [], [], [], [], {}

    def epoch(self, epoch: int) -> None:
        device = torch.device("cpu")
        wall, cpu = time.perf_counter(), time.process_time()
        trainer.train_epoch(self.model, self.splits["train"], self.config, self.optimizer, epoch, device, progress=False)
        self.train_wall.append(time.perf_counter() - wall)
        self.train_cpu.append(time.process_time() - cpu)
        wall, cpu = time.perf_counter(), time.process_time()
        self.dev, _ = trainer.evaluate(self.model, self.splits["dev"], self.task, self.config.trainer.batch_size, device)
        self.dev_wall.append(time.perf_counter() - wall)
        self.dev_cpu.append(time.process_time() - cpu)

    def figures(self) -> dict:
        med = statistics.median
        return {"train_seconds": round(med(self.train_wall), 3), "dev_seconds": round(med(self.dev_wall), 3),
                "epoch_seconds": round(med(self.train_wall) + med(self.dev_wall), 3),
                "epoch_cpu_seconds": round(med(self.train_cpu) + med(self.dev_cpu), 3),
                "epochs_wall": [round(a + b, 3) for a, b in zip(self.train_wall, self.dev_wall)],
                "dev": self.dev}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "tests/fixtures/tasks/wnut16_elmo.yaml"))
    parser.add_argument("--model", default="default",
                        help="default | fixture | DIR | shape:default | shape:small | shape:original")
    parser.add_argument("--epochs", type=int, default=3, help="epochs per mode (the median is reported)")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: steadiest on a shared machine)")
    parser.add_argument("--max-examples", type=int, help="cap each split (dataset.max_examples)")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        overrides = {"features.elmo.model": model_folder(args.model, tmp), "features.elmo.cache_dir": str(tmp / "cache"),
                     "features.elmo.dropout": 0.0}
        if args.max_examples:
            overrides["dataset.max_examples"] = args.max_examples
        config = load_config(args.config, overrides)
        from elmo_tasks.model_folder import resolve_model

        model_dir = resolve_model(config.features.elmo.model)
        layers, dim = model_dir.shape()
        cached = Mode(config, recompute=False)  # its setup builds the cache
        recomputed = Mode(config, recompute=True)
        for epoch in range(1, args.epochs + 1):  # alternate, so both see the same machine load
            cached.epoch(epoch)
            recomputed.epoch(epoch)

    c, r = cached.figures(), recomputed.figures()
    figures = {
        "config": args.config, "model": args.model, "model_dir": str(model_dir), "elmo_dim": dim,
        "cache_dtype": config.features.elmo.cache_dtype, "threads": args.threads, "epochs": args.epochs,
        "head": config.head.name, "train_sentences": len(cached.splits["train"]), "dev_sentences": len(cached.splits["dev"]),
        "cached": {**c, "setup_seconds_with_cache_build": round(cached.setup_seconds, 2)},
        "recomputed": r,
        "ratio_epoch": round(r["epoch_seconds"] / c["epoch_seconds"], 2),
        "ratio_epoch_cpu": round(r["epoch_cpu_seconds"] / c["epoch_cpu_seconds"], 2),
        "ratio_train": round(r["train_seconds"] / c["train_seconds"], 2),
    }
    print(f"config {args.config}: {config.head.name} head, {figures['train_sentences']} train / "
          f"{figures['dev_sentences']} dev sentences; model {args.model} ({model_dir}, 2P = {dim}); "
          f"{args.threads} threads; median of {args.epochs} epochs, the two modes alternating")
    print(f"{'':<22}{'train s':>10}{'dev s':>10}{'epoch s':>10}{'epoch cpu s':>13}")
    for name, f in (("cached layers", c), ("recompute the biLM", r)):
        print(f"{name:<22}{f['train_seconds']:>10.2f}{f['dev_seconds']:>10.2f}{f['epoch_seconds']:>10.2f}"
              f"{f['epoch_cpu_seconds']:>13.2f}")
    print(f"ratio (recompute / cached): {figures['ratio_epoch']:.1f}x per epoch (wall), "
          f"{figures['ratio_epoch_cpu']:.1f}x (CPU time), {figures['ratio_train']:.1f}x per training pass; "
          f"building the {figures['cache_dtype']} cache once took {cached.setup_seconds:.1f}s (with loading the data)")
    main_metric = cached.task.main_metric
    print(f"dev {main_metric} after the last epoch: cached {c['dev'][main_metric]:.4f}, "
          f"recomputed {r['dev'][main_metric]:.4f} (a {figures['cache_dtype']} cache rounds the layers, which changes "
          "the training path a little)")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "cache_vs_recompute")
