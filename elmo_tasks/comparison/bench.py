"""Run a benchmark suite for N seeds and write its comparison tables.

Layout of the output folder::

    runs/TASK/glove/seedN, runs/TASK/glove_elmo/seedN, runs/TASK/probe_layerK/seedN   run folders
    runs/TASK/glove/pK/seedN, runs/TASK/glove_elmo/pK/seedN                 grid point K (a task with a grid)
    comparison.md, comparison.csv, probes.csv, layer_weights.csv, runs.csv,
    grid.csv, layer_weights.png                                                       see comparison.table
    bench.json                                                                        seeds, timings, runs

Before anything runs, every prepared data set the suite reads must be there: the missing ones are
named together (``--prepare`` builds them). A grid point's run folder also holds
``grid_point.json`` (its name and values), which the tables read to select on dev.

First the ELMo layer caches of every data set are built (timed apart: they are computed once per
model and data set). Then runs go seed by seed (all tasks for seed 0, then seed 1, ...), so a killed
bench already holds whole seeds. A run whose folder holds a finished run of the same config is
reused and an interrupted one resumes after its last finished epoch (``elmo_tasks.training.trainer``),
so running the same command again continues where it stopped. With ``jobs`` > 1 the runs are
handed, in that order, to that many worker processes; the results are gathered in plan order.
"""

from __future__ import annotations

import json
import multiprocessing
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

from elmo_tasks.atomic import write_text_atomic
from elmo_tasks.comparison.notes import model_name, models_note, shown_path
from elmo_tasks.comparison.runs import GLOVE, GLOVE_ELMO, GRID_POINT, PROBE, SETTING_TITLES, RunRecord, read_run
from elmo_tasks.comparison.selection import describe_values
from elmo_tasks.comparison.suite import Suite, check_suite_configs, grid_config
from elmo_tasks.comparison.table import write_report
from elmo_tasks.errors import UserError
from elmo_tasks.experiment import Config
from elmo_tasks.lock import LOCK_NAME, hold
from elmo_tasks.model_folder import resolve_model
from elmo_tasks.training.splits import cache_dataset
from elmo_tasks.training.trainer import run as run_experiment


@dataclass
class PlannedRun:
    task: str
    setting: str  # glove | glove_elmo | probe
    layer: str  # probes only
    seed: int
    config: str  # config file
    run_dir: Path
    point: str = ""  # grid point name ("p0", ...), "" without a grid
    values: dict = field(default_factory=dict)  # the grid point's dotted keys -> values

    def title(self) -> str:
        return f"{self.task} {SETTING_TITLES[self.setting]}" + (f" layer {self.layer}" if self.layer else "") \
            + (f" {self.point} ({describe_values(self.values)})" if self.point else "") + f" seed {self.seed}"


def plan_runs(suite: Suite, seeds: list[int], out: Path) -> list[PlannedRun]:
    """Every run of the suite, seed by seed (each arm's grid points in order), with its folder under ``out/runs``."""
    planned = []
    for seed in seeds:
        for task in suite.tasks:
            for setting, config in ((GLOVE, task.glove), (GLOVE_ELMO, task.glove_elmo)):
                points = task.points(setting)
                for k, values in enumerate(points):
                    point = f"p{k}" if task.grid else ""
                    folder = out / "runs" / task.name / setting / point / f"seed{seed}"
                    planned.append(PlannedRun(task.name, setting, "", seed, config, folder, point, values))
        for probe in suite.probes:
            for layer, config in probe.layers.items():
                planned.append(PlannedRun(probe.name, PROBE, str(layer), seed, config,
                                          out / "runs" / probe.name / f"probe_layer{layer}" / f"seed{seed}"))
    return planned


def missing_datasets(configs: list) -> list[str]:
    """The prepared data sets the configs read that are not prepared yet, or were prepared by an older
    recipe (each once, in order)."""
    from elmo_tasks.data.recipes import MANIFEST, outdated, prepared_dir

    names = dict.fromkeys(c.dataset.name for c in configs if c.dataset.source == "prepared")
    return [name for name in names
            if not (prepared_dir(name) / MANIFEST).is_file() or outdated(prepared_dir(name)) is not None]


