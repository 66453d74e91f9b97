"""bilm-tf training checkpoints (the save dir of ``bin/train_elmo.py``).

The save dir holds TensorFlow's ``checkpoint`` file (a text proto naming the latest checkpoint and
the kept ones, often by absolute paths of the machine that trained, with C-style escapes of the
name's UTF-8 bytes: ``mod\\303\\250le.ckpt-10``), ``model.ckpt-N.index`` and ``.data-*`` per kept
checkpoint, and usually ``options.json`` (with ``n_characters`` 261, as training requires).
Variables live under ``lm/``; the shared output softmax ``lm/softmax/W`` (V, P) and
``lm/softmax/b`` (V) is written to ``softmax.hdf5`` (the layout ``elmo_tasks.pretrain.softmax``
reads) with the vocabulary beside it, so pretraining can continue from the converted model.

Only the files a conversion reads are opened (``files_read``): the checkpoint's index and data
shards, ``options.json`` and ``vocab.txt``; each must be a regular file, so a folder or a FIFO
named like one is an error, never a hang.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import h5py
import numpy as np

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.weights import check_finite
from elmo_tasks.errors import UserError
from elmo_tasks.formats.tf_bundle import TensorBundle
from elmo_tasks.formats.tf_elmo import FLOAT32, find_elmo, write_elmo
from elmo_tasks.paths import input_file_problem, read_json_file

STATE_FILE = "checkpoint"
SOFTMAX_NAME = "softmax.hdf5"  # datasets softmax/W (V, P) and softmax/b (V), as pretraining writes them
VOCAB_NAME = "vocab.txt"
OPTIONS_NAME = "options.json"
SOFTMAX = ("lm/softmax/W", "lm/softmax/b")
MAX_STATE_BYTES = 1 << 20  # TensorFlow's checkpoint file names a few checkpoints: a few hundred bytes
MAX_SOFTMAX_ROWS = 10_000_000  # words, as elmo_tasks.pretrain.softmax loads them (the 1B Word vocabulary: 793,471)
MAX_VOCAB_LINE = 1 << 16  # bytes of one vocabulary line
_LATEST = re.compile(rb'^[ \t]*model_checkpoint_path[ \t]*:[ \t]*(?P<q>["\'])(?P<path>(?:\\.|(?!(?P=q))[^\\\n])*)'
                     rb'(?P=q)[ \t]*\r?$', re.MULTILINE)
_SIMPLE_ESCAPES = {ord(k): v for k, v in {"n": 10, "r": 13, "t": 9, "a": 7, "b": 8, "f": 12, "v": 11, "\\": 92,
                                          "'": 39, '"': 34, "?": 63}.items()}
_DATA = re.compile(r"\.data-\d{5}-of-\d{5}$")


def c_unescape(text: bytes) -> bytes:
    """The bytes a text-format string literal stands for: TensorFlow writes a file name's bytes with
    C-style escapes (``\\n``, ``\\"``, ``\\\\``, octal ``\\303``, hex ``\\xc3``), its UTF-8 unescaped or as octal."""
    out, pos = bytearray(), 0
    while pos < len(text):
        byte = text[pos]
        if byte != 0x5C:  # backslash
            out.append(byte)
            pos += 1
            continue
        if pos + 1 >= len(text):
            raise ValueError("a backslash ends the string")
        code = text[pos + 1]
        if code in _SIMPLE_ESCAPES:
            out.append(_SIMPLE_ESCAPES[code])
            pos += 2
        elif 0x30 <= code <= 0x37:  # octal: up to three digits
            end = pos + 1
            while end < len(text) and end < pos + 4 and 0x30 <= text[end] <= 0x37:
                end += 1
            value = int(text[pos + 1 : end], 8)
            if value > 0xFF:
                raise ValueError(f"octal escape \\{text[pos + 1 : end].decode()} is over 255")
            out.append(value)
            pos = end
        elif code in b"xX":
            match = re.match(rb"[0-9a-fA-F]{1,2}", text[pos + 2 : pos + 4])
            if not match:
                raise ValueError("\\x without hex digits")
            out.append(int(match[0], 16))
            pos += 2 + len(match[0])
        else:
            raise ValueError(f"unknown escape \\{chr(code)}")
    return bytes(out)


def is_checkpoint(path: Path) -> bool:
    """A save dir (``checkpoint`` file or ``*.index`` files with ``lm/`` names) or a checkpoint prefix."""
    if path.is_dir():
        return (path / STATE_FILE).exists() or any(path.glob("*.ckpt*.index"))
    return Path(f"{path}.index").is_file() or path.name.endswith(".index")


def _checked(path: Path, what: str) -> Path:
    problem = input_file_problem(path, what)
    if problem:
        raise UserError(problem)
    return path


def latest_name(state: Path) -> str:
    """The checkpoint name (as TensorFlow wrote it, unescaped and decoded) the ``checkpoint`` file gives as latest."""
    _checked(state, "TensorFlow checkpoint state file")
    if state.stat().st_size > MAX_STATE_BYTES:
        raise UserError(f"{state}: {state.stat().st_size:,} bytes: not TensorFlow's checkpoint file (a few hundred)")
    match = _LATEST.search(state.read_bytes())
    if not match:
        raise UserError(f"{state}: no model_checkpoint_path line (is this TensorFlow's checkpoint file?)")
    try:
        named = c_unescape(match["path"]).decode("utf-8")
    except ValueError as exc:  # a bad escape, or bytes that are not UTF-8
        raise UserError(f"{state}: model_checkpoint_path is not a valid name ({exc})") from None
    if "\0" in named or Path(named).name in ("", ".", ".."):
        raise UserError(f"{state}: model_checkpoint_path {named!r} is not a checkpoint name")
    return named


def find_prefix(path: Path) -> Path:
    """The checkpoint prefix to read: the one ``checkpoint`` names as latest, resolved in ``path``."""
    if not path.is_dir():
        name = path.name
        if name.endswith(".index"):
            return path.with_name(name[: -len(".index")])
        if _DATA.search(name):
            return path.with_name(_DATA.sub("", name))
        return path
    state = path / STATE_FILE
    if state.exists():
        named = latest_name(state)
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
    path = folder / OPTIONS_NAME
    if not path.exists():
        return None
    data = read_json_file(path, what="options file")
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a JSON object")
    return data


def files_read(source: Path) -> list[Path]:
    """The files converting ``source`` reads (index, data shards, options.json and vocab.txt beside)."""
    prefix = find_prefix(source)
    index = Path(f"{prefix}.index")
    files = [index] + sorted(p for p in prefix.parent.glob(f"{prefix.name}.data-*") if _DATA.search(p.name))
    files += [prefix.parent / name for name in (OPTIONS_NAME, VOCAB_NAME) if (prefix.parent / name).exists()]
    return [_checked(path, "checkpoint file") for path in files]


def _check_softmax(bundle: TensorBundle, width: int) -> bool:
    """Whether the checkpoint holds the softmax (checked from the index: float32 (V, P) and (V,))."""
    present = [name for name in SOFTMAX if name in bundle.entries]
    if not present:
        return False
    if len(present) == 1:
        raise UserError(f"{bundle.index_path}: has variable '{present[0]}' but not its partner of {SOFTMAX}")
    weight, bias = (bundle.entry(name) for name in SOFTMAX)
    if len(weight.shape) != 2 or bias.shape != weight.shape[:1] or weight.shape[1] != width:
        raise UserError(f"{bundle.index_path}: variables 'lm/softmax/W' {list(weight.shape)} and 'lm/softmax/b' "
                        f"{list(bias.shape)} do not form a softmax of width {width} (lstm.projection_dim)")
    if not 1 <= weight.shape[0] <= MAX_SOFTMAX_ROWS:
        raise UserError(f"{bundle.index_path}: a softmax of {weight.shape[0]:,} words, outside this toolkit's "
                        f"limit of {MAX_SOFTMAX_ROWS:,}")
    for entry in (weight, bias):
        if entry.dtype != FLOAT32:
            raise UserError(f"{bundle.index_path}: variable '{entry.name}' holds {entry.dtype_name}, not float32")
    return True


def count_vocabulary(vocab: Path, rows: int) -> int:
    """The words of a bilm-tf vocabulary file (one per line, ``!!!MAXTERMID`` and blank lines not
    counted), stopping past ``rows``; every line must be UTF-8."""
    _checked(vocab, "vocabulary file")
    count = 0
    with open(vocab, "rb") as handle:
        for number, line in enumerate(iter(lambda: handle.readline(MAX_VOCAB_LINE + 1), b""), start=1):
            if len(line) > MAX_VOCAB_LINE:
                raise UserError(f"{vocab}, line {number}: longer than {MAX_VOCAB_LINE:,} bytes: not a vocabulary")
            try:
                word = line.decode("utf-8").strip()
            except UnicodeDecodeError as exc:
                raise UserError(f"{vocab}, line {number}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
            if word and word != "!!!MAXTERMID":
                count += 1
                if count > rows:
                    break
    return count


def convert_checkpoint(source: Path, out_dir: Path, options: dict | None = None, vocab_file: Path | None = None,
                       options_source: str | Path = "--options") -> None:
    """Write the latest checkpoint of ``source`` as a public-format model (+ softmax and vocab) into ``out_dir``."""
    prefix = find_prefix(source)
    bundle = TensorBundle(prefix)
    if options is None:
        options, options_source = read_options_beside(prefix.parent), prefix.parent / OPTIONS_NAME
    found = find_elmo(bundle, "lm", options, options_source)
    has_softmax = _check_softmax(bundle, found.options.projection_dim)
    vocab = vocab_file or (prefix.parent / VOCAB_NAME)
    if has_softmax and (vocab_file is not None or vocab.exists()):
        rows = bundle.entries[SOFTMAX[0]].shape[0]
        words = count_vocabulary(vocab, rows)
        if words != rows:
            raise UserError(f"{vocab}: {'more than ' if words > rows else ''}{words:,} words, but 'lm/softmax/W' in "
                            f"{bundle.index_path} has {rows:,} rows: not this model's vocabulary")
    elif vocab_file is not None:
        _checked(vocab_file, "vocabulary file")
    write_elmo(found, out_dir)
    if not has_softmax:
        return
    if vocab.exists():
        with atomic_path(out_dir / VOCAB_NAME) as tmp:
            shutil.copyfile(vocab, tmp)
    weight, bias = (bundle.read(name) for name in SOFTMAX)
    for name, array in zip(SOFTMAX, (weight, bias)):
        check_finite(array, f"variable '{name}'", bundle.data_path(bundle.entries[name].shard))
    with atomic_path(out_dir / SOFTMAX_NAME) as tmp, h5py.File(tmp, "w") as handle:
        handle.create_dataset("softmax/W", data=np.asarray(weight))
        handle.create_dataset("softmax/b", data=np.asarray(bias))
