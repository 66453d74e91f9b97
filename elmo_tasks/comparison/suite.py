"""Benchmark suites: which configs ``elmo-tasks bench`` runs, paired per task. A suite file::

    name: offline                       # default: the file's name
    description: every offline set, GloVe vs GloVe + ELMo
    output: runs/bench/offline          # where runs and tables go (relative to the working folder)
    seeds: 5                            # default for --seeds (default 5)
    smoke: false                        # true: a smoke test; bench prints no significance and no verdict
    overrides: {trainer.epochs: 3}      # optional: dotted config keys set in every config (quick runs)
    tasks:                              # one table row each: the same data with and without ELMo
      - name: wsj-pos
        glove: ../benchmarks/wsj-pos_glove.yaml
        glove_elmo: ../benchmarks/wsj-pos_glove_elmo.yaml
        grid:                           # optional, declared up front: settings tried per arm
          both: {trainer.lr: [0.001, 0.002]}          # for both arms
          glove: {head.dropout: [0.25, 0.5]}          # GloVe arm only
          glove_elmo: {features.elmo.l2: [0.0, 0.1]}  # GloVe + ELMo arm only
    probes:                             # rows of the probe table: one fixed biLM layer each
      - name: wsj-pos
        layers: {0: ../benchmarks/wsj-pos_probe_layer0.yaml, 1: ..., 2: ...}

Config paths are relative to the suite file. Loading reads every config (so a typo fails before
hours of runs) and checks that each sits in the right slot: ``glove`` without ``features.elmo``,
``glove_elmo`` with it and on the same data set, both with the same ``head`` and the same
``trainer`` budget (seed, threads and device aside), a probe of layer K with
``features.elmo.fixed: layerK``. Problems raise a :class:`SuiteError` naming the file and the key
(``tasks[2].glove``).

A grid's points per arm are the product of ``both`` and the arm's own lists (keys in the order
given); both arms must get as many points, so neither has the larger search. ``features.elmo.*``
keys belong to the ``glove_elmo`` list only, ``trainer.epochs`` / ``trainer.patience`` to ``both``
only, ``dataset.*`` and ``trainer.seed`` to none. bench
runs every point for every seed and keeps, per arm, the point with the best mean dev score
(:mod:`elmo_tasks.comparison.selection`).
"""

from __future__ import annotations

import dataclasses
import itertools
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo_tasks.errors import UserError
from elmo_tasks.experiment import Config, load_config
from elmo_tasks.schema import ConfigError, describe_value, parse_yaml

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")  # task names become folder names


class SuiteError(UserError):
    """A suite file problem; the message starts with the file and the key."""


@dataclass
class SuiteTask:
    """One row of the comparison: the same task with GloVe alone and with GloVe + ELMo."""

    name: str
    glove: str  # config path (absolute once loaded)
    glove_elmo: str
    grid: dict[str, dict[str, list[Any]]] = field(default_factory=dict)  # both/glove/glove_elmo -> key -> values

    def points(self, setting: str) -> list[dict[str, Any]]:
        """The grid points of one arm (``glove`` or ``glove_elmo``): dotted key -> value; [{}] without a grid."""
        lists = {**self.grid.get("both", {}), **self.grid.get(setting, {})}
        return [dict(zip(lists, values)) for values in itertools.product(*lists.values())]


@dataclass
class SuiteProbe:
    """Probe rows of one task: biLM layer -> config of a linear probe on that layer."""

    name: str
    layers: dict[int, str]


@dataclass
class Suite:
    tasks: list[SuiteTask]
    probes: list[SuiteProbe] = field(default_factory=list)
    name: str = ""
    description: str = ""
    output: str = ""  # default runs/bench/NAME
    seeds: int = 5
    smoke: bool = False  # a smoke test: no significance figures, no verdict
    overrides: dict[str, Any] = field(default_factory=dict)  # dotted config key -> value, for every config
    path: str = ""  # the suite file (filled in, not a key)

    def task_names(self) -> list[str]:
        """Row order for the tables: tasks, then probe-only names."""
        names = [t.name for t in self.tasks]
        return names + [p.name for p in self.probes if p.name not in names]


