"""Finished run folders as records: what was run (task, setting, seed) and what it scored.

A run folder is what ``elmo-tasks run`` writes (see :mod:`elmo_tasks.training.trainer`); only its
``metrics.json`` (present once the run is complete) and ``config.yaml`` (the resolved config) are
read. The setting of a run follows from its config:

* ``glove``: no ELMo (the baseline; other non-ELMo features such as ``chars`` join the task's name);
* ``glove_elmo``: the same plus ELMo;
* ``probe``: the ``probe`` head on ELMo alone, with a fixed mix (``layer0``, ``layer1``, ...).

:func:`find_runs` collects the records under some folders and names each task after its data set
(``dataset.name``: the prepared or hub name, or the name a files config gives; else one made from the
train file's name, see ``DatasetConfig.display_name``); two different data sets with one name get a
short digest of their ``dataset`` section each. ``elmo-tasks bench`` names them after the suite's tasks.
"""

from __future__ import annotations

import hashlib
import json
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo_tasks.errors import UserError
from elmo_tasks.experiment import dataset_name_from_files
from elmo_tasks.schema import parse_yaml
from elmo_tasks.training.run_folder import FAILED_NAME

GLOVE, GLOVE_ELMO, PROBE = "glove", "glove_elmo", "probe"
SETTING_TITLES = {GLOVE: "GloVe", GLOVE_ELMO: "GloVe + ELMo", PROBE: "probe"}

# metrics.json keys a record needs (schema 1 of elmo_tasks.training.trainer)
_REQUIRED = ("seed", "main_metric", "dev", "test", "features", "head")


@dataclass
class RunRecord:
    """One finished run: where it is, what it is, and its scores on the main metric."""

    run_dir: str
    task: str  # the row of the table it belongs to
    setting: str  # glove | glove_elmo | probe
    seed: int
    metric: str  # the main metric (what early stopping watched)
    test: float  # test score of the best dev checkpoint, a fraction in [0, 1]
    dev: float
    layer: str = ""  # probes: the biLM layer ("0", "1", "2") or the fixed mix's name
    config_name: str = ""
    config_key: str = ""  # equal for runs of one config that differ only in seed (and output)
    mix: list[dict[str, Any]] | None = None  # the learned ELMo mixes, as in metrics.json
    epochs_run: int = 0
    best_epoch: int = 0
    total_seconds: float = 0.0
    train_seconds: float = 0.0  # training + dev evaluation over all epochs
    features: list[str] = field(default_factory=list)
    elmo_model: str = ""  # the biLM folder the ELMo features came from
    dataset_key: str = ""  # identity of the data set, to tell apart two data sets with one task name
    train_file: str = ""  # the data set's train file, when it is read from files
    epochs_cap: int = 0  # trainer.epochs of the run's config
    iterative: bool = True  # trained by gradient epochs (the nearest-sense head is fitted in one pass)
    mfs_dev: float | None = None  # word senses: the most-frequent-sense baseline on the same items
    mfs_test: float | None = None
    grid_point: str = ""  # bench grids: the point's name ("p0", "p1", ...); "" without a grid
    grid_values: dict[str, Any] = field(default_factory=dict)  # dotted config key -> value of the point
    budget: dict[str, Any] = field(default_factory=dict)  # trainer + head settings (run_budget)
    dev_never_scored: bool = False  # the dev metric was 0 in every epoch: the run learned nothing

    @property
    def cut_off(self) -> bool:
        """Whether the best epoch is in the last fifth of the epoch cap (the run may still be improving)."""
        return self.iterative and self.epochs_cap > 0 and self.best_epoch > 0.8 * self.epochs_cap


