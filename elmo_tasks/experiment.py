"""Experiment configs: one YAML file describes one run (dataset, features, head, trainer, output).

    dataset:                      # where the examples come from (docs/own-data.md)
      source: files               # prepared (elmo-tasks data prepare NAME) | files | hub
      name: my-ner                # the task's name in tables (files: default from the train file's name)
      format: conll               # files only: conll | word_tag | csv | tsv | table | jsonl
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

Loading validates everything at once against the dataclasses below (through the one typed loader,
:mod:`elmo_tasks.schema`): an unknown key, a value of the wrong type or a file that does not exist
raises a :class:`ConfigError` (a ``UserError``) naming the file and the dotted key. Each feature's
and each head's own options are the ``Options`` dataclass in its file (``elmo_tasks/features/``,
``elmo_tasks/heads/``), checked the same way; checks across keys and on disk are in
:mod:`elmo_tasks.experiment_checks`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from elmo_tasks.data.recipes import content_digest
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.experiment_checks import check_config
from elmo_tasks.features import FEATURES
from elmo_tasks.heads import head_options
from elmo_tasks.model_sources import is_remote
from elmo_tasks.paths import input_file_problem
from elmo_tasks.schema import ConfigError, Source, build, parse_yaml

# -- the schema ------------------------------------------------------------------------------------


@dataclass
class DatasetConfig:
    source: Literal["prepared", "files", "hub"] = "prepared"
    # prepared: a name from `elmo-tasks data prepare --list`; hub: a `datasets` hub name; files: the
    # task's name in tables and metrics.json (default: from the train file's name, see display_name)
    name: str = ""
    # files: the reader (elmo_tasks.data.readers.FILE_FORMATS; csv and tsv are the table reader) and one file per split
    format: Literal["", "conll", "word_tag", "csv", "tsv", "table", "jsonl"] = ""
    files: dict[str, str] = field(default_factory=dict)
    # the reader's options (files: checked against its Options dataclass, e.g. text_column, label_column,
    # delimiter); hub: keyword arguments of load_hub / datasets.load_dataset
    options: dict[str, Any] = field(default_factory=dict)
    # how raw text (a table's text column, a JSONL "text", a hub text column) is split into tokens;
    # "" is ptb there. Pre-tokenised formats (conll, word_tag, JSONL "tokens") are not split again.
    tokenize: Literal["", "whitespace", "ptb"] = ""
    # keep only the first N examples of each split (quick runs and tests)
    max_examples: int | None = None
    # word senses: a sense_frequencies.json ("lemma%pos" -> senses with counts) for the
    # most-frequent-sense back-off; prepared wordnet-wsd brings its own
    sense_frequencies: str | None = None
    # what the features see (labels stay on the data's tokens; elmo_tasks.data.tweets): "tweets"
    # unescapes HTML entities and splits contractions as the pretraining text; "tweets+placeholders"
    # also maps every @mention to @user and every URL to <url>
    normalize: Literal["none", "tweets", "tweets+placeholders"] = "none"

    def reads_raw_text(self) -> bool:
        """Whether the set has raw text that ``tokenize`` splits (tables, JSONL text, hub text columns)."""
        from elmo_tasks.data.readers import RAW_TEXT_FORMATS

        return self.source == "hub" or (self.source == "files" and self.format in RAW_TEXT_FORMATS)

    @property
    def tokenizer(self) -> str:
        """The tokenizer raw text goes through: ``tokenize``, else ``ptb``."""
        return self.tokenize or "ptb"

    def display_name(self) -> str:
        """The task's name in tables: ``name``, else (files) the train file's name without its split word
        (``cls_train.csv`` -> ``cls``), else the train file's folder (``mydata/train.conll`` -> ``mydata``)."""
        if self.name:
            return self.name
        return dataset_name_from_files(self.files)

    def identity(self) -> dict[str, str]:
        """What the run fingerprint records beside these options: the content of the data, so that a
        finished run is not reused after the set was prepared again (another recipe) or a file changed."""
        if self.source == "prepared":
            return {"prepared_sha256": content_digest(self.name)}
        if self.source == "files":
            files = {**self.files, **({"sense_frequencies": self.sense_frequencies} if self.sense_frequencies else {})}
            return {role: sha256_file(Path(path)) for role, path in sorted(files.items()) if Path(path).is_file()}
        return {}  # hub: the name (and options) are all we know offline


def dataset_name_from_files(files: dict[str, str]) -> str:
    """A data set's name from its train file (see :meth:`DatasetConfig.display_name`)."""
    train = Path(files.get("train", "") or "data")
    stem = train.name.split(".")[0]
    for word in ("train", "training", "trn"):
        for cut in (f"_{word}", f"-{word}", f".{word}", f"{word}_", f"{word}-"):
            if cut in stem.lower() and stem.lower() not in (word,):
                index = stem.lower().find(cut)
                stem = (stem[:index] + stem[index + len(cut):]).strip("_-.")
                break
    if stem.lower() in ("train", "training", "trn", ""):
        stem = train.parent.name or "data"
    return stem


def _names(self: Any) -> list[str]:
    """The features set, in the order of their concatenation."""
    return [f.name for f in dataclasses.fields(self) if getattr(self, f.name) is not None]


def _selected(self: Any) -> dict[str, Any]:
    """Feature name -> its options, for the features set."""
    return {name: getattr(self, name) for name in _names(self)}