_TOP_KEYS = ("name", "description", "output", "seeds", "smoke", "overrides", "tasks", "probes")
_GRID_ARMS = ("both", "glove", "glove_elmo")
_DOTTED = re.compile(r"^[a-z_]+(\.[a-z_0-9]+)+$")


def load_suite(path: str | Path, check_configs: bool = True) -> Suite:
    """Read and validate a suite file (and, with ``check_configs``, every config it names)."""
    path = Path(path)
    if not path.is_file():
        raise SuiteError(f"suite file not found: {path}")
    data = parse_yaml(path, SuiteError)
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite must be a mapping with a tasks: list, got {describe_value(data)}")

    def error(key: str, message: str) -> SuiteError:
        return SuiteError(f"{path}: {key}: {message}")

    for key in data:
        if key not in _TOP_KEYS:
            raise error(key, f"unknown key (known here: {', '.join(_TOP_KEYS)})")
    for key in ("name", "description", "output"):
        if key in data and not isinstance(data[key], str):
            raise error(key, f"must be a string, got {describe_value(data[key])}")
    seeds = data.get("seeds", 5)
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise error("seeds", f"must be a whole number of at least 1, got {describe_value(seeds)}")
    if not isinstance(data.get("smoke", False), bool):
        raise error("smoke", f"must be true or false, got {describe_value(data['smoke'])}")
    overrides = data.get("overrides") or {}
    if not isinstance(overrides, dict):
        raise error("overrides", f"must be a mapping of dotted config keys to values, got {describe_value(overrides)}")
    for key in overrides:
        if not isinstance(key, str) or not _DOTTED.match(key):
            raise error(f"overrides.{key}", "must be a dotted config key such as trainer.epochs")
        if key == "trainer.seed":
            raise error(f"overrides.{key}", "seeds come from --seeds (0..N-1), not from overrides")
    if "tasks" not in data:
        raise error("tasks", "missing (a list of {name, glove, glove_elmo})")
    tasks_data, probes_data = data["tasks"], data.get("probes") or []
    if not isinstance(tasks_data, list):
        raise error("tasks", f"must be a list, got {describe_value(tasks_data)}")
    if not isinstance(probes_data, list):
        raise error("probes", f"must be a list, got {describe_value(probes_data)}")
    if not tasks_data and not probes_data:
        raise error("tasks", "is empty: a suite needs at least one task or probe")

    def config_path(key: str, value: Any) -> str:
        if not isinstance(value, str) or not value:
            raise error(key, f"must be the path of a config file, got {describe_value(value)}")
        full = (path.parent / value).resolve()
        if not full.is_file():
            raise error(key, f"config file not found: {full}")
        return str(full)

    def entry(key: str, value: Any, required: tuple[str, ...], optional: tuple[str, ...] = ()) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise error(key, f"must be a mapping with {', '.join(required)}, got {describe_value(value)}")
        for name in value:
            if name not in required + optional:
                raise error(f"{key}.{name}", f"unknown key (known here: {', '.join(required + optional)})")
        for name in required:
            if name not in value:
                raise error(f"{key}.{name}", "missing")
        if not isinstance(value["name"], str) or not _NAME.match(value["name"]):
            raise error(f"{key}.name", f"must be a name of letters, digits, '.', '_' or '-', got {describe_value(value['name'])}")
        return value

    tasks, seen = [], set()
    for i, item in enumerate(tasks_data):
        key = f"tasks[{i}]"
        item = entry(key, item, ("name", "glove", "glove_elmo"), ("grid",))
        if item["name"] in seen:
            raise error(f"{key}.name", f"{item['name']!r} is used twice")
        seen.add(item["name"])
        task = SuiteTask(item["name"], config_path(f"{key}.glove", item["glove"]),
                         config_path(f"{key}.glove_elmo", item["glove_elmo"]), _grid(item.get("grid"), f"{key}.grid", error))
        glove_points, elmo_points = len(task.points("glove")), len(task.points("glove_elmo"))
        if glove_points != elmo_points:
            raise error(f"{key}.grid", f"{glove_points} point(s) for glove but {elmo_points} for glove_elmo; give "
                                       "both arms as many grid points (the same selection budget)")
        tasks.append(task)
    probes, seen = [], set()
    for i, item in enumerate(probes_data):
        key = f"probes[{i}]"
        item = entry(key, item, ("name", "layers"))
        if item["name"] in seen:
            raise error(f"{key}.name", f"{item['name']!r} is used twice")
        seen.add(item["name"])
        layers = item["layers"]
        if not isinstance(layers, dict) or not layers:
            raise error(f"{key}.layers", f"must be a mapping of layer number to config, got {describe_value(layers)}")
        checked = {}
        for layer, value in layers.items():
            if isinstance(layer, bool) or not isinstance(layer, int) or layer < 0:
                raise error(f"{key}.layers.{layer}", "layer numbers are whole numbers 0, 1, 2, ...")
            checked[layer] = config_path(f"{key}.layers.{layer}", value)
        probes.append(SuiteProbe(item["name"], dict(sorted(checked.items()))))

    suite = Suite(tasks=tasks, probes=probes, name=data.get("name") or path.name.removesuffix(".yaml").removesuffix(".yml"),
                  description=data.get("description", ""), seeds=seeds, smoke=bool(data.get("smoke", False)),
                  overrides=overrides, path=str(path))
    suite.output = data.get("output") or str(Path("runs") / "bench" / suite.name)
    if check_configs:
        check_suite_configs(suite)
    return suite


