"""Detect a model source's format and convert it to a public-format model folder.

``convert(src, out_dir)`` is ``elmo-tasks convert``; ``resolve_model_dir(src)`` is what every
``--model`` goes through: a public-format folder is used as it is, anything else is converted once
into the cache (``$ELMO_TASKS_CACHE/converted/<digest>``, keyed by the content of the files a
conversion reads, so an edited checkpoint converts again and a copied one does not).

A conversion never writes into its source: an output folder that is, holds or lies inside the
source (or would replace an ``--options``/``--vocab`` file) is refused before any work. It writes
in a staging folder named by its process, renamed into place when complete; the staging folders
and extraction folders of a killed conversion are removed by the next one.
"""

from __future__ import annotations

import hashlib
import os
import re
import shutil
from pathlib import Path

from elmo_tasks.atomic import make_temp_dir, sweep_stale
from elmo_tasks.bilm.weights import OPTIONS_NAME, WEIGHTS_NAME, verify_model_files
from elmo_tasks.data.sources import cache_dir
from elmo_tasks.errors import UserError
from elmo_tasks.formats import bilm_tf, nlpl, tfhub
from elmo_tasks.paths import check_output_dir, input_file_problem, read_json_file

FORMATS = ("hdf5", "tfhub", "bilm-tf", "nlpl")
CONVERTED_DIR = "converted"
OUTPUT_NAMES = (OPTIONS_NAME, WEIGHTS_NAME, bilm_tf.SOFTMAX_NAME, bilm_tf.VOCAB_NAME, tfhub.AGGREGATION_NAME, "meta.json")


def detect(source: Path) -> str:
    """One of ``FORMATS``; a one-line error says what was expected when it is none of them."""
    if not source.exists() and not Path(f"{source}.index").is_file():
        raise UserError(f"model folder not found: {source} (a folder with {OPTIONS_NAME} + {WEIGHTS_NAME}, a TF-Hub "
                        "module, a bilm-tf checkpoint, an NLPL zip, a URL, or a name `elmo-tasks models` lists)")
    if source.is_dir() and (source / OPTIONS_NAME).is_file() and (source / WEIGHTS_NAME).is_file():
        return "hdf5"
    if tfhub.is_module_dir(source) or tfhub.is_module_archive(source):
        return "tfhub"
    if nlpl.is_archive(source) or nlpl.is_folder(source):
        return "nlpl"
    if bilm_tf.is_checkpoint(source):  # a bilm-tf save dir holds options.json without weights.hdf5
        return "bilm-tf"
    for file, other in ((OPTIONS_NAME, WEIGHTS_NAME), (WEIGHTS_NAME, OPTIONS_NAME)):
        if (source / other).is_file() and not (source / file).is_file():  # half a public-format folder
            raise UserError(f"{source / file} not found (a model folder holds {OPTIONS_NAME} and {WEIGHTS_NAME})")
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


def _convert_into(source: Path, kind: str, folder: Path, options: dict | None, options_source: str | Path,
                  vocab: Path | None) -> None:
    if kind == "tfhub":
        tfhub.convert_module(source, folder, options, options_source)
    elif kind == "bilm-tf":
        bilm_tf.convert_checkpoint(source, folder, options, vocab, options_source)
    elif kind == "nlpl":
        nlpl.convert_archive(source, folder, options, options_source)
    else:  # already public: checked (shapes, types, NaN/Inf), then copied
        verify_model_files(source / OPTIONS_NAME, source / WEIGHTS_NAME)
        for name in (OPTIONS_NAME, WEIGHTS_NAME):
            shutil.copyfile(source / name, folder / name)


def source_root(source: Path, kind: str) -> Path:
    """The file or folder a conversion of ``source`` reads from (a checkpoint prefix: its folder)."""
    if kind == "bilm-tf" and not source.is_dir():
        return bilm_tf.find_prefix(source).parent
    return source