def check_datasets(suite: Suite, configs: list, prepare: bool, log: Callable[[str], None]) -> None:
    """Name every missing prepared data set at once; with ``prepare``, build them instead."""
    from elmo_tasks.data.recipes import MANIFEST, default_root, prepared_dir
    from elmo_tasks.data.recipes import prepare as prepare_set

    missing = missing_datasets(configs)
    if not missing:
        return
    stale = [name for name in missing if (prepared_dir(name) / MANIFEST).is_file()]  # missing with a manifest: outdated
    if not prepare:
        older = f" (prepared by an older recipe: {', '.join(stale)})" if stale else ""
        raise UserError(f"{suite.path}: {len(missing)} data set(s) not prepared in {default_root()}: "
                        f"{', '.join(missing)}{older}; run 'elmo-tasks data prepare {'--force ' if stale else ''}"
                        f"{' '.join(missing)}' or add --prepare to this bench command")
    for name in missing:
        tick = time.perf_counter()
        prepare_set(name, force=name in stale, log=log)  # a folder that is not ours still needs --force
        log(f"prepared {name} in {time.perf_counter() - tick:.0f}s")


def build_caches(configs: list[Config], progress: bool, log: Callable[[str], None]) -> float:
    """Compute the ELMo layer caches of every (model, data set) the configs read; returns seconds."""
    started = time.perf_counter()
    done = set()
    for config in configs:
        elmo = config.features.elmo
        if elmo is None:
            continue
        key = (str(resolve_model(elmo.model)), elmo.cache_dir, elmo.cache_dtype, repr(config.dataset))
        if key not in done:
            done.add(key)
            cache_dataset(config, progress=progress, log=log)
    return time.perf_counter() - started


@dataclass
class BenchResult:
    records: list[RunRecord]
    written: dict[str, Path]
    cache_seconds: float
    run_seconds: float  # wall time of the runs this invocation trained (reused ones cost ~0)
    trained: int
    reused: int
    wall_seconds: float = 0.0  # the runs' wall time in this invocation (below run_seconds with --jobs > 1)


def run_suite(suite: Suite, seeds: list[int], out: str | Path, command: str = "", verbose: bool = False,
              log: Callable[[str], None] = lambda m: print(m, file=sys.stderr), prepare: bool = False,
              jobs: int = 1, threads: int | None = None) -> BenchResult:
    """Run (or reuse) every run of ``suite`` for ``seeds`` under ``out`` and write the tables there.
    ``prepare``: build the prepared data sets that are missing (else they are an error, all named).
    ``jobs``: runs trained at once, each in its own process with ``threads`` torch threads.
    ``out`` is locked meanwhile: a second bench into it is refused."""
    out = Path(out)
    loaded = check_suite_configs(suite)  # every config is checked before anything is written
    check_datasets(suite, list(loaded.values()), prepare, log)
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the bench output folder {out}: {exc.strerror or exc}") from None
    with hold(out / LOCK_NAME, f"bench output {out}"):
        return _run_suite(suite, loaded, seeds, out, command, verbose, log, jobs, threads)


def _train_one(config: Config, run_dir: Path, threads: int | None, verbose: bool) -> tuple[dict | str, float]:
    """Train (or reuse) one run; returns its metrics, or a user error's message, and its seconds.
    Also the body of a ``--jobs`` worker process, which runs with ``threads`` torch threads."""
    if threads:
        torch.set_num_threads(threads)
    tick = time.perf_counter()
    try:
        metrics = run_experiment(config, run_dir, progress=verbose, echo=verbose)
    except UserError as exc:  # sent back as text: the main process raises it
        return str(exc), time.perf_counter() - tick
    return metrics, time.perf_counter() - tick