def _grid(value: Any, key: str, error: Any) -> dict[str, dict[str, list[Any]]]:
    """A task's ``grid:`` checked: arms both/glove/glove_elmo, each dotted key -> a non-empty list."""
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise error(key, f"must be a mapping of {', '.join(_GRID_ARMS)} to settings, got {describe_value(value)}")
    grid: dict[str, dict[str, list[Any]]] = {}
    for arm, settings in value.items():
        if arm not in _GRID_ARMS:
            raise error(f"{key}.{arm}", f"unknown key (known here: {', '.join(_GRID_ARMS)})")
        if not isinstance(settings, dict):
            raise error(f"{key}.{arm}", f"must be a mapping of dotted config keys to lists, got {describe_value(settings)}")
        for dotted, values in settings.items():
            where = f"{key}.{arm}.{dotted}"
            if not isinstance(dotted, str) or not _DOTTED.match(dotted):
                raise error(where, "must be a dotted config key such as trainer.lr")
            if dotted == "trainer.seed" or dotted.startswith("dataset."):
                raise error(where, "seeds and data sets are not grid settings (selection must not change the data)")
            if dotted in ("trainer.epochs", "trainer.patience") and arm != "both":
                raise error(where, "the epoch budget is the same for both arms: put it under both")
            if dotted.startswith("features.elmo") and arm != "glove_elmo":
                raise error(where, "ELMo settings belong in the glove_elmo grid (the GloVe arm has no ELMo)")
            if any(dotted in grid.get(other, {}) for other in grid):
                raise error(where, "set twice (in both and in an arm's list)")
            if not isinstance(values, list) or not values:
                raise error(where, f"must be a non-empty list of values, got {describe_value(values)}")
            grid.setdefault(arm, {})[dotted] = values
    return grid