def check_not_into_source(source: Path, kind: str, out_dir: Path, inputs: tuple[Path | None, ...] = ()) -> None:
    """Refuse an output folder that is, holds or lies inside the source, or would replace one of ``inputs``."""
    root, out = source_root(source, kind).resolve(), out_dir.resolve()
    how = ("is the source" if out == root else "lies inside the source" if out.is_relative_to(root)
           else "holds the source" if root.is_relative_to(out) else None)
    if how:
        raise UserError(f"output folder {out_dir} {how} {source}: a conversion never writes into the model it "
                        "reads; give another output folder")
    for path in inputs:
        if path is not None and path.resolve().parent == out and path.name in OUTPUT_NAMES:
            raise UserError(f"output folder {out_dir} holds {path}, which converting would replace; give another "
                            "output folder")


def convert(source: str | Path, out_dir: str | Path, options_file: str | Path | None = None,
            vocab_file: str | Path | None = None) -> tuple[str, list[str]]:
    """Convert ``source`` into ``out_dir``; returns the detected format and the files written.

    Everything is written in a staging folder beside ``out_dir`` first, so a failed conversion
    leaves ``out_dir`` as it was.
    """
    source, out_dir = Path(source), Path(out_dir)
    vocab = Path(vocab_file) if vocab_file else None
    kind = detect(source)
    options = read_options_file(options_file)
    if out_dir.exists() and not out_dir.is_dir():
        raise UserError(f"output path is a file, not a folder: {out_dir}")
    check_output_dir(out_dir, "output folder")
    check_not_into_source(source, kind, out_dir, (Path(options_file) if options_file else None, vocab))
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = make_temp_dir(out_dir)  # named by this process: a killed conversion's is swept next time
    try:
        _convert_into(source, kind, staging, options, options_file or "--options", vocab)
        out_dir.mkdir(exist_ok=True)
        written = sorted(p.name for p in staging.iterdir())
        for name in written:
            os.replace(staging / name, out_dir / name)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return kind, written


_MODULE_FILE = re.compile(r"^variables\.(index|data-\d{5}-of-\d{5})$")


def files_read(source: Path, kind: str) -> tuple[list[Path], Path]:
    """The files converting ``source`` reads, and the folder their names are taken relative to."""
    if kind == "bilm-tf":
        files = bilm_tf.files_read(source)
        return files, source if source.is_dir() else files[0].parent
    if kind == "tfhub" and source.is_dir():
        return sorted(p for p in (source / "variables").iterdir() if _MODULE_FILE.match(p.name)), source
    if kind == "nlpl" and source.is_dir():
        return sorted(source / name for name in nlpl.MEMBERS if (source / name).exists()), source
    return [source], source.parent


def content_key(source: Path, kind: str) -> str:
    """sha256 over the files a conversion reads (names relative to the source, and bytes); each must be
    a regular file (a FIFO named like one would block here forever)."""
    digest = hashlib.sha256(kind.encode())
    files, root = files_read(source, kind)
    for path in files:
        problem = input_file_problem(path, "model file")
        if problem:
            raise UserError(problem)
        digest.update(str(path.relative_to(root) if path.is_relative_to(root) else path.name).encode())
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _sweep_converted(folder: Path) -> None:
    """Remove the staging folders that killed conversions left in the cache (their process is gone)."""
    try:
        names = {entry.name.split(".tmp-", 1)[0] for entry in folder.iterdir() if ".tmp-" in entry.name}
    except OSError:
        return
    for name in names:
        sweep_stale(folder / name)


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
    _sweep_converted(target.parent)
    staging = make_temp_dir(target)
    try:
        _convert_into(source, kind, staging, None, "options", None)
        (staging / "SOURCE").write_text(f"{kind}: {source.resolve()}\n", encoding="utf-8")
        try:
            os.replace(staging, target)
        except OSError:  # another process converted it first
            if not (target / WEIGHTS_NAME).is_file():
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target
