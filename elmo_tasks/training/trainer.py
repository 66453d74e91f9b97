"""Train a head on task features with early stopping; evaluate the best checkpoint; write the run folder.

A run folder (``elmo-tasks run`` writes ``OUTPUT/seedN`` unless ``--out DIR``) holds::

    config.yaml           the resolved config (extends merged, defaults filled, paths absolute)
    log.txt               one line per event, appended across resumes
    metrics.json          written last: its presence means the run is complete (schema below)
    mix.json              the learned ELMo mix(es): softmax weights, gamma, where each goes
    predictions/dev.jsonl, predictions/test.jsonl   one object per sentence: tokens, gold, pred
    checkpoints/best.pt   the weights with the best dev metric
    checkpoints/last.pt   the state after the last finished epoch (removed when the run completes)
    failed.json           only after a failure: the error (removed when the run starts again)
    .lock                 only while a process runs it (elmo_tasks.lock)

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
     "total_seconds", "mix": [...] | null, "parameters", "sizes": {split: sentences},
     "feature_info": {...}, "versions": {...}}
"""

from __future__ import annotations

import json
import random
import shutil
import sys
import time
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
from torch import nn

from elmo_tasks.atomic import atomic_path, write_text_atomic
from elmo_tasks.config import SPLITS, Config, dump_yaml
from elmo_tasks.errors import UserError
from elmo_tasks.features import FeatureStack, build_features
from elmo_tasks.heads import HEADS
from elmo_tasks.lock import LOCK_NAME, hold
from elmo_tasks.training.data import Split, Task, load_sense_frequencies, load_splits

SCHEMA = 1
FAILED_NAME = "failed.json"  # written by a run that failed: its error


class TaskModel(nn.Module):
    """Features + head; the ELMo mix's L2 penalty is part of the loss."""

    def __init__(self, features: FeatureStack, head: nn.Module) -> None:
        super().__init__()
        self.features, self.head = features, head

    def loss(self, batch: dict[str, Any]) -> torch.Tensor:
        return self.head.loss(self.features(batch), batch) + self.features.penalty()

    def predict(self, batch: dict[str, Any]) -> list:
        return self.head.predict(self.features(batch), batch)

    def fit(self, batch: dict[str, Any]) -> None:
        self.head.fit(self.features(batch), batch)


class Logger:
    def __init__(self, path: Path, echo: bool = True) -> None:
        self.path, self.echo = path, echo

    def __call__(self, message: str) -> None:
        line = f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime())} {message}"
        with open(self.path, "a", encoding="utf-8") as handle:
            handle.write(line + "\n")
        if self.echo:
            print(message, file=sys.stderr)


def _to(batch: dict[str, Any], device: torch.device) -> dict[str, Any]:
    return {k: v.to(device) if isinstance(v, torch.Tensor) else v for k, v in batch.items()}


def _save(obj: Any, path: Path) -> None:
    with atomic_path(path) as tmp:
        torch.save(obj, tmp)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def decode(task: Task, prediction: Any) -> Any:
    if prediction is None:
        return None
    if isinstance(prediction, list):
        return [task.labels[i] for i in prediction]
    return task.labels[prediction]


@torch.no_grad()
def evaluate(model: TaskModel, split: Split, task: Task, batch_size: int, device: torch.device) -> tuple[dict[str, float], list]:
    """Metrics and decoded predictions (in the split's order)."""
    model.eval()
    predictions: list[Any] = [None] * len(split)
    for batch in split.batches(batch_size):
        for row, pred in zip(batch["rows"], model.predict(_to(batch, device))):
            predictions[row] = decode(task, pred)
    gold = task.gold(split.data)
    rows = split.data if task.kind == "wsd" else None
    return task.metrics(gold, predictions, rows), predictions


