"""The task-model archive (``elmo-tasks package``): one ``.tar.gz`` that predicts anywhere, offline.

::

    meta.json            format version, each member's sha256 and size, the biLM (bundled or by reference)
    config.yaml          the resolved config, no path of the training machine
    metrics.json         the run's scores and settings (paths reduced to file names)
    task.json            labels, whether tags are spans, word senses' candidates and most frequent senses
    network.safetensors  the trained weights (features' and head's), float32
    glove.json, glove.safetensors   the GloVe words: the task's (trained rows) and the table's others (float16)
    bilm/options.json, bilm/weights.hdf5   the biLM (absent with --bilm-ref: meta.json names it and its digest)
    MODEL_CARD.md        what the model is, for people

No pickle: tensors are safetensors, the rest JSON/YAML. Loading unpacks into a folder of the cache
named by the archive's sha256, under a lock, via a temporary folder renamed into place. Before
anything is used: only the members above, regular files, within the byte and member bounds of
:mod:`elmo_tasks.formats.archive_limits`; each member's digest as meta.json records; safetensors
headers checked (dtypes, sizes, and names and shapes against the network the config describes)
before a tensor is read. A damaged or hostile archive is a one-line UserError.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import struct
import tarfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from elmo_tasks.atomic import atomic_path, make_temp_dir
from elmo_tasks.data.sources import cache_dir, sha256_file
from elmo_tasks.errors import UserError
from elmo_tasks.formats.archive_limits import TAR_ERRORS, copy_member, looks_like_tar, tar_members
from elmo_tasks.lock import hold
from elmo_tasks.model_folder import ModelFolder, resolve_model
from elmo_tasks.paths import check_input_file
from elmo_tasks.schema import dump_yaml
from elmo_tasks.task import Task
from elmo_tasks.task_model.card import model_card
from elmo_tasks.task_model.parts import Glove, ModelParts, build_skeleton, trained_shapes

FORMAT = "elmo-tasks task model"
FORMAT_VERSION = 1
MEMBERS = ("meta.json", "config.yaml", "metrics.json", "task.json", "network.safetensors", "glove.json",
           "glove.safetensors", "bilm/options.json", "bilm/weights.hdf5", "MODEL_CARD.md")
REQUIRED = ("meta.json", "config.yaml", "metrics.json", "task.json", "network.safetensors")
MAX_HEADER = 16 << 20  # bytes of a safetensors header
SAFE_DTYPES = {"F32": 4, "F16": 2, "BF16": 2, "I64": 8, "BOOL": 1}


def scrub(value: Any) -> Any:
    """``value`` with every absolute path reduced to its file name (no path of the training machine)."""
    if isinstance(value, dict):
        return {k: scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, str) and os.path.isabs(value):
        return Path(value).name
    return value


def write_archive(parts: ModelParts, out: Path, bilm_ref: str | None = None) -> dict[str, Any]:
    """Write the archive of ``parts`` to ``out`` atomically; returns its meta.json."""
    config = scrub(parts.config)
    members: dict[str, bytes] = {}
    if parts.bilm is not None:
        config["features"]["elmo"]["model"] = bilm_ref or "bundled"
        config["features"]["elmo"]["cache_dir"] = None
    members["config.yaml"] = dump_yaml(config).encode()
    members["metrics.json"] = json.dumps(scrub(parts.metrics), indent=1).encode()
    task = parts.task
    members["task.json"] = json.dumps({"kind": task.kind, "labels": task.labels, "spans": task.spans,
                                       "candidates": task.candidates, "mfs": task.mfs,
                                       "glosses": parts.glosses}).encode()
    from safetensors.torch import save

    members["network.safetensors"] = save({k: v.detach().contiguous() for k, v in parts.state.items()})
    if parts.glove is not None:
        members["glove.json"] = json.dumps({"vocab": parts.glove.vocab, "extra_words": parts.glove.extra_words,
                                            "dim": parts.glove.dim}, ensure_ascii=False).encode()
        members["glove.safetensors"] = save({"extra": torch.from_numpy(np.ascontiguousarray(parts.glove.extra_vectors))})
    bilm = None
    if parts.bilm is not None:
        bilm = {"bundled": bilm_ref is None, "name": bilm_ref or parts.bilm_name, "digest": parts.bilm.digest()}
        if bilm_ref is None:
            members["bilm/options.json"] = parts.bilm.options_file.read_bytes()
            members["bilm/weights.hdf5"] = parts.bilm.weights_file.read_bytes()
    members["MODEL_CARD.md"] = model_card(parts, bilm).encode()
    meta = {"format": FORMAT, "format_version": FORMAT_VERSION, "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "versions": parts.metrics.get("versions", {}), "bilm": bilm,
            "members": {name: {"sha256": hashlib.sha256(data).hexdigest(), "size": len(data)}
                        for name, data in members.items()}}
    with atomic_path(out) as tmp, tarfile.open(tmp, "w:gz") as tar:
        for name, data in [("meta.json", json.dumps(meta, indent=1).encode()), *members.items()]:
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(data), 0o644, int(time.time())
            tar.addfile(info, io.BytesIO(data))
    return meta


def read_archive(path: Path) -> ModelParts:
    """The parts of the archive at ``path``, unpacked (once) into the cache and checked."""
    check_input_file(path, "task-model archive")
    folder = unpack(path)
    try:
        return _parts(folder, path)
    except UserError:  # its contents are refused: keep nothing of it
        shutil.rmtree(folder, ignore_errors=True)
        raise


def unpack(path: Path) -> Path:
    """The checked, unpacked folder of archive ``path`` under the cache's ``task-models``."""
    root = cache_dir() / "task-models"
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the task-model cache {root}: {exc.strerror or exc}") from None
    target = root / sha256_file(path)[:24]
    with hold(root / f".{target.name}.lock", f"the task-model cache {target}", wait=True):
        if (target / "meta.json").is_file():
            return target
        tmp = make_temp_dir(target)
        try:
            _extract(path, tmp)
            os.rename(tmp, target)
        finally:
            if tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
    return target


