"""Detect a model source's format and convert it to a public-format model folder.

``convert(src, out_dir)`` is ``elmo-tasks convert``; ``resolve_model_dir(src)`` is what every
``--model`` goes through: a public-format folder is used as it is, anything else is converted once
into the cache (``$ELMO_TASKS_CACHE/converted/<digest>``, keyed by the source files' content, so an
edited checkpoint converts again and a copied one does not).
"""

from __future__ import annotations

import hashlib
import os
import shutil
from pathlib import Path

from elmo_tasks.atomic import make_temp_dir
from elmo_tasks.bilm.weights import OPTIONS_NAME, WEIGHTS_NAME, load_bilm_dir
from elmo_tasks.data.sources import cache_dir
from elmo_tasks.errors import UserError
from elmo_tasks.formats import bilm_tf, nlpl, tfhub
from elmo_tasks.paths import check_output_dir, read_json_file

FORMATS = ("hdf5", "tfhub", "bilm-tf", "nlpl")
CONVERTED_DIR = "converted"


def detect(source: Path) -> str:
    """One of ``FORMATS``; a one-line error says what was expected when it is none of them."""
    if not source.exists() and not Path(f"{source}.index").is_file():
        raise UserError(f"model folder not found: {source} (a folder with {OPTIONS_NAME} + {WEIGHTS_NAME}, a TF-Hub "
                        "module, a bilm-tf checkpoint or an NLPL zip)")
    if source.is_dir() and (source / OPTIONS_NAME).is_file() and (source / WEIGHTS_NAME).is_file():
        return "hdf5"
    if tfhub.is_module_dir(source) or tfhub.is_module_archive(source):
        return "tfhub"
    if nlpl.is_archive(source):
        return "nlpl"
    if bilm_tf.is_checkpoint(source):
        return "bilm-tf"
    raise UserError(f"{source}: not an ELMo model this toolkit reads: expected a folder with {OPTIONS_NAME} + "
                    f"{WEIGHTS_NAME}, a TF-Hub module (folder with variables/ or its .tar.gz), a bilm-tf checkpoint "
                    "(save dir with a 'checkpoint' file, or a model.ckpt-N prefix) or an NLPL .zip")


def read_options_file(path: str | Path | None) -> dict | None:
    """The JSON object in an options file (None for no file); bad files are one-line errors."""
    if path is None:
        return None
    data = read_json_file(path, what="options file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object at the top level")
    return data


def _convert_into(source: Path, kind: str, folder: Path, options: dict | None, vocab: Path | None) -> None:
    if kind == "tfhub":
        tfhub.convert_module(source, folder, options)
    elif kind == "bilm-tf":
        bilm_tf.convert_checkpoint(source, folder, options, vocab)
    elif kind == "nlpl":
        nlpl.convert_archive(source, folder, options)
    else:  # already public: copy, validating on the way
        for name in (OPTIONS_NAME, WEIGHTS_NAME):
            shutil.copyfile(source / name, folder / name)
        load_bilm_dir(folder)


def convert(source: str | Path, out_dir: str | Path, options_file: str | Path | None = None,
            vocab_file: str | Path | None = None) -> tuple[str, list[str]]:
    """Convert ``source`` into ``out_dir``; returns the detected format and the files written.

    Everything is written in a staging folder beside ``out_dir`` first, so a failed conversion
    leaves ``out_dir`` as it was.
    """
    source, out_dir = Path(source), Path(out_dir)
    kind = detect(source)
    options = read_options_file(options_file)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output path is a file, not a folder: {out_dir}")
    check_output_dir(out_dir, "output folder")
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(out_dir)  # named by this process: a killed conversion's is swept next time
    try:
        _convert_into(source, kind, staging, options, Path(vocab_file) if vocab_file else None)
        out_dir.mkdir(exist_ok=True)
        written = sorted(p.name for p in staging.iterdir())
        for name in written:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kind, written


def content_key(source: Path, kind: str) -> str:
    """sha256 over the files a conversion reads (names relative to the source, and bytes)."""
    digest = hashlib.sha256(kind.encode())
    if source.is_dir():
        if kind == "bilm-tf":
            prefix = bilm_tf.find_prefix(source)
            files = sorted(prefix.parent.glob(prefix.name + ".*"))
            files += [f for f in (prefix.parent / "options.json", prefix.parent / "vocab.txt") if f.is_file()]
        else:
            files = sorted(p for p in (source / "variables").rglob("*") if p.is_file())
        root = source
    elif kind == "bilm-tf":
        prefix = bilm_tf.find_prefix(source)
        files, root = sorted(prefix.parent.glob(prefix.name + ".*")), prefix.parent
    else:
        files, root = [source], source.parent
    for path in files:
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def resolve_model_dir(source: str | Path) -> Path:
    """A public-format model folder for any source: the folder itself, or its conversion in the cache."""
    source = Path(source).expanduser()
    kind = detect(source)
    if kind == "hdf5":
        return source
    target = cache_dir() / CONVERTED_DIR / content_key(source, kind)[:24]
    if (target / WEIGHTS_NAME).is_file() and (target / OPTIONS_NAME).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(target)
    try:
        _convert_into(source, kind, staging, None, None)
        (staging / "SOURCE").write_text(f"{kind}: {source.resolve()}\n", encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:  # another process converted it first
            if not (target / WEIGHTS_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