def prepare(config: Config, progress: bool = True, recompute_elmo: bool = False,
            log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> tuple[Task, dict[str, Split], TaskModel, dict]:
    """Load the data, build the features (and their caches) and the model: everything but training."""
    raw = load_splits(config.dataset)
    task = Task.build(raw, load_sense_frequencies(config.dataset) if "sense" in raw["train"].column_names else None)
    splits = {name: Split.encode(name, raw[name], task) for name in SPLITS}
    stack, info = build_features(config.features, splits, progress=progress, recompute_elmo=recompute_elmo, log=log)
    head_cls = HEADS[config.head.name]
    try:
        head = head_cls(config.head.options, task, stack.input_dim, stack.output_dim)
    except ValueError as exc:
        raise UserError(f"{config.path}: head: {exc}") from None
    return task, splits, TaskModel(stack, head), info


def train_epoch(model: TaskModel, split: Split, config: Config, optimizer: torch.optim.Optimizer, epoch: int,
                device: torch.device, progress: bool = True) -> float:
    """One pass over the training split; returns the mean loss. Seeded by (seed, epoch)."""
    t = config.trainer
    seed = t.seed * 100_003 + epoch
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model.train()
    batches = split.batches(t.batch_size, shuffle=True, generator=generator)
    if progress:
        from tqdm import tqdm

        batches = tqdm(batches, total=-(-len(split) // t.batch_size), desc=f"epoch {epoch}", unit=" batches",
                       file=sys.stderr, leave=False)
    total, count = 0.0, 0
    params = [p for p in model.parameters() if p.requires_grad]
    for batch in batches:
        loss = model.loss(_to(batch, device))
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if t.grad_norm is not None:
            nn.utils.clip_grad_norm_(params, t.grad_norm)
        optimizer.step()
        total += loss.item() * len(batch["rows"])
        count += len(batch["rows"])
    return total / max(count, 1)


def run(config: Config, run_dir: str | Path, progress: bool = True, restart: bool = False, echo: bool = True) -> dict[str, Any]:
    """Train, select on dev, evaluate on test; write the run folder. Returns the metrics dict.

    The folder is locked for the run (a second process is refused); a run that fails writes
    ``failed.json`` (the error) and no ``metrics.json``, so it is never taken for a finished one.
    """
    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {run_dir}: {exc.strerror or exc}") from None
    with hold(run_dir / LOCK_NAME, f"run folder {run_dir}"):
        done, state = _resume_point(config, run_dir, restart, echo)
        if done is not None:
            return done
        (run_dir / FAILED_NAME).unlink(missing_ok=True)
        try:
            return _train(config, run_dir, state, progress, echo)
        except Exception as exc:
            write_text_atomic(run_dir / FAILED_NAME, json.dumps(
                {"error": str(exc) or type(exc).__name__, "type": type(exc).__name__,
                 "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}, indent=1) + "\n")
            raise


def load_checkpoint(path: Path) -> Any:
    """A checkpoint of this module: tensors and plain data only (``weights_only``: a crafted file
    cannot run code); an unreadable one is a UserError naming it."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises many kinds (UnpicklingError, RuntimeError, EOFError, ...)
        reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path}: not a readable checkpoint of elmo-tasks run ({reason[:160]}); "
                        "--restart discards it") from None


def _resume_point(config: Config, run_dir: Path, restart: bool, echo: bool) -> tuple[dict | None, dict | None]:
    """(the finished run's metrics, None) when the folder holds this run complete, else (None, the
    checkpoint to resume from or None); a folder of another config is an error."""
    fingerprint = config.fingerprint()
    metrics_path, state_path = run_dir / "metrics.json", run_dir / "checkpoints" / "last.pt"
    if restart:
        for name in ("metrics.json", "mix.json", "log.txt", "config.yaml", FAILED_NAME):
            (run_dir / name).unlink(missing_ok=True)
        shutil.rmtree(run_dir / "checkpoints", ignore_errors=True)
        shutil.rmtree(run_dir / "predictions", ignore_errors=True)
    if metrics_path.is_file():
        try:
            done = json.loads(metrics_path.read_text(encoding="utf-8"))
        except (ValueError, RecursionError) as exc:
            raise UserError(f"{metrics_path}: not valid JSON ({exc}); --restart runs it again") from None
        if not isinstance(done, dict):
            raise UserError(f"{metrics_path}: not a metrics.json of elmo-tasks run (expected a JSON object); "
                            "--restart runs it again")
        if done.get("fingerprint") == fingerprint:
            if echo:
                print(f"{run_dir}: already complete (metrics.json); --restart runs it again", file=sys.stderr)
            return done, None
        raise UserError(f"{run_dir} holds a finished run of another config; use --out DIR or --restart")
    state = load_checkpoint(state_path) if state_path.is_file() else None
    if state is not None:
        needed = {"fingerprint": str, "epoch": int, "model": dict, "history": list, "best_epoch": int}
        if not isinstance(state, dict) or any(not isinstance(state.get(k), t) for k, t in needed.items()):
            raise UserError(f"{state_path}: not a checkpoint of elmo-tasks run; --restart discards it")
        if state["fingerprint"] != fingerprint:
            raise UserError(f"{run_dir} holds an unfinished run of another config; use --out DIR or --restart")
    return None, state


def _train(config: Config, run_dir: Path, state: dict | None, progress: bool, echo: bool) -> dict[str, Any]:
    fingerprint = config.fingerprint()
    metrics_path, state_path = run_dir / "metrics.json", run_dir / "checkpoints" / "last.pt"
    resolved = run_dir / "config.yaml"
    (run_dir / "checkpoints").mkdir(parents=True, exist_ok=True)
    (run_dir / "predictions").mkdir(exist_ok=True)
    write_text_atomic(resolved, dump_yaml(config.to_dict()))
    log = Logger(run_dir / "log.txt", echo)
    started = time.perf_counter()
    t = config.trainer
    if t.threads:
        torch.set_num_threads(t.threads)
    device = torch.device(t.device)
    seed_everything(t.seed)
    log(f"run {config.name} (seed {t.seed}) -> {run_dir}")

    task, splits, model, info = prepare(config, progress=progress, log=log)
    model.to(device)
    log(f"task {task.kind}: {len(task.labels)} labels; sentences train {len(splits['train'])}, "
        f"dev {len(splits['dev'])}, test {len(splits['test'])}; main metric dev {task.main_metric}")
    params = [p for p in model.parameters() if p.requires_grad]
    n_params = sum(p.numel() for p in params)
    optimizer = torch.optim.Adam(params, lr=t.lr, weight_decay=t.weight_decay) if params else None
    iterative = getattr(model.head, "iterative", True)

    history: list[dict[str, Any]] = []
    best_score, best_epoch, start_epoch = -1.0, 0, 1
    if state is not None:
        model.load_state_dict(state["model"])
        if optimizer is not None and state.get("optimizer"):
            optimizer.load_state_dict(state["optimizer"])
        history, best_score, best_epoch = state["history"], state["best_score"], state["best_epoch"]
        start_epoch = state["epoch"] + 1
        log(f"resuming after epoch {state['epoch']} (best dev {task.main_metric} {best_score:.4f} at epoch {best_epoch})")

    epochs = t.epochs if iterative else 1
    for epoch in range(start_epoch, epochs + 1):
        if best_epoch and epoch - best_epoch > t.patience:
            break
        tick = time.perf_counter()
        if iterative:
            loss = train_epoch(model, splits["train"], config, optimizer, epoch, device, progress)
        else:
            model.eval()
            with torch.no_grad():
                for batch in splits["train"].batches(t.batch_size):
                    model.fit(_to(batch, device))
            loss = float("nan")
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
            _save(model.state_dict(), run_dir / "checkpoints" / "best.pt")
        log(f"epoch {epoch}: loss {loss:.4f}, dev {task.main_metric} {score:.4f}{' (best)' if improved else ''}, "
            f"{train_seconds:.1f}s train + {eval_seconds:.1f}s dev")
        _save({"fingerprint": fingerprint, "epoch": epoch, "model": model.state_dict(),
               "optimizer": optimizer.state_dict() if optimizer is not None else None,
               "history": history, "best_score": best_score, "best_epoch": best_epoch}, state_path)
    stopped_early = bool(history) and history[-1]["epoch"] < epochs

    best_path = run_dir / "checkpoints" / "best.pt"
    if not best_path.is_file():
        raise UserError(f"{best_path}: missing (the folder was changed during the run); --restart runs it again")
    model.load_state_dict(load_checkpoint(best_path))
    results: dict[str, dict[str, float]] = {}
    for name in ("dev", "test"):
        metrics, predictions = evaluate(model, splits[name], task, t.batch_size, device)
        results[name] = {k: round(v, 6) for k, v in metrics.items()}
        _write_predictions(run_dir / "predictions" / f"{name}.jsonl", splits[name], task, predictions)
    mix = model.features.mix_report()
    write_text_atomic(run_dir / "mix.json", json.dumps(mix, indent=1) + "\n")
    train_times = [h["train_seconds"] for h in history]
    out = {
        "schema": SCHEMA, "name": config.name, "config": config.path, "fingerprint": fingerprint,
        "seed": t.seed, "task": task.kind,
        "dataset": config.dataset.name or config.dataset.files.get("train", ""),
        "head": config.head.name, "features": config.features.names(), "main_metric": task.main_metric,
        "dev": results["dev"], "test": results["test"],
        "best_epoch": best_epoch, "epochs_run": len(history), "stopped_early": stopped_early,
        "history": history,
        "seconds_per_epoch": round(sum(train_times) / max(len(train_times), 1), 3),
        "total_seconds": round(time.perf_counter() - started, 3),
        "mix": mix, "parameters": n_params, "sizes": {name: len(s) for name, s in splits.items()},
        "feature_info": info, "versions": _versions(),
    }
    write_text_atomic(metrics_path, json.dumps(out, indent=1) + "\n")
    state_path.unlink(missing_ok=True)
    log(f"done: dev {task.main_metric} {results['dev'][task.main_metric]:.4f}, "
        f"test {task.main_metric} {results['test'][task.main_metric]:.4f} (best epoch {best_epoch}); {metrics_path}")
    return out


def _write_predictions(path: Path, split: Split, task: Task, predictions: list) -> None:
    gold = task.gold(split.data)
    lines = []
    for i, (tokens, g, p) in enumerate(zip(split.tokens, gold, predictions)):
        row: dict[str, Any] = {"tokens": tokens, "gold": g, "pred": p}
        if split.target is not None:
            row["target"] = int(split.target[i])
            row["lemma_key"] = split.keys[i]
        lines.append(json.dumps(row, ensure_ascii=False))
    write_text_atomic(path, "\n".join(lines) + ("\n" if lines else ""))


def _versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"torch": torch.__version__}
    try:
        out["elmo_tasks"] = version("elmo-tasks")
    except PackageNotFoundError:
        pass
    return out
