"""The layer cache in float16 vs float32: size, rounding error, speed and the effect on task scores.

For one config it builds both caches of every split (in a temporary folder), compares the stored
layers, then trains the config with each cache for several seeds and prints the dev and test main
metric (mean and standard deviation over seeds) and the seconds per epoch.

    python benchmarks/cache_dtype.py                                  # WNUT-16 sample, default model
    python benchmarks/cache_dtype.py --config configs/benchmarks/wnut16_glove_elmo.yaml --seeds 3
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elmo_tasks.errors import run_script  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.features.cache import LayerCache  # noqa: E402
from elmo_tasks.model_folder import resolve_model  # noqa: E402
from elmo_tasks.task import SPLITS  # noqa: E402
from elmo_tasks.training import trainer  # noqa: E402
from elmo_tasks.training.splits import load_splits  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "tests/fixtures/tasks/wnut16_elmo.yaml"))
    parser.add_argument("--model", default="default", help="default | fixture | a model folder")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--epochs", type=int, help="trainer.epochs (default: the config's)")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out: dict = {"config": args.config, "model": args.model, "seeds": args.seeds, "threads": args.threads}
    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        base = {"features.elmo.model": args.model, "features.elmo.cache_dir": str(tmp / "cache")}
        if args.epochs:
            base["trainer.epochs"] = args.epochs
        config = load_config(args.config, base)
        model_dir = resolve_model(config.features.elmo.model)
        out["model_dir"] = str(model_dir)
        data = load_splits(config.dataset)
        caches = {}
        for dtype in ("float32", "float16"):
            cache = LayerCache(model_dir, tmp / "cache", dtype)
            started = time.perf_counter()
            found = {s: cache.get([list(t) for t in data[s]["tokens"]], progress=False) for s in SPLITS}
            build = time.perf_counter() - started
            started = time.perf_counter()
            for s in SPLITS:
                cache.lookup([list(t) for t in data[s]["tokens"]])
            caches[dtype] = found
            out[dtype] = {"bytes": sum((f.path / "layers.npy").stat().st_size for f in found.values()),
                          "build_seconds": round(build, 2), "load_seconds": round(time.perf_counter() - started, 3)}
        a = torch.cat([caches["float32"][s].layers for s in SPLITS]).numpy()
        b = torch.cat([caches["float16"][s].layers for s in SPLITS]).float().numpy()
        diff = np.abs(a - b)
        out["rounding"] = {"max_abs": float(diff.max()), "max_abs_value": float(np.abs(a).max()),
                           "rms_relative": float(np.sqrt((diff ** 2).mean() / (a ** 2).mean())),
                           "per_layer_rms_relative": [float(np.sqrt((diff[:, j] ** 2).mean() / (a[:, j] ** 2).mean()))
                                                      for j in range(a.shape[1])]}
        for dtype in ("float32", "float16"):
            runs = []
            for seed in range(args.seeds):
                c = load_config(args.config, {**base, "features.elmo.cache_dtype": dtype, "trainer.seed": seed})
                runs.append(trainer.run(c, tmp / f"run-{dtype}-{seed}", progress=False, echo=False))
            main_metric = runs[0]["main_metric"]
            scores = {split: [r[split][main_metric] for r in runs] for split in ("dev", "test")}
            out[dtype].update({
                "metric": main_metric,
                **{f"{split}_mean": round(statistics.mean(v), 4) for split, v in scores.items()},
                **{f"{split}_std": round(statistics.pstdev(v), 4) for split, v in scores.items()},
                "test_scores": scores["test"],
                "seconds_per_epoch": round(statistics.mean(r["seconds_per_epoch"] for r in runs), 3),
            })
    r = out["rounding"]
    print(f"config {args.config}, model {args.model} ({out['model_dir']}), {args.seeds} seeds, {args.threads} threads")
    print(f"float16 rounding: max abs error {r['max_abs']:.2e} (largest |value| {r['max_abs_value']:.2f}), "
          f"RMS relative error {r['rms_relative']:.2e} (layers: "
          + ", ".join(f"{v:.1e}" for v in r["per_layer_rms_relative"]) + ")")
    print(f"{'cache':<9}{'MiB':>8}{'build s':>9}{'load s':>8}{'s/epoch':>9}{'dev':>16}{'test':>16}")
    for dtype in ("float32", "float16"):
        d = out[dtype]
        print(f"{dtype:<9}{d['bytes'] / 2**20:>8.2f}{d['build_seconds']:>9.1f}{d['load_seconds']:>8.2f}"
              f"{d['seconds_per_epoch']:>9.2f}{d['dev_mean']:>10.4f}±{d['dev_std']:.3f}{d['test_mean']:>10.4f}±{d['test_std']:.3f}")
    print(f"metric: {out['float32']['metric']} (mean ± standard deviation over seeds)")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "cache_dtype")
