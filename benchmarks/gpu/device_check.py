"""One prepared run on a GPU machine: CUDA smoke tests, a speed row, the longest pretraining run that
fits, and the held-out perplexity of its result. Every figure is printed and written to
``OUT/device_check.json`` (rewritten after each phase, so a hard stop keeps what was measured).

    PYTHONPATH=. python benchmarks/gpu/device_check.py --corpus CORPUS --config configs/pretrain/gpu.yaml \
        --out "$OUT" --run /tmp/elmo-gpu-run [--budget-s 470] [--device cuda]

``CORPUS`` is a folder (or a ``.tar.xz`` holding one) with ``train.txt`` and ``heldout.txt`` (one
whitespace-tokenised sentence per line, as ``elmo-tasks data corpus`` writes them). Phases, each
skipped when the time left cannot hold it:

a. smoke: the default model embeds a few sentences on the device and on the CPU (max difference,
   with TF32 off and at torch's default); a few pretraining steps of configs/pretrain/tiny.yaml;
b. speed: inference tokens/s of the default model; pretraining tokens/s of a few candidate shapes
   and batch sizes (``CANDIDATES``) on the first lines of the corpus, ~``--speed-s`` seconds each;
c. the run: ``--config`` on the corpus, bfloat16 autocast, checkpoints, ``training.max_minutes``
   set so that the run, its final evaluation and the export end in time, exported to ``RUN/model``;
d. perplexity of ``RUN/model`` on the held-out text (``elmo-tasks perplexity``'s function).

``device_check.sh`` wraps this script with a hard time limit, exports the last checkpoint if the
run was cut, and packs ``RUN/model`` into ``OUT`` in pieces under 16 MiB.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import tarfile
import tempfile
import time
import traceback
from pathlib import Path

import numpy as np
import torch
import yaml

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from elmo_tasks.atomic import write_text_atomic  # noqa: E402  (after the sys.path line)
from elmo_tasks.pretrain.settings import config_from_dict  # noqa: E402

SMOKE_SENTENCES = [["I", "love", "to", "watch", "TV", "."], ["I", "am", "wearing", "a", "wrist", "watch", "."],
                   ["The", "GPU", "runs", "the", "same", "maths", "."], ["Short"]]
# (name, model overrides, training overrides): pretraining speed candidates for the new default model
CANDIDATES = [
    ("1024/128 b512", {"lstm_dim": 1024, "projection_dim": 128}, {"batch_size": 512}),
    ("1024/128 b1024", {"lstm_dim": 1024, "projection_dim": 128}, {"batch_size": 1024}),
    ("2048/256 b512", {"lstm_dim": 2048, "projection_dim": 256}, {"batch_size": 512}),
]
# --dry-run-shapes: the same phases with shapes a CPU runs in seconds
DRY_RUN_CANDIDATES = [
    ("64/16 b8", {"lstm_dim": 64, "projection_dim": 16, "filters": [[1, 8], [2, 8], [3, 16]]}, {"batch_size": 8}),
    ("64/16 b16", {"lstm_dim": 64, "projection_dim": 16, "filters": [[1, 8], [2, 8], [3, 16]]}, {"batch_size": 16}),
]
SPEED_LINES = 60_000  # corpus lines for the speed candidates (loads in seconds)
HELDOUT_EVAL_TOKENS = 100_000  # held-out tokens for the run's final evaluation (phase d scores more)
MIN_RUN_S = 60.0  # the speed phases are skipped when they would leave the run less than this


class Clock:
    def __init__(self, budget_s: float) -> None:
        self.start = time.monotonic()
        self.budget = budget_s

    def used(self) -> float:
        return time.monotonic() - self.start

    def left(self) -> float:
        return self.budget - self.used()


class Report:
    """The JSON written to OUT, updated and rewritten after every phase."""

    def __init__(self, out: Path) -> None:
        self.path = out / "device_check.json"
        self.data: dict = {"errors": [], "phases_s": {}}

    def put(self, key: str, value) -> None:
        self.data[key] = value
        self.write()

    def write(self) -> None:
        write_text_atomic(self.path, json.dumps(self.data, indent=2, default=str) + "\n")


def say(message: str) -> None:
    print(f"[device_check] {message}", flush=True)


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def machine(device: torch.device) -> dict:
    info = {"torch": torch.__version__, "python": platform.python_version(), "cpu_count": os.cpu_count(),
            "device": str(device)}
    if device.type == "cuda":
        props = torch.cuda.get_device_properties(device)
        info.update(gpu=props.name, gpu_memory_gib=round(props.total_memory / 2**30, 1), cuda=torch.version.cuda,
                    bf16=torch.cuda.is_bf16_supported())
    return info


def find_corpus(source: Path, scratch: Path) -> Path:
    """The folder holding train.txt and heldout.txt (a .tar.xz is unpacked into ``scratch`` first)."""
    if source.is_file():
        target = scratch / "corpus"
        target.mkdir(parents=True, exist_ok=True)
        with tarfile.open(source) as archive:
            archive.extractall(target, filter="data")
        source = target
    for folder in [source, *sorted(p.parent for p in source.rglob("train.txt"))]:
        if (folder / "train.txt").is_file() and (folder / "heldout.txt").is_file():
            return folder
    raise SystemExit(f"device_check: no train.txt + heldout.txt under {source}")


def head_lines(path: Path, lines: int, target: Path) -> Path:
    with open(path, encoding="utf-8") as source, open(target, "w", encoding="utf-8") as out:
        for number, line in enumerate(source):
            if number >= lines:
                break
            out.write(line)
    return target


def head_tokens(path: Path, tokens: int, target: Path) -> Path:
    count = 0
    with open(path, encoding="utf-8") as source, open(target, "w", encoding="utf-8") as out:
        for line in source:
            out.write(line)
            count += len(line.split())
            if count >= tokens:
                break
    return target


def pretrain_config(base: dict, train: Path, heldout: Path, source: str, model: dict | None = None,
                    training: dict | None = None):
    data = json.loads(json.dumps(base))
    data["corpus"] = {"train": [str(train)], "heldout": [str(heldout)]}
    data.setdefault("model", {}).update(model or {})
    data.setdefault("training", {}).update(training or {})
    return config_from_dict(data, source=source, base=ROOT)


# -- phases -------------------------------------------------------------------------------------------


def smoke_inference(device: torch.device) -> dict:
    from elmo_tasks.embedder import DEFAULT_MODEL_DIR, Embedder

    result: dict = {}
    cpu = Embedder.from_dir(DEFAULT_MODEL_DIR).embed_batch(SMOKE_SENTENCES)
    gpu = Embedder.from_dir(DEFAULT_MODEL_DIR).to(device)
    tf32 = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    strict = gpu.embed_batch(SMOKE_SENTENCES)
    torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    default = gpu.embed_batch(SMOKE_SENTENCES)
    result["max_abs_diff_fp32"] = max(float(np.abs(a - b).max()) for a, b in zip(cpu, strict))
    result["max_abs_diff_default"] = max(float(np.abs(a - b).max()) for a, b in zip(cpu, default))
    result["allclose_1e-4"] = all(np.allclose(a, b, atol=1e-4) for a, b in zip(cpu, strict))
    say(f"smoke inference: max |{device.type} - cpu| = {result['max_abs_diff_fp32']:.2e} (TF32 off), "
        f"{result['max_abs_diff_default']:.2e} (torch default); allclose 1e-4: {result['allclose_1e-4']}")
    if not result["allclose_1e-4"]:
        raise RuntimeError(f"inference on {device} differs from the CPU: {result}")
    return result


def smoke_pretrain(device: torch.device, scratch: Path) -> dict:
    from elmo_tasks.pretrain.trainer import Trainer

    tiny = yaml.safe_load((ROOT / "configs" / "pretrain" / "tiny.yaml").read_text())
    tiny["training"].update(max_steps=6, eval_every_steps=3, checkpoint_every_steps=3, amp=True,
                            threads=torch.get_num_threads() if device.type == "cpu" else None)
    config = config_from_dict(tiny, source="configs/pretrain/tiny.yaml", base=ROOT / "configs" / "pretrain")
    trainer = Trainer(config, scratch / "tiny-run", device=str(device), progress=False)
    summary = trainer.train()
    result = {"steps": summary["steps"], "heldout_ppl": summary["final_heldout"]["heldout_ppl"],
              "exported": (scratch / "tiny-run" / "model" / "weights.hdf5").is_file()}
    result["ok"] = bool(result["steps"] == 6 and math.isfinite(result["heldout_ppl"]) and result["exported"])
    say(f"smoke pretraining: {result['steps']} steps of tiny.yaml on {device}, held-out ppl "
        f"{result['heldout_ppl']:.1f}, exported: {result['exported']}")
    if not result["ok"]:
        raise RuntimeError(f"pretraining smoke test failed: {result}")
    return result


def inference_speed(device: torch.device, heldout: Path, seconds: float) -> dict:
    from elmo_tasks.embedder import DEFAULT_MODEL_DIR, Embedder

    embedder = Embedder.from_dir(DEFAULT_MODEL_DIR, batch_size=256).to(device)
    with open(heldout, encoding="utf-8") as handle:
        sentences = [line.split() for line in handle if line.split()][:5000]
    batches = [sentences[i : i + 256] for i in range(0, len(sentences), 256)]
    embedder.layers(batches[0])  # warm-up
    sync(device)
    tokens, start, k = 0, time.perf_counter(), 0
    while time.perf_counter() - start < seconds:
        batch = batches[k % len(batches)]
        embedder.layers(batch)
        tokens += sum(len(s) for s in batch)
        k += 1
    sync(device)
    elapsed = time.perf_counter() - start
    row = {"model": "default", "batch_sentences": 256, "batches": k, "tokens": tokens, "seconds": round(elapsed, 2),
           "tokens_per_s": round(tokens / elapsed)}
    say(f"speed inference (default model, 256 sentences a batch): {row['tokens_per_s']:,} tokens/s")
    return row


def pretrain_speed(device: torch.device, base: dict, train: Path, heldout: Path, scratch: Path, clock: Clock,
                   seconds: float, reserve: float, candidates: list) -> list[dict]:
    from elmo_tasks.pretrain.trainer import Trainer, load_data

    rows = []
    data = None
    for name, model, training in candidates:
        if clock.left() < seconds + 30 + reserve + MIN_RUN_S:
            say(f"speed {name}: skipped (time)")
            continue
        row: dict = {"candidate": name, **model, **training}
        try:
            config = pretrain_config(base, train, heldout, "speed", model,
                                     {**training, "max_steps": 10**6, "eval_every_steps": 10**6, "device": device.type,
                                      "checkpoint_every_steps": 10**6, "checkpoint_every_minutes": 10**6,
                                      "threads": torch.get_num_threads() if device.type == "cpu" else None,
                                      "amp": True})
            data = data or load_data(config)
            trainer = Trainer(config, scratch / f"speed-{len(rows)}", device=str(device), progress=False, data=data)
            for _ in range(3):  # warm-up (allocator, kernels)
                trainer.train_step(trainer.batch_at(trainer.step))
            sync(device)
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats(device)
            tokens, steps, start = 0, 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                batch = trainer.batch_at(trainer.step)
                loss_f, loss_b = trainer.train_step(batch)
                tokens += batch.fwd_targets.size
                steps += 1
            sync(device)
            elapsed = time.perf_counter() - start
            row.update(steps=steps, tokens=tokens, seconds=round(elapsed, 2), tokens_per_s=round(tokens / elapsed),
                       steps_per_s=round(steps / elapsed, 2), loss=round(0.5 * (loss_f + loss_b), 3))
            if device.type == "cuda":
                row["peak_memory_gib"] = round(torch.cuda.max_memory_allocated(device) / 2**30, 2)
            say(f"speed pretrain {name}: {row['tokens_per_s']:,} tokens/s ({row['steps_per_s']} steps/s), "
                f"peak {row.get('peak_memory_gib', '-')} GiB")
            del trainer
        except Exception as exc:  # noqa: BLE001 (an out-of-memory candidate is a figure too)
            row["error"] = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
            say(f"speed pretrain {name}: {row['error']}")
        if device.type == "cuda":
            torch.cuda.empty_cache()
        rows.append(row)
    return rows


def pretrain_run(device: torch.device, base: dict, config_name: str, train: Path, heldout: Path, run: Path,
                 clock: Clock, report: Report, reserve: float) -> dict:
    from elmo_tasks.pretrain.trainer import Trainer, load_data

    heldout_eval = head_tokens(heldout, HELDOUT_EVAL_TOKENS, run.parent / "heldout-eval.txt")
    start = time.monotonic()
    threads = torch.get_num_threads() if device.type == "cpu" else None
    config = pretrain_config(base, train, heldout_eval, config_name,
                             training={"device": device.type, "amp": True, "threads": threads})
    data = load_data(config)
    load_s = time.monotonic() - start
    minutes = (clock.left() - reserve) / 60.0
    if minutes < 0.5:
        raise RuntimeError(f"no time left for the run ({clock.left():.0f} s)")
    config.training.max_minutes = minutes
    say(f"run: {data.train.n_tokens:,} training tokens loaded in {load_s:.0f} s, vocabulary {len(data.vocab):,}; "
        f"training for at most {minutes:.2f} min")
    report.put("run", {"config": config_name, "max_minutes": round(minutes, 2), "data_load_s": round(load_s, 1),
                       "train_tokens": data.train.n_tokens, "status": "training"})
    trainer = Trainer(config, run, device=str(device), progress=False, data=data)
    summary = trainer.train()
    result = {"config": config_name, "max_minutes": round(minutes, 2), "data_load_s": round(load_s, 1),
              "status": "done", **{k: summary[k] for k in ("steps", "tokens_seen", "epochs", "wall_time_s", "vocab_size",
                                                          "parameters_bilm", "parameters_softmax", "batch_size",
                                                          "softmax", "final_heldout", "options")},
              "train_tokens": data.train.n_tokens,
              "tokens_per_s": round(summary["tokens_seen"] / max(summary["wall_time_s"], 1e-9)),
              "evaluations": summary["history"]}
    log = [json.loads(line) for line in (run / "log.jsonl").read_text().splitlines() if line.strip()]
    result["loss_curve"] = [(r["step"], round(r["loss"], 3)) for r in log if "loss" in r]
    say(f"run: {summary['steps']} steps, {summary['tokens_seen']:,} tokens in {summary['wall_time_s']:.0f} s "
        f"({result['tokens_per_s']:,} tokens/s), final held-out ppl "
        f"{(summary['final_heldout'] or {}).get('heldout_ppl', float('nan')):.1f}")
    return result


def perplexity(device: torch.device, model_dir: Path, heldout: Path, max_tokens: int) -> dict:
    from elmo_tasks.pretrain.perplexity import text_perplexity

    start = time.monotonic()
    result = text_perplexity(model_dir, [str(heldout)], device=device, rows=64, unroll=20, max_tokens=max_tokens)
    row = {"model": str(model_dir), "text": str(heldout), "forward": result.forward, "backward": result.backward,
           "average": result.average, "tokens": result.tokens, "seconds": round(time.monotonic() - start, 1)}
    say(f"perplexity of {model_dir.name} on {heldout.name}: forward {result.forward:.1f}, backward "
        f"{result.backward:.1f}, average {result.average:.1f} ({result.tokens:,} tokens)")
    return row


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--corpus", required=True, type=Path, help="folder (or .tar.xz) with train.txt and heldout.txt")
    parser.add_argument("--config", required=True, type=Path, help="pretraining config for the run (phase c)")
    parser.add_argument("--out", required=True, type=Path, help="where device_check.json goes")
    parser.add_argument("--run", type=Path, default=Path(tempfile.gettempdir()) / "elmo-gpu-run",
                        help="run folder of phase c (checkpoint, log, model/)")
    parser.add_argument("--device", default="cuda", choices=["cuda", "cpu"])
    parser.add_argument("--budget-s", type=float, default=470.0, help="wall seconds for all phases together")
    parser.add_argument("--speed-s", type=float, default=15.0, help="seconds per speed measurement")
    parser.add_argument("--reserve-s", type=float, default=75.0, help="seconds kept after training for the final "
                        "evaluation, checkpoint, export and phase d")
    parser.add_argument("--dry-run-shapes", action="store_true", help="tiny speed candidates (a CPU dry run)")
    parser.add_argument("--ppl-tokens", type=int, default=300_000, help="held-out stream positions for phase d")
    args = parser.parse_args()

    clock = Clock(args.budget_s)
    device = torch.device(args.device)
    cpu_threads = 1 if device.type == "cpu" else None  # a CPU dry run on a shared machine: one thread
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("device_check: --device cuda but no CUDA device is available")
    args.out.mkdir(parents=True, exist_ok=True)
    if args.run.exists() and any(args.run.iterdir()):
        raise SystemExit(f"device_check: the run folder {args.run} is not empty")
    args.run.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="device-check-", dir=args.run.parent))
    report = Report(args.out)
    report.put("machine", machine(device))
    report.put("arguments", {k: str(v) for k, v in vars(args).items()})
    say(f"machine: {report.data['machine']}")
    corpus = find_corpus(args.corpus, scratch)
    train, heldout = corpus / "train.txt", corpus / "heldout.txt"
    base = yaml.safe_load(args.config.read_text())

    def phase(name: str, need_s: float, work):
        if clock.left() < need_s:
            say(f"{name}: skipped, {clock.left():.0f} s left (needs {need_s:.0f})")
            report.data["errors"].append(f"{name}: skipped for time")
            return None
        start = time.monotonic()
        try:
            value = work()
            report.put(name, value)
            return value
        except Exception as exc:  # noqa: BLE001 (a failed phase is reported; the next one runs)
            report.data["errors"].append(f"{name}: {type(exc).__name__}: {exc}")
            say(f"{name} FAILED: {type(exc).__name__}: {exc}")
            traceback.print_exc()
            return None
        finally:
            report.data["phases_s"][name] = round(time.monotonic() - start, 1)
            report.write()

    phase("smoke_inference", 60, lambda: smoke_inference(device))
    phase("smoke_pretrain", 60, lambda: smoke_pretrain(device, scratch))
    speed_train = head_lines(train, SPEED_LINES, scratch / "speed-train.txt")
    candidates = DRY_RUN_CANDIDATES if args.dry_run_shapes else CANDIDATES
    phase("speed_inference", args.speed_s + 20 + args.reserve_s + MIN_RUN_S,
          lambda: inference_speed(device, heldout, args.speed_s))
    phase("speed_pretrain", args.speed_s + 40 + args.reserve_s + MIN_RUN_S,
          lambda: pretrain_speed(device, base, speed_train, heldout, scratch, clock, args.speed_s, args.reserve_s,
                                 candidates))
    phase("run", args.reserve_s + 30, lambda: pretrain_run(device, base, str(args.config), train, heldout, args.run,
                                                           clock, report, args.reserve_s))
    if (args.run / "model" / "weights.hdf5").is_file():
        phase("perplexity", 15, lambda: perplexity(device, args.run / "model", heldout, args.ppl_tokens))
    report.put("total_s", round(clock.used(), 1))
    say(f"done in {clock.used():.0f} s; figures in {report.path}")
    return 0 if not report.data["errors"] else 1


if __name__ == "__main__":
    sys.exit(main())
