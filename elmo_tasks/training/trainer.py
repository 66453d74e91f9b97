"""Train a head on task features with early stopping; evaluate the best checkpoint; write the run folder.

A run folder (``elmo-tasks run`` writes ``OUTPUT/seedN`` unless ``--out DIR``; its files are listed
in :mod:`elmo_tasks.training.run_folder`) ends with ``metrics.json``.

Resuming: a run started again on the same folder with the same config continues after the last
finished epoch (shuffling and dropout are seeded per epoch, so the result is the one an unbroken
run gives); a complete run is not repeated. A folder that holds another config's run is an error.

``metrics.json``::

    {"schema": 1, "name", "config", "fingerprint", "seed", "task", "dataset", "head", "features",
     "main_metric",                      # the dev metric early stopping watches
     "dev": {metric: value}, "test": {metric: value},   # fractions in [0, 1], best checkpoint
     "best_epoch", "epochs_run", "stopped_early",
     "history": [{"epoch", "train_loss", "train_seconds", "eval_seconds", "dev": {...}}],
     "seconds_per_epoch",                # mean train_seconds (training passes only)
     "total_seconds", "precision": "float32" | "bfloat16" (trainer.amp where the device has bfloat16),
     "mix": [...] | null, "parameters", "sizes": {split: sentences},
     "feature_info": {...}, "versions": {...},
     "head_info": {...}}                 # heads with a report(): the wsd back-off threshold in use
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from tqdm import tqdm

from elmo_tasks.device import amp_fallback_message, bf16_supported
from elmo_tasks.errors import UserError
from elmo_tasks.experiment import Config
from elmo_tasks.features import build_features
from elmo_tasks.features.base import BuildContext
from elmo_tasks.heads import HEADS
from elmo_tasks.task import SPLITS, Task
from elmo_tasks.training.evaluation import evaluate, prediction_rows, to_device
from elmo_tasks.training.network import TaskNetwork
from elmo_tasks.training.run_folder import RunFolder
from elmo_tasks.training.splits import Split, cache_dataset, load_sense_frequencies, load_splits

SCHEMA = 1


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def prepare(config: Config, progress: bool = True, recompute_elmo: bool = False,
            log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> tuple[Task, dict[str, Split], TaskNetwork, dict]:
    """Load the data, build the features (and their caches) and the model: everything but training.

    ``recompute_elmo`` runs the biLM on every batch instead of reading the cache (for benchmarks).
    Returns the task, the encoded splits, the model and facts about the features.
    """
    raw = load_splits(config.dataset)
    task = Task.build(raw, load_sense_frequencies(config.dataset) if "sense" in raw["train"].column_names else None)
    splits = {name: Split.encode(name, raw[name], task, config.dataset.normalize) for name in SPLITS}
    if config.features.elmo is not None and not recompute_elmo:
        cache_dataset(config, progress=progress, data=raw, log=log, device=torch.device(config.trainer.device))
    tokens = {name: split.embed_tokens for name, split in splits.items()}
    stack = build_features(config.features.selected(), tokens, BuildContext(progress, recompute_elmo, log))
    for name, split in splits.items():
        split.inputs = stack.prepare(name, split.embed_tokens)
    try:
        head = HEADS[config.head.name](config.head.options, task, stack.input_dim, stack.output_dim)
    except ValueError as exc:
        raise UserError(f"{config.path}: head: {exc}") from None
    return task, splits, TaskNetwork(stack, head), stack.report()


def train_epoch(model: TaskNetwork, split: Split, config: Config, optimizer: torch.optim.Optimizer, epoch: int,
                device: torch.device, progress: bool = True) -> float:
    """One pass over the training split; returns the mean loss. Seeded by (seed, epoch)."""
    t = config.trainer
    seed = t.seed * 100_003 + epoch
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    batches = split.batches(t.batch_size, model.features, shuffle=True, generator=generator)
    if progress:
        batches = tqdm(batches, total=-(-len(split) // t.batch_size), desc=f"epoch {epoch}", unit=" batches",
                       file=sys.stderr, leave=False)
    total, count = 0.0, 0
    params = [p for p in model.parameters() if p.requires_grad]
    for batch in batches:
        loss = model.loss(to_device(batch, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_norm is not None:
            nn.utils.clip_grad_norm_(params, t.grad_norm)
        optimizer.step()
        total += loss.item() * len(batch["rows"])
        count += len(batch["rows"])
    return total / max(count, 1)


def fit_epoch(model: TaskNetwork, split: Split, batch_size: int, device: torch.device) -> float:
    """One pass for a head that is not trained by gradient steps (``fit``); its loss is NaN."""
    model.eval()
    with torch.no_grad():
        for batch in split.batches(batch_size, model.features):
            model.fit(to_device(batch, device))
    return float("nan")


def calibrate(model: TaskNetwork, split: Split, batch_size: int, device: torch.device) -> None:
    """A fitted head with a setting chosen on dev (``calibrate``: the wsd head's back-off threshold)
    sees the dev split's features and labels once. Dev only: test never chooses anything."""
    if not hasattr(model.head, "calibrate"):
        return
    model.eval()
    with torch.no_grad():
        batches = [to_device(b, device) for b in split.batches(batch_size, model.features)]
        model.head.calibrate([(model.features(b), b) for b in batches])


def train(model: TaskNetwork, splits: dict[str, Split], task: Task, config: Config, folder: RunFolder,
          device: torch.device, state: dict[str, Any] | None, progress: bool = True) -> dict[str, Any]:
    """Epochs with early stopping on dev (resuming after ``state``'s epoch); keeps the best weights
    in the folder. Returns the history and the best epoch."""
    t = config.trainer
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay) if params else None
    iterative = getattr(model.head, "iterative", True)
    history: list[dict[str, Any]] = []
    best_score, best_epoch, start_epoch = -1.0, 0, 1
    if state is not None:
        try:
            model.load_state_dict(state["model"])
        except RuntimeError:  # saved by a version whose model had other parameter names
            raise UserError(f"{folder.state_path}: this checkpoint does not fit the model (an older elmo-tasks "
                            "wrote it); use --restart") from None
        if optimizer is not None and state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        history, best_score, best_epoch = state["history"], state["best_score"], state["best_epoch"]
        start_epoch = state["epoch"] + 1
        folder.log(f"resuming after epoch {state['epoch']} (best dev {task.main_metric} {best_score:.4f} at epoch {best_epoch})")

    epochs = t.epochs if iterative else 1
    for epoch in range(start_epoch, epochs + 1):
        if best_epoch and epoch - best_epoch > t.patience:
            break
        tick = time.perf_counter()
        if iterative:
            loss = train_epoch(model, splits["train"], config, optimizer, epoch, device, progress)
        else:
            loss = fit_epoch(model, splits["train"], t.batch_size, device)
            calibrate(model, splits["dev"], t.batch_size, device)
        train_seconds = time.perf_counter() - tick
        tick = time.perf_counter()
        dev, _ = evaluate(model, splits["dev"], task, t.batch_size, device)
        eval_seconds = time.perf_counter() - tick
        score = dev[task.main_metric]
        history.append({"epoch": epoch, "train_loss": round(loss, 6) if loss == loss else None,
                        "train_seconds": round(train_seconds, 3), "eval_seconds": round(eval_seconds, 3),
                        "dev": {k: round(v, 6) for k, v in dev.items()}})
        improved = score > best_score
        if improved:
            best_score, best_epoch = score, epoch
            folder.save_best(model)
        folder.log(f"epoch {epoch}: loss {loss:.4f}, dev {task.main_metric} {score:.4f}{' (best)' if improved else ''}, "
                   f"{train_seconds:.1f}s train + {eval_seconds:.1f}s dev")
        folder.save_state({"epoch": epoch, "model": model.state_dict(),
                           "optimizer": optimizer.state_dict() if optimizer is not None else None,
                           "history": history, "best_score": best_score, "best_epoch": best_epoch})
    return {"history": history, "best_epoch": best_epoch,
            "stopped_early": bool(history) and history[-1]["epoch"] < epochs}