def _extract(path: Path, into: Path) -> None:
    """Unpack the expected members of ``path`` into ``into``, each hashed as it is copied, within the bounds
    of :mod:`elmo_tasks.formats.archive_limits` (member count, header sizes, unpacked bytes per archive byte)."""
    digests: dict[str, tuple[str, int]] = {}
    if not looks_like_tar(path):
        raise UserError(f"{path}: not a readable task-model archive (not a .tar.gz, or damaged or truncated)")
    try:
        for member, member_name, tar in tar_members(path):
            name = str(member_name)
            if name not in MEMBERS:
                raise UserError(f"{path}: member '{member.name[:120]}' is not part of a task-model archive "
                                f"(expected only {', '.join(MEMBERS)})")
            if name in digests:
                raise UserError(f"{path}: member '{name}' appears twice")
            if not member.isreg():
                raise UserError(f"{path}: member '{name}' is not a regular file (a link or a device)")
            source = tar.extractfile(member)
            out = into / name
            out.parent.mkdir(exist_ok=True)
            digest = hashlib.sha256()
            with open(out, "wb") as handle:
                copied = copy_member(path, name, _Hashing(source, digest), handle, member.size)
            if copied != member.size:
                raise UserError(f"{path}: member '{name}' is cut short (damaged or truncated)")
            digests[name] = (digest.hexdigest(), copied)
    except TAR_ERRORS as exc:
        raise UserError(f"{path}: not a readable task-model archive (damaged or truncated: {exc})") from None
    for name in REQUIRED:
        if name not in digests:
            raise UserError(f"{path}: not a task-model archive ({name} is missing)")
    meta = _json(into / "meta.json", path)
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise UserError(f"{path}: meta.json does not describe a task-model archive")
    if meta.get("format_version") != FORMAT_VERSION:
        raise UserError(f"{path}: archive format version {meta.get('format_version')!r}; this elmo-tasks reads "
                        f"version {FORMAT_VERSION} (upgrade elmo-tasks)")
    recorded = meta.get("members")
    if not isinstance(recorded, dict) or set(recorded) != set(digests) - {"meta.json"}:
        raise UserError(f"{path}: meta.json's member list does not match the archive's members")
    for name, entry in recorded.items():
        if not isinstance(entry, dict) or (entry.get("sha256"), entry.get("size")) != digests[name]:
            raise UserError(f"{path}: member '{name}' does not match its sha256 in meta.json (damaged or altered)")


class _Hashing:
    def __init__(self, source: Any, digest: Any) -> None:
        self.source, self.digest = source, digest

    def read(self, n: int) -> bytes:
        block = self.source.read(n)
        self.digest.update(block)
        return block


def _json(file: Path, archive: Path) -> Any:
    try:
        return json.loads(file.read_text(encoding="utf-8"))
    except (OSError, ValueError, RecursionError) as exc:
        raise UserError(f"{archive}: {file.name} is not valid JSON ({exc})") from None