def read_run(run_dir: str | Path) -> RunRecord:
    """The record of a finished run folder (task named after its data set)."""
    run_dir = Path(run_dir)
    metrics_path, config_path = run_dir / "metrics.json", run_dir / "config.yaml"
    if not metrics_path.is_file():
        raise UserError(f"{run_dir}: no metrics.json (not a finished run)")
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8"))
    except (ValueError, RecursionError) as exc:
        raise UserError(f"{metrics_path}: not valid JSON ({exc})") from None
    if not isinstance(metrics, dict):
        raise UserError(f"{metrics_path}: expected a JSON object")
    for key in _REQUIRED:
        if key not in metrics:
            raise UserError(f"{metrics_path}: {key}: missing (not a metrics.json of elmo-tasks run)")
    main = metrics["main_metric"]
    for split in ("dev", "test"):
        if not isinstance(metrics[split], dict) or not isinstance(metrics[split].get(main), (int, float)):
            raise UserError(f"{metrics_path}: {split}.{main}: missing (the main metric's {split} score)")
    if not config_path.is_file():
        raise UserError(f"{run_dir}: no config.yaml next to metrics.json")
    config = parse_yaml(config_path, UserError)
    if not isinstance(config, dict) or not isinstance(config.get("dataset"), dict) \
            or not isinstance(config.get("features"), dict):
        raise UserError(f"{config_path}: not a resolved run config (needs dataset and features)")

    try:
        return _record(run_dir, metrics, config, main)
    except (TypeError, ValueError, AttributeError, KeyError) as exc:  # a hand-edited or foreign file
        raise UserError(f"{metrics_path}: a value has the wrong type or form ({type(exc).__name__}: {exc}); "
                        "not a metrics.json of elmo-tasks run") from None


def _record(run_dir: Path, metrics: dict[str, Any], config: dict[str, Any], main: str) -> RunRecord:
    features = [str(f) for f in metrics["features"]]
    setting, layer = run_setting(config, metrics["head"])
    history = metrics.get("history") or []
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    point = read_grid_point(run_dir)
    return RunRecord(
        run_dir=str(run_dir), task=task_label(config), setting=setting, seed=int(metrics["seed"]), metric=main,
        test=float(metrics["test"][main]), dev=float(metrics["dev"][main]), layer=layer,
        config_name=str(metrics.get("name", "")), config_key=config_key(config), mix=metrics.get("mix"),
        epochs_run=int(metrics.get("epochs_run", len(history))), best_epoch=int(metrics.get("best_epoch", 0)),
        total_seconds=float(metrics.get("total_seconds", 0.0)),
        train_seconds=round(sum(float(h.get("train_seconds", 0)) + float(h.get("eval_seconds", 0)) for h in history), 3),
        features=features, elmo_model=str(((metrics.get("feature_info") or {}).get("elmo_model") or {}).get("dir", "")),
        dataset_key=dataset_key(config), train_file=str((config["dataset"].get("files") or {}).get("train", "")),
        epochs_cap=int(trainer.get("epochs") or 0),
        iterative=any(h.get("train_loss") is not None for h in history) if history else True,
        mfs_dev=_number(metrics["dev"].get("mfs_f1")), mfs_test=_number(metrics["test"].get("mfs_f1")),
        grid_point=str(point.get("point", "")), grid_values=dict(point.get("values") or {}),
        budget=run_budget(config),
        dev_never_scored=float(metrics["dev"][main]) == 0.0
        and all(float((h.get("dev") or {}).get(main, 0.0)) == 0.0 for h in history),
    )


NOT_BUDGET = ("seed", "threads", "device")  # trainer keys that may differ between the arms of a task


def run_budget(config: dict[str, Any]) -> dict[str, Any]:
    """``{"trainer.epochs": 20, ..., "head.hidden": 100, ...}`` of a resolved run config: what both arms
    of a task must share (:mod:`elmo_tasks.comparison.budget`)."""
    trainer = config.get("trainer") if isinstance(config.get("trainer"), dict) else {}
    head = config.get("head") if isinstance(config.get("head"), dict) else {}
    out = {f"trainer.{k}": v for k, v in sorted(trainer.items()) if k not in NOT_BUDGET}
    out.update({f"head.{k}": v for k, v in sorted(head.items())})
    return out


GRID_POINT = "grid_point.json"  # written by bench into a run folder of a grid point


def read_grid_point(run_dir: Path) -> dict[str, Any]:
    """``{"point": "p1", "values": {dotted key: value}}`` of a bench grid run; {} for other runs."""
    path = run_dir / GRID_POINT
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid JSON ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("point"), str) or not isinstance(data.get("values"), dict):
        raise UserError(f"{path}: expected {{\"point\": NAME, \"values\": {{...}}}}")
    return data


def _number(value: Any) -> float | None:
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def run_setting(config: dict[str, Any], head: str) -> tuple[str, str]:
    """(setting, probe layer) of a resolved config: see the module docstring."""
    features = config["features"]
    elmo = features.get("elmo")
    others = [name for name, value in features.items() if value is not None and name != "elmo"]
    if elmo is None:
        return GLOVE, ""
    if head == "probe" and not others:
        fixed = elmo.get("fixed")
        if isinstance(fixed, str) and fixed.startswith("layer"):
            return PROBE, fixed.removeprefix("layer")
        return PROBE, "learned mix" if fixed is None else str(fixed)
    return GLOVE_ELMO, ""