# one optional section per entry of elmo_tasks.features.FEATURES, typed by that feature's Options
FeaturesConfig = dataclasses.make_dataclass(
    "FeaturesConfig", [(name, cls.Options | None, field(default=None)) for name, cls in FEATURES.items()],
    namespace={"names": _names, "selected": _selected, "__module__": __name__})


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
    threads: int | None = None  # torch threads (null: as the caller set them; `run --threads N` wins over it)
    # bfloat16 matrix products (autocast; float32 weights and losses) where the device has bfloat16
    # units (a CPU with AVX512-BF16 or AMX, most GPUs); float32 elsewhere. metrics.json says which ran.
    amp: bool = False


@dataclass
class Config:
    dataset: DatasetConfig
    features: FeaturesConfig  # type: ignore[valid-type]
    head: HeadConfig
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    name: str = ""  # default: the config file's name without .yaml
    description: str = ""
    output: str = ""  # run folder root (default runs/NAME); a run writes OUTPUT/seedN
    path: str = field(default="", metadata={"key": False})  # the file this was loaded from

    def to_dict(self) -> dict[str, Any]:
        """The resolved config as plain data (what a run writes to its config.yaml)."""
        data = dataclasses.asdict(self)
        data["head"] = self.head.to_dict()
        data.pop("path")
        return data

    def fingerprint(self) -> str:
        """A hash of everything that changes training (not the output folder): resume checks it.
        It covers the files a feature reads (``Options.identity()``, e.g. the ELMo model's digest) and the
        data's content (``DatasetConfig.identity()``), so a finished run is not reused after the model
        behind a name such as ``default``, or the data set, has changed."""
        data = self.to_dict()
        data.pop("output", None)
        data.pop("description", None)
        data["dataset"].pop("tokenize")  # recorded only where it splits text (older runs' fingerprints stay)
        if self.dataset.reads_raw_text():
            data["dataset"]["tokenize"] = self.dataset.tokenizer
        data["inputs"] = {name: options.identity() for name, options in self.features.selected().items()
                          if hasattr(options, "identity")}
        data["inputs"]["dataset"] = self.dataset.identity()
        return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


# -- loading ---------------------------------------------------------------------------------------


def load_config(path: str | Path, overrides: dict[str, Any] | None = None,
                origin: str | dict[str, str] = "command line") -> Config:
    """Read, merge (``extends``) and validate a config file; ``overrides`` are dotted keys set over it
    (a relative path among them is relative to the working folder), and an error about one of them
    names its ``origin`` (``--set``; a dict: per dotted key) instead of the file."""
    path = Path(path)
    data, origins = _read_with_extends(path, [])
    for dotted, value in (overrides or {}).items():
        alone: dict[str, Any] = {}
        _set_dotted(alone, dotted, value)
        _absolutize_paths(alone, Path.cwd())
        node: Any = alone
        for key in dotted.split("."):
            node = node[key]
        _set_dotted(data, dotted, node)
        origins = {k: v for k, v in origins.items() if not k.startswith(dotted + ".")}
        origins[dotted] = origin if isinstance(origin, str) else origin.get(dotted, "command line")
    return _validate(data, Source(path, origins))


def _read_yaml(path: Path) -> dict[str, Any]:
    data = parse_yaml(path)  # a missing file or a folder is named there
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
def _path_keys() -> list[tuple[tuple[str, ...], tuple[str, ...], bool]]:
    """(dotted key, names that are not paths, whether model names and URLs are taken) of every key holding
    an input path: the feature options' fields marked ``metadata={"path": (names...)}`` (and
    ``"remote": True``), and the sense frequencies file."""
    keys: list[tuple[tuple[str, ...], tuple[str, ...], bool]] = [(("dataset", "sense_frequencies"), (), False)]
    for name, cls in FEATURES.items():
        keys.extend((("features", name, f.name), tuple(f.metadata["path"]), bool(f.metadata.get("remote")))
                    for f in dataclasses.fields(cls.Options) if "path" in f.metadata)
    return keys


def _absolutize_paths(data: dict[str, Any], folder: Path) -> None:
    for keys, names, remote in _path_keys():
        parent = data
        for key in keys[:-1]:
            parent = parent.get(key) if isinstance(parent, dict) else None
        if not isinstance(parent, dict) or not isinstance(parent.get(keys[-1]), str) or parent[keys[-1]] in names:
            continue
        value = parent[keys[-1]]
        if remote and is_remote(value) and not (folder / value).exists():  # a public model's name or URL
            continue
        parent[keys[-1]] = str((folder / value).resolve())
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


def _validate(data: dict[str, Any], source: Source) -> Config:
    for required in ("dataset", "features", "head"):
        if not isinstance(data.get(required), dict):
            if data.get(required) is None:
                raise source.error(required, "missing (a config needs dataset, features and head)")
            raise source.error(required, f"must be a mapping, got {type(data[required]).__name__}")
    name, options = head_options(data["head"], source)
    path = Path(source.path)
    config = build(Config, data, source, given={"head": HeadConfig(name, options), "path": str(path)})
    config.name = config.name or path.name.removesuffix(".yaml").removesuffix(".yml")
    config.output = config.output or str(Path("runs") / config.name)
    check_config(config, source)
    return config
