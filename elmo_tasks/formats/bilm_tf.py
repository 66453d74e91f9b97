"""bilm-tf training checkpoints (the save dir of ``bin/train_elmo.py``).

The save dir holds TensorFlow's ``checkpoint`` file (a text proto naming the latest checkpoint and
the kept ones, often by absolute paths of the machine that trained), ``model.ckpt-N.index`` and
``.data-*`` per kept checkpoint, and usually ``options.json`` (with ``n_characters`` 261, as
training requires). Variables live under ``lm/``; the shared output softmax ``lm/softmax/W``
(V, P) and ``lm/softmax/b`` (V) is written to ``softmax.hdf5`` (the layout
``elmo_tasks.pretrain.softmax`` reads) with the vocabulary beside it, so pretraining can continue
from the converted model.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np

from elmo_tasks.atomic import atomic_path
from elmo_tasks.errors import UserError
from elmo_tasks.formats.tf_bundle import TensorBundle
from elmo_tasks.formats.tf_elmo import infer_options, read_elmo_arrays, write_model
from elmo_tasks.paths import read_json_file

STATE_FILE = "checkpoint"
SOFTMAX_NAME = "softmax.hdf5"  # datasets softmax/W (V, P) and softmax/b (V), as pretraining writes them
VOCAB_NAME = "vocab.txt"
_LATEST = re.compile(r'^\s*model_checkpoint_path\s*:\s*"(?P<path>(?:[^"\\]|\\.)*)"\s*$', re.MULTILINE)


def is_checkpoint(path: Path) -> bool:
    """A save dir (``checkpoint`` file or ``*.index`` files with ``lm/`` names) or a checkpoint prefix."""
    if path.is_dir():
        return (path / STATE_FILE).is_file() or any(path.glob("*.ckpt*.index"))
    return Path(f"{path}.index").is_file() or path.name.endswith(".index")


def find_prefix(path: Path) -> Path:
    """The checkpoint prefix to read: the one ``checkpoint`` names as latest, resolved in ``path``."""
    if not path.is_dir():
        name = path.name
        if name.endswith(".index"):
            return path.with_name(name[: -len(".index")])
        if re.search(r"\.data-\d{5}-of-\d{5}$", name):
            return path.with_name(re.sub(r"\.data-\d{5}-of-\d{5}$", "", name))
        return path
    state = path / STATE_FILE
    if state.is_file():
        match = _LATEST.search(state.read_text(encoding="utf-8", errors="replace"))
        if not match:
            raise UserError(f"{state}: no model_checkpoint_path line (is this TensorFlow's checkpoint file?)")
        named = match["path"].encode().decode("unicode_escape")
        # the save dir may come from another machine: the name is looked up here, in this folder
        for candidate in (path / Path(named).name, path / named, Path(named)):
            if Path(f"{candidate}.index").is_file():
                return candidate
        raise UserError(f"{state}: names the latest checkpoint '{named}', but {path / Path(named).name}.index "
                        "is not in this folder")
    indexes = sorted(path.glob("*.index"))
    if len(indexes) != 1:
        raise UserError(f"{path}: {len(indexes)} checkpoint indexes and no '{STATE_FILE}' file naming the latest: "
                        "give the checkpoint prefix (e.g. model.ckpt-1000)")
    return indexes[0].with_name(indexes[0].name[: -len(".index")])


def read_options_beside(folder: Path) -> dict | None:
    """The ``options.json`` bilm-tf keeps beside its checkpoints, or None when there is none."""
    path = folder / "options.json"
    if not path.is_file():
        return None
    data = read_json_file(path, what="options file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def convert_checkpoint(source: Path, out_dir: Path, options: dict | None = None, vocab_file: Path | None = None) -> None:
    """Write the latest checkpoint of ``source`` as a public-format model (+ softmax and vocab) into ``out_dir``."""
    prefix = find_prefix(source)
    bundle = TensorBundle(prefix)
    arrays = read_elmo_arrays(bundle, "lm")
    base = options if options is not None else read_options_beside(prefix.parent)
    write_model(arrays, infer_options(arrays, bundle.index_path, base), out_dir, source)
    if {"lm/softmax/W", "lm/softmax/b"} <= set(bundle.names()):
        weight, bias = bundle.read("lm/softmax/W"), bundle.read("lm/softmax/b")
        if weight.ndim != 2 or bias.shape != (weight.shape[0],):
            raise UserError(f"{bundle.index_path}: variables 'lm/softmax/W' {list(weight.shape)} and 'lm/softmax/b' "
                            f"{list(bias.shape)} do not form a softmax")
        vocab = vocab_file or (prefix.parent / VOCAB_NAME)
        if vocab.is_file():
            lines = sum(1 for line in vocab.open(encoding="utf-8") if line.strip() and line.strip() != "!!!MAXTERMID")
            if lines != weight.shape[0]:
                raise UserError(f"{vocab}: {lines} words, but 'lm/softmax/W' in {bundle.index_path} has "
                                f"{weight.shape[0]} rows: not this model's vocabulary")
            with atomic_path(out_dir / VOCAB_NAME) as tmp:
                shutil.copyfile(vocab, tmp)
        elif vocab_file is not None:
            raise UserError(f"vocabulary file not found: {vocab_file}")
        with atomic_path(out_dir / SOFTMAX_NAME) as tmp, h5py.File(tmp, "w") as handle:
            handle.create_dataset("softmax/W", data=np.asarray(weight, dtype=np.float32))
            handle.create_dataset("softmax/b", data=np.asarray(bias, dtype=np.float32))