def run(config: Config, run_dir: str | Path, progress: bool = True, restart: bool = False, echo: bool = True,
        threads: int | None = None) -> dict[str, Any]:
    """Train, select on dev, evaluate on test; write the run folder. Returns the metrics dict.
    ``threads`` (``--threads``) wins over ``trainer.threads``; without either torch's setting stays.

    The folder is locked meanwhile (a second process is refused); a run that fails leaves
    ``failed.json`` (its error) and no ``metrics.json``, so it is never taken for a finished one.
    """
    folder = RunFolder(run_dir, config.fingerprint(), echo)
    with folder.locked():
        if restart:
            folder.clear()
        done = folder.finished()
        if done is not None:
            if echo:
                print(f"{folder.path}: already complete (metrics.json); --restart runs it again", file=sys.stderr)
            return done
        state = folder.resume_state()
        try:
            return _run(config, folder, state, progress, threads)
        except Exception as exc:
            folder.mark_failed(exc)
            raise


def _run(config: Config, folder: RunFolder, state: dict[str, Any] | None, progress: bool,
         threads: int | None = None) -> dict[str, Any]:
    folder.start(config.to_dict())
    started = time.perf_counter()
    t = config.trainer
    if threads or t.threads:
        torch.set_num_threads(threads or t.threads)
    device = torch.device(t.device)
    seed_everything(t.seed)
    folder.log(f"run {config.name} (seed {t.seed}) -> {folder.path}")

    task, splits, model, info = prepare(config, progress=progress, log=folder.log)
    model.to(device)
    model.amp = t.amp and bf16_supported(device)
    if t.amp and not model.amp:
        folder.log(amp_fallback_message("trainer.amp", device))
    folder.log(f"task {task.kind}: {len(task.labels)} labels; sentences train {len(splits['train'])}, "
               f"dev {len(splits['dev'])}, test {len(splits['test'])}; main metric dev {task.main_metric}")
    n_params = sum(p.numel() for p in model.parameters() if p.requires_grad)
    trained = train(model, splits, task, config, folder, device, state, progress)

    folder.load_best(model)
    results: dict[str, dict[str, float]] = {}
    for name in ("dev", "test"):
        metrics, predictions = evaluate(model, splits[name], task, t.batch_size, device)
        results[name] = {k: round(v, 6) for k, v in metrics.items()}
        folder.write_predictions(name, prediction_rows(splits[name], task, predictions))
    mix = model.features.mix_report()
    folder.write_json("mix.json", mix)
    history = trained["history"]
    train_times = [h["train_seconds"] for h in history]
    out = {
        "schema": SCHEMA, "name": config.name, "config": config.path, "fingerprint": folder.fingerprint,
        "seed": t.seed, "task": task.kind,
        "dataset": config.dataset.display_name(),
        "head": config.head.name, "features": config.features.names(), "main_metric": task.main_metric,
        "dev": results["dev"], "test": results["test"],
        "best_epoch": trained["best_epoch"], "epochs_run": len(history), "stopped_early": trained["stopped_early"],
        "history": history,
        "seconds_per_epoch": round(sum(train_times) / max(len(train_times), 1), 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "precision": "bfloat16" if model.amp else "float32",
        "mix": mix, "parameters": n_params, "sizes": {name: len(s) for name, s in splits.items()},
        "feature_info": info, "versions": _versions(),
    }
    if hasattr(model.head, "report"):
        out["head_info"] = model.head.report()
    metrics_path = folder.finish(out)
    folder.log(f"done: dev {task.main_metric} {results['dev'][task.main_metric]:.4f}, "
               f"test {task.main_metric} {results['test'][task.main_metric]:.4f} (best epoch {trained['best_epoch']}); "
               f"{metrics_path}")
    return out


def _versions() -> dict[str, str]:
    out = {"torch": torch.__version__}
    try:
        out["elmo_tasks"] = version("elmo-tasks")
    except PackageNotFoundError:
        pass
    return out