def baseline_features(config: dict[str, Any]) -> list[str]:
    """The features other than ELMo, in the config's order."""
    return [name for name, value in config["features"].items() if value is not None and name != "elmo"]


def task_label(config: dict[str, Any]) -> str:
    """A short name for the run's data set (plus its non-GloVe features, so rows compare like with like)."""
    dataset = config["dataset"]
    if dataset.get("name"):
        label = str(dataset["name"])
    else:
        label = dataset_name_from_files({k: str(v) for k, v in (dataset.get("files") or {}).items()})
    if dataset.get("max_examples") is not None:
        label += f" (first {dataset['max_examples']})"
    others = baseline_features(config)
    probe = config.get("head", {}).get("name") == "probe" if isinstance(config.get("head"), dict) else False
    if not others and not probe:
        label += " [ELMo only]"
    elif others and others != ["glove"]:
        label += " [" + "+".join(others) + "]"
    return label


def dataset_key(config: dict[str, Any]) -> str:
    """What identifies the data a run read (two different sets with one label must not share a row)."""
    dataset = dict(config["dataset"])
    return json.dumps(dataset, sort_keys=True, default=str)


def config_key(config: dict[str, Any]) -> str:
    """A hash of the resolved config without what differs between seeds of one experiment."""
    data = json.loads(json.dumps(config, default=str))
    for key in ("name", "description", "output"):
        data.pop(key, None)
    trainer = data.get("trainer") if isinstance(data.get("trainer"), dict) else {}
    for key in ("seed", "threads", "device"):
        trainer.pop(key, None)
    elmo = (data.get("features") or {}).get("elmo")
    if isinstance(elmo, dict):
        elmo.pop("cache_dir", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def find_run_dirs(paths: list[str | Path]) -> tuple[list[Path], list[Path]]:
    """(finished run folders, unfinished ones) at or under ``paths``, sorted, each once."""
    finished: dict[Path, None] = {}
    unfinished: dict[Path, None] = {}
    for path in map(Path, paths):
        if not path.exists():
            raise UserError(f"{path}: no such run folder")
        if (path / "metrics.json").is_file():
            finished[path] = None
            continue
        if not path.is_dir():
            raise UserError(f"{path}: not a run folder (give folders that elmo-tasks run or bench wrote)")
        found = sorted(p.parent for p in path.rglob("metrics.json"))
        started = sorted(p.parent for p in path.rglob("config.yaml") if not (p.parent / "metrics.json").is_file()
                         and (p.parent / "log.txt").is_file())
        if not found and not started:
            raise UserError(f"{path}: no run folders in it (no metrics.json below it)")
        finished.update(dict.fromkeys(found))
        unfinished.update(dict.fromkeys(started))
    return list(finished), [p for p in unfinished if p not in finished]


def find_runs(paths: list[str | Path], warn: bool = True) -> list[RunRecord]:
    """The records of every finished run at or under ``paths``; unfinished ones are named on stderr."""
    finished, unfinished = find_run_dirs(paths)
    failed = [p for p in unfinished if (p / FAILED_NAME).is_file()]
    running = [p for p in unfinished if p not in failed]
    for kind, dirs in (("failed", failed), ("unfinished", running)):
        if warn and dirs:
            why = "failed.json: the run failed" if kind == "failed" else "no metrics.json yet"
            print(f"left out {len(dirs)} {kind} run(s) ({why}): " + ", ".join(str(p) for p in dirs[:5])
                  + (" ..." if len(dirs) > 5 else ""), file=sys.stderr)
    if not finished:
        raise UserError("no finished runs in " + ", ".join(str(p) for p in paths))
    records = [read_run(run_dir) for run_dir in finished]
    keys: dict[str, set[str]] = {}  # task label -> the data sets under it
    for record in records:
        keys.setdefault(record.task, set()).add(record.dataset_key)
    for record in records:
        if len(keys[record.task]) > 1:  # two data sets with one name: each gets its own row
            digest = hashlib.sha256(record.dataset_key.encode()).hexdigest()[:8]
            record.task = f"{record.task} (data {digest})"
    return records