def _run_suite(suite: Suite, loaded: dict, seeds: list[int], out: Path, command: str, verbose: bool,
               log: Callable[[str], None], jobs: int = 1, threads: int | None = None) -> BenchResult:
    planned = plan_runs(suite, seeds, out)
    cache_seconds = build_caches(list(loaded.values()), progress=verbose, log=log)
    started = time.perf_counter()
    work = []  # (run, its config, whether it was finished before)
    for item in planned:
        config = grid_config(suite, item.config, {**item.values, "trainer.seed": item.seed})
        if item.point:
            item.run_dir.mkdir(parents=True, exist_ok=True)
            write_text_atomic(item.run_dir / GRID_POINT, json.dumps({"point": item.point, "values": item.values}) + "\n")
        work.append((item, config, (item.run_dir / "metrics.json").is_file()))
    if jobs == 1:
        outcomes = (_train_one(config, item.run_dir, threads, verbose) for item, config, _ in work)
        pool = None
    else:  # one worker process per job (spawned: torch's threads do not survive a fork); results in plan order
        pool = multiprocessing.get_context("spawn").Pool(jobs)
        pending = [pool.apply_async(_train_one, (config, item.run_dir, threads, False)) for item, config, _ in work]
        outcomes = (job.get() for job in pending)
    records, timings = [], []
    run_seconds, trained, reused = 0.0, 0, 0
    try:
        for i, ((item, _config, was_done), (metrics, seconds)) in enumerate(zip(work, outcomes), start=1):
            if isinstance(metrics, str):
                if "another config" in metrics:
                    raise UserError(f"{metrics} (bench: {item.config} changed since that run; delete {item.run_dir} "
                                    "to run it again, or give another --out)")
                raise UserError(metrics)
            if was_done:
                reused += 1
            else:
                trained += 1
                run_seconds += seconds
            record = replace(read_run(item.run_dir), task=item.task)
            if record.setting != item.setting:
                raise UserError(f"{item.run_dir}: a {record.setting} run in the {item.setting} slot of {suite.path}")
            records.append(record)
            main = metrics["main_metric"]
            log(f"[{i}/{len(planned)}] {item.title()}: test {main} {metrics['test'][main]:.4f}, "
                f"{'reused' if was_done else f'{seconds:.0f}s'}")
            timings.append({"task": item.task, "setting": item.setting, "layer": item.layer, "grid_point": item.point,
                            "grid_values": item.values, "seed": item.seed,
                            "run_dir": shown_path(item.run_dir, out), "reused": was_done, "seconds": round(seconds, 3),
                            "run_total_seconds": record.total_seconds})
    finally:
        if pool is not None:
            pool.terminate()  # an error or an interrupt stops the other workers (their runs resume next time)
            pool.join()
    wall_seconds = time.perf_counter() - started

    models = sorted({model_name(r.elmo_model) for r in records if r.elmo_model})
    note = (f"Made by `{command or f'elmo-tasks bench {shown_path(suite.path, out)} --seeds {len(seeds)}'}` "
            f"({time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}): suite {suite.name}, seeds "
            f"{', '.join(map(str, seeds))}, {len(records)} runs taking {sum(r.total_seconds for r in records) / 60:.1f} "
            f"min in all (sum of the runs' total_seconds; ELMo caches built beforehand); this invocation trained "
            f"{trained} and reused {reused} in {wall_seconds / 60:.1f} min wall with {jobs} job(s) at once."
            f"{models_note(records)}")
    written = write_report(records, out, order=suite.task_names(), note=note, smoke=suite.smoke)
    summary = {"suite": shown_path(suite.path, out), "name": suite.name, "seeds": seeds, "command": command, "smoke": suite.smoke,
               "jobs": jobs, "cache_seconds": round(cache_seconds, 3), "run_seconds": round(run_seconds, 3),
               "wall_seconds": round(wall_seconds, 3),
               "trained": trained, "reused": reused, "elmo_models": models,
               "sum_run_total_seconds": round(sum(r.total_seconds for r in records), 3), "runs": timings}
    write_text_atomic(out / "bench.json", json.dumps(summary, indent=1) + "\n")
    written["bench.json"] = out / "bench.json"
    return BenchResult(records, written, cache_seconds, run_seconds, trained, reused, wall_seconds)