def check_suite_configs(suite: Suite) -> dict[str, Config]:
    """Load every config of the suite and check it fits its slot; returns path -> Config."""
    loaded: dict[str, Config] = {}

    def load(key: str, config_file: str) -> Config:
        if config_file not in loaded:
            try:
                loaded[config_file] = load_config(config_file, suite.overrides)
            except ConfigError as exc:  # names the config file and its key; add the suite's
                raise SuiteError(f"{suite.path}: {key}: {exc}") from None
        return loaded[config_file]

    def error(key: str, message: str) -> SuiteError:
        return SuiteError(f"{suite.path}: {key}: {message}")

    for i, task in enumerate(suite.tasks):
        glove = load(f"tasks[{i}].glove", task.glove)
        elmo = load(f"tasks[{i}].glove_elmo", task.glove_elmo)
        if glove.features.elmo is not None:
            raise error(f"tasks[{i}].glove", f"{task.glove} sets features.elmo; the GloVe baseline must not use ELMo")
        if elmo.features.elmo is None:
            raise error(f"tasks[{i}].glove_elmo", f"{task.glove_elmo} has no features.elmo")
        if glove.dataset != elmo.dataset:
            raise error(f"tasks[{i}]", f"{task.glove} and {task.glove_elmo} read different data sets "
                                       "(their dataset: sections differ)")
        if glove.features.names() != [n for n in elmo.features.names() if n != "elmo"]:
            raise error(f"tasks[{i}]", f"{task.glove_elmo} must have the features of {task.glove} plus elmo "
                                       f"(has {', '.join(elmo.features.names())} vs {', '.join(glove.features.names())})")
        budgets = [_budget(c) for c in (glove, elmo)]
        if budgets[0] != budgets[1]:
            key = next(k for k in budgets[0] if budgets[0][k] != budgets[1].get(k))
            raise error(f"tasks[{i}]", f"trainer.{key} is {budgets[0][key]} for glove but {budgets[1][key]} for "
                                       "glove_elmo; both arms get the same trainer budget (try settings per arm "
                                       "through the task's grid)")
        heads = [c.head.to_dict() for c in (glove, elmo)]
        if heads[0] != heads[1]:
            key = next(k for k in {**heads[0], **heads[1]} if heads[0].get(k) != heads[1].get(k))
            raise error(f"tasks[{i}]", f"head.{key} is {heads[0].get(key)} for glove but {heads[1].get(key)} for "
                                       "glove_elmo; both arms use the same head (ELMo is the only difference; "
                                       "try settings per arm through the task's grid)")
        for setting, config_file in (("glove", task.glove), ("glove_elmo", task.glove_elmo)):
            for point in task.points(setting):
                if point:
                    grid_config(suite, config_file, point, f"tasks[{i}].grid.{setting}")
    for i, probe in enumerate(suite.probes):
        for layer, config_file in probe.layers.items():
            config = load(f"probes[{i}].layers.{layer}", config_file)
            key = f"probes[{i}].layers.{layer}"
            elmo = config.features.elmo
            if config.head.name != "probe" or elmo is None or config.features.names() != ["elmo"]:
                raise error(key, f"{config_file} is not a probe (head probe on features.elmo alone)")
            if elmo.fixed != f"layer{layer}":
                raise error(key, f"{config_file} probes features.elmo.fixed: {elmo.fixed}, not layer{layer}")
    return loaded


def _budget(config: Config) -> dict[str, Any]:
    """The trainer settings both arms must share (not the seed, threads or device)."""
    trainer = dataclasses.asdict(config.trainer)
    for key in ("seed", "threads", "device"):
        trainer.pop(key)
    return trainer


def grid_config(suite: Suite, config_file: str, point: dict[str, Any], key: str = "grid") -> Config:
    """The config of one grid point (the suite's overrides, then the point's values)."""
    try:
        return load_config(config_file, {**suite.overrides, **point})
    except ConfigError as exc:  # a value the suite set reads "command line: key: ..."
        raise SuiteError(f"{suite.path}: {key}: {str(exc).removeprefix('command line: ')}") from None