def safetensors_header(file: Path, archive: Path) -> dict[str, tuple[str, tuple[int, ...]]]:
    """Name -> (dtype, shape) of a safetensors file, checked for consistency before any tensor is read."""
    size = file.stat().st_size
    with open(file, "rb") as handle:
        head = handle.read(8)
        if len(head) < 8:
            raise UserError(f"{archive}: {file.name} is not a safetensors file (too short)")
        (length,) = struct.unpack("<Q", head)
        if length > min(MAX_HEADER, size - 8):
            raise UserError(f"{archive}: {file.name} is not a safetensors file (header of {length} bytes)")
        try:
            header = json.loads(handle.read(length))
        except (ValueError, RecursionError):
            raise UserError(f"{archive}: {file.name} is not a safetensors file (unreadable header)") from None
    if not isinstance(header, dict):
        raise UserError(f"{archive}: {file.name}: the safetensors header is not a mapping")
    out, data_size = {}, size - 8 - length
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        try:
            dtype, shape, (begin, end) = entry["dtype"], entry["shape"], entry["data_offsets"]
            ok = (dtype in SAFE_DTYPES and all(isinstance(d, int) and 0 <= d for d in shape)
                  and 0 <= begin <= end <= data_size and end - begin == SAFE_DTYPES[dtype] * int(np.prod(shape, dtype=object)))
        except (KeyError, TypeError, ValueError):
            ok = False
        if not ok:
            raise UserError(f"{archive}: {file.name}: tensor '{str(name)[:80]}' has a bad dtype, shape or offsets")
        out[name] = (dtype, tuple(shape))
    return out


def _parts(folder: Path, archive: Path) -> ModelParts:
    import yaml
    from safetensors.torch import load_file

    meta = _json(folder / "meta.json", archive)
    try:
        config = yaml.safe_load((folder / "config.yaml").read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError, RecursionError) as exc:
        raise UserError(f"{archive}: config.yaml is not readable YAML ({str(exc).splitlines()[0][:120]})") from None
    metrics, task_data = _json(folder / "metrics.json", archive), _json(folder / "task.json", archive)
    if not all(isinstance(x, dict) for x in (config, metrics, task_data)):
        raise UserError(f"{archive}: config.yaml, metrics.json and task.json must hold mappings")
    try:
        task = Task(task_data["kind"], list(task_data["labels"]), bool(task_data["spans"]),
                    dict(task_data["candidates"]), dict(task_data["mfs"]))
    except (KeyError, TypeError):
        raise UserError(f"{archive}: task.json lacks kind, labels, spans, candidates or mfs") from None
    if task.kind not in ("tagging", "classification", "wsd"):
        raise UserError(f"{archive}: task.json: unknown task kind {task.kind!r}")
    glosses = task_data.get("glosses") or {}
    if not (isinstance(glosses, dict) and all(
            isinstance(v, dict) and all(k in ("synset", "gloss") and isinstance(x, str) for k, x in v.items())
            for v in glosses.values())):
        raise UserError(f"{archive}: task.json: glosses must map sense keys to {{synset, gloss}} strings")
    parts = ModelParts(config, task, {}, None, metrics, glosses=glosses, source=str(archive))
    bilm = meta.get("bilm")
    if isinstance(bilm, dict):
        if bilm.get("bundled"):
            parts.bilm = ModelFolder(folder / "bilm")
            if not (parts.bilm.options_file.is_file() and parts.bilm.weights_file.is_file()):
                raise UserError(f"{archive}: the bundled biLM (bilm/options.json, bilm/weights.hdf5) is missing")
        else:
            parts.bilm = resolve_model(str(bilm.get("name")))
        if parts.bilm.digest() != bilm.get("digest"):
            raise UserError(f"{archive}: the biLM {bilm.get('name') or 'bundled'} here has digest "
                            f"{parts.bilm.digest()[:16]}, the model was trained with {str(bilm.get('digest'))[:16]}")
        parts.bilm_name = bilm.get("name")
    if (folder / "glove.json").is_file():
        glove = _json(folder / "glove.json", archive)
        header = safetensors_header(folder / "glove.safetensors", archive) if (folder / "glove.safetensors").is_file() else {}
        try:
            vocab, extra, dim = list(glove["vocab"]), list(glove["extra_words"]), int(glove["dim"])
        except (KeyError, TypeError, ValueError):
            raise UserError(f"{archive}: glove.json lacks vocab, extra_words or dim") from None
        if header != {"extra": ("F16", (len(extra), dim))}:
            raise UserError(f"{archive}: glove.safetensors does not hold the ({len(extra)}, {dim}) float16 vectors "
                            "glove.json describes")
        vectors = load_file(folder / "glove.safetensors")["extra"].numpy()
        parts.glove = Glove(vocab, extra, vectors, dim)
    skeleton = build_skeleton(parts)
    expected = trained_shapes(skeleton)
    header = safetensors_header(folder / "network.safetensors", archive)
    if {k: shape for k, (_, shape) in header.items()} != expected:
        wrong = sorted(set(header) ^ set(expected)) or [k for k in expected if header[k][1] != expected[k]]
        raise UserError(f"{archive}: network.safetensors does not fit the network its config describes "
                        f"(tensor {wrong[0][:80]})")
    parts.state = load_file(folder / "network.safetensors")
    parts.network = skeleton
    return parts
