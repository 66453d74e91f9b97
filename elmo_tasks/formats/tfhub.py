"""TF-Hub ELMo modules (``google/elmo/2``, ``/3`` and modules exported the same way).

A module is a folder with ``variables/variables.{index,data-*}`` (and ``saved_model.pb``,
``tfhub_module.pb``, which are not needed here), or its ``.tar.gz`` as tfhub.dev serves it. Its
variables are bilm-tf's inference graph under ``bilm/`` plus the module's trained layer mix
``aggregation/weights`` (3 pre-softmax weights) and ``aggregation/scaling`` (shape [] or [1]).
The mix is written to ``aggregation.json`` beside the model (``elmo_tasks.compat.tfhub`` uses it).
"""

from __future__ import annotations

import json
import tarfile
import tempfile
from pathlib import Path

import numpy as np

from elmo_tasks.atomic import write_text_atomic
from elmo_tasks.errors import UserError
from elmo_tasks.formats.archive_limits import Budget
from elmo_tasks.formats.tf_bundle import TensorBundle
from elmo_tasks.formats.tf_elmo import infer_options, read_elmo_arrays, write_model

VARIABLES = Path("variables") / "variables"
AGGREGATION_NAME = "aggregation.json"
TAR_SUFFIXES = (".tar.gz", ".tgz", ".tar")


def is_module_dir(path: Path) -> bool:
    return path.is_dir() and Path(f"{path / VARIABLES}.index").is_file()


def is_module_archive(path: Path) -> bool:
    return path.is_file() and path.name.endswith(TAR_SUFFIXES) and tarfile.is_tarfile(path)


def extract_archive(archive: Path, into: Path, budget: Budget | None = None) -> Path:
    """Unpack a module archive (regular files and folders only, no path leaving ``into``, within the
    ``archive_limits`` bounds); returns the module folder."""
    budget = budget or Budget(archive)
    try:
        with tarfile.open(archive) as tar:
            for member in tar:
                budget.member(member.name, member.size if member.isfile() else 0)
                target = (into / member.name).resolve()
                if not target.is_relative_to(into.resolve()):
                    raise UserError(f"{archive}: member '{member.name}' points outside the archive")
                if member.isdir():
                    target.mkdir(parents=True, exist_ok=True)
                elif member.isfile():
                    target.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(target, "wb") as dst:
                        budget.copy(member.name, src, dst)
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise UserError(f"{archive}: not a readable TF-Hub module archive ({exc})") from None
    found = [p.parent.parent for p in into.rglob("variables.index") if p.parent.name == "variables"]
    if not found:
        raise UserError(f"{archive}: no variables/variables.index inside: not a TF-Hub module")
    return found[0]


def read_aggregation(bundle: TensorBundle) -> dict | None:
    """The module's layer mix: {"weights": [w0, w1, w2] (pre-softmax), "scaling": gamma}, if present."""
    names = set(bundle.names())
    if not {"aggregation/weights", "aggregation/scaling"} <= names:
        return None
    weights = np.asarray(bundle.read("aggregation/weights"), dtype=np.float64).reshape(-1)
    scaling = np.asarray(bundle.read("aggregation/scaling"), dtype=np.float64)
    if scaling.size != 1:
        raise UserError(f"{bundle.index_path}: variable 'aggregation/scaling' has shape {list(scaling.shape)}, "
                        "expected [] or [1]")
    return {"weights": [float(w) for w in weights], "scaling": float(scaling.reshape(-1)[0])}


def convert_module(source: Path, out_dir: Path, options: dict | None = None) -> None:
    """Write the module at ``source`` (folder or archive) as a public-format model into ``out_dir``."""
    if is_module_archive(source):
        with tempfile.TemporaryDirectory(prefix="elmo-tasks-tfhub-") as tmp:
            convert_module(extract_archive(source, Path(tmp)), out_dir, options)
        return
    if not is_module_dir(source):
        raise UserError(f"{source}: not a TF-Hub module (expected {VARIABLES}.index inside)")
    bundle = TensorBundle(source / VARIABLES)
    arrays = read_elmo_arrays(bundle, "bilm")
    aggregation = read_aggregation(bundle)
    n_layers = 1 + sum(1 for name in arrays if name.startswith("RNN_0/") and name.endswith("/W_0"))
    if aggregation is not None and len(aggregation["weights"]) != n_layers:
        raise UserError(f"{bundle.index_path}: variable 'aggregation/weights' has {len(aggregation['weights'])} "
                        f"values, but the model has {n_layers} layers")
    write_model(arrays, infer_options(arrays, bundle.index_path, options), out_dir, source)
    if aggregation is not None:
        write_text_atomic(out_dir / AGGREGATION_NAME, json.dumps(aggregation, indent=2) + "\n")
