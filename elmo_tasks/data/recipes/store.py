"""Prepared task sets on disk: build one atomically from its recipe, verify it, load it.

Layout::

    <root>/<name>/train.jsonl  dev.jsonl  test.jsonl   # one JSON object per line, task schema
    <root>/<name>/manifest.json                        # source, licence, sizes, labels, sha256, split rule
    <root>/wordnet-wsd/sense_frequencies.json          # word-sense sets only: SemCor counts per sense

``<root>`` defaults to ``elmo_tasks.data.sources.cache_dir() / "datasets"``. Writes are atomic:
everything goes into ``<root>/.<name>.tmp-<pid>-*`` first, the manifest last, and the folder is
renamed into place at the end, so a killed run leaves no ``<root>/<name>`` that a later run would
trust. :func:`load_prepared` checks every file against the manifest's sha256.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
import re
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from elmo_tasks.data import readers, sources
from elmo_tasks.data.recipes.base import FORMAT_VERSION, MANIFEST, SENSE_FREQUENCIES, SPLITS
from elmo_tasks.data.recipes.registry import RECIPES, get_recipe
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict


def default_root() -> Path:
    """``elmo_tasks.data.sources.cache_dir() / "datasets"``."""
    return sources.cache_dir() / "datasets"


def prepared_dir(name: str, root: str | os.PathLike | None = None) -> Path:
    """The folder a prepared set ``name`` lives in (whether or not it exists yet)."""
    return Path(root) / name if root is not None else default_root() / name



def _read_manifest(folder: Path) -> dict[str, Any] | None:
    try:
        manifest = json.loads((folder / MANIFEST).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(manifest, dict) or manifest.get("format_version") != FORMAT_VERSION:
        return None
    return manifest


# what a recipe says about the set it builds: a prepared folder whose manifest says otherwise was
# built by an older recipe (e.g. another subset size) and must be rebuilt, not silently used
RECIPE_FIELDS = ("task", "description", "split_rule")


def outdated(folder: Path) -> str | None:
    """Why the prepared ``folder`` no longer matches its recipe (a manifest field that differs), or None."""
    manifest = _read_manifest(folder)
    return None if manifest is None else _recipe_change(manifest, folder.name)


def _recipe_change(manifest: dict[str, Any], name: str) -> str | None:
    recipe = RECIPES.get(name)
    for key in RECIPE_FIELDS if recipe is not None else ():
        if manifest.get(key) != getattr(recipe, key):
            return f"its {key} differs from the recipe's"
    return None


def verify(folder: Path) -> dict[str, Any]:
    """The manifest of a prepared folder, after checking that its recipe is the current one and
    every listed file's sha256."""
    manifest = _read_manifest(folder)
    if manifest is None:
        raise UserError(f"{folder}: no valid {MANIFEST}; run 'elmo-tasks data prepare {folder.name} --force'")
    reason = _recipe_change(manifest, folder.name)
    if reason is not None:
        raise UserError(f"{folder}: prepared by an older recipe of {folder.name} ({reason}); "
                        f"run 'elmo-tasks data prepare {folder.name} --force'")
    for name, digest in manifest["sha256"].items():
        path = folder / name
        if not path.is_file():
            raise UserError(f"{path}: missing (listed in {MANIFEST}); run 'elmo-tasks data prepare {folder.name} --force'")
        if sha256_file(path) != digest:
            raise UserError(f"{path}: sha256 differs from {MANIFEST}; the file was changed; "
                            f"run 'elmo-tasks data prepare {folder.name} --force'")
    return manifest


def _split_stats(task: str, rows: list[dict[str, Any]]) -> dict[str, Any]:
    stats: dict[str, Any] = {"sentences": len(rows), "tokens": sum(len(r["tokens"]) for r in rows)}
    if task == "tagging":
        stats["tags"] = dict(sorted(collections.Counter(t for r in rows for t in r["tags"]).items()))
    elif task == "classification":
        stats["labels"] = dict(sorted(collections.Counter(r["label"] for r in rows).items()))
    elif task == "word-sense":
        stats["lemmas"] = len({(r["lemma"], r["pos"]) for r in rows})
        stats["senses"] = len({r["sense"] for r in rows})
        stats["pos"] = dict(sorted(collections.Counter(r["pos"] for r in rows).items()))
    return stats


def _label_set(task: str, splits: dict[str, list[dict[str, Any]]]) -> list[str]:
    if task == "tagging":
        return sorted({t for rows in splits.values() for r in rows for t in r["tags"]})
    if task == "classification":
        return sorted({r["label"] for rows in splits.values() for r in rows})
    return sorted({r["sense"] for rows in splits.values() for r in rows})


def _write_jsonl(path: Path, rows: list[dict[str, Any]]) -> None:
    with open(path, "w", encoding="utf-8", newline="\n") as handle:
        for row in rows:
            handle.write(json.dumps(row, ensure_ascii=False) + "\n")


def _clean_stale_temps(root: Path, name: str) -> None:
    """Remove ``.<name>.tmp-<pid>-*`` folders left by runs whose process is gone."""
    for stale in root.glob(f".{name}.tmp-*"):
        match = re.match(rf"\.{re.escape(name)}\.tmp-(\d+)-", stale.name)
        if not match or not stale.is_dir():
            continue
        pid = int(match.group(1))
        try:
            os.kill(pid, 0)
            alive = pid != os.getpid()
        except ProcessLookupError:
            alive = False
        except PermissionError:
            alive = True
        if not alive:
            shutil.rmtree(stale, ignore_errors=True)


def _describe_local(path: Path) -> dict[str, Any]:
    """A local source file (or folder of files) with its sha256 (per file for a folder)."""
    if path.is_dir():
        return {"path": str(path), "files_sha256": {p.name: sha256_file(p) for p in sorted(path.iterdir()) if p.is_file()}}
    return {"path": str(path), "sha256": sha256_file(path)}


def prepare(name: str, out_dir: str | os.PathLike | None = None, *, force: bool = False,
            sources: dict[str, str | os.PathLike] | None = None, log: Callable[[str], None] | None = None) -> Path:
    """Build the task set ``name`` into ``<out_dir>/<name>/`` and return that folder.

    An existing folder whose manifest and checksums are intact is returned as is unless ``force``.
    ``sources`` gives the raw input files by role instead of fetching them (``{"corpus": path}``; for
    ``wordnet-wsd``: ``data.noun`` ... ``index.sense``), as the tests do with small samples.
    """
    recipe = get_recipe(name)
    root = Path(out_dir) if out_dir is not None else default_root()
    target = root / name
    if target.exists() and not force:
        if _read_manifest(target) is None:
            raise UserError(f"{target} exists but holds no valid {MANIFEST} (not written by 'data prepare'); "
                            f"remove it or use --force")
        verify(target)
        if log:
            log(f"{name}: already prepared in {target} (use --force to rebuild)")
        return target
    root.mkdir(parents=True, exist_ok=True)
    _clean_stale_temps(root, name)
    workdir = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-", dir=root))
    try:
        raw = workdir / "raw"
        raw.mkdir()
        if sources is not None:
            files = {role: Path(path) for role, path in sources.items()}
            source_info: dict[str, Any] = {"local_files": {role: _describe_local(path)
                                                           for role, path in sorted(files.items())}}
        else:
            if log:
                log(f"{name}: fetching {recipe.source}")
            files, source_info = recipe.fetch(raw)
        if log:
            log(f"{name}: building")
        built = recipe.build(files)
        out = workdir / "out"
        out.mkdir()
        digests: dict[str, str] = {}
        for split in SPLITS:
            _write_jsonl(out / f"{split}.jsonl", built.splits[split])
            digests[f"{split}.jsonl"] = sha256_file(out / f"{split}.jsonl")
        for filename, value in built.extra_files.items():
            (out / filename).write_text(json.dumps(value, ensure_ascii=False, indent=None, sort_keys=False) + "\n",
                                        encoding="utf-8")
            digests[filename] = sha256_file(out / filename)
        manifest = {
            "format_version": FORMAT_VERSION,
            "name": recipe.name,
            "task": recipe.task,
            "silver": recipe.silver,
            "description": recipe.description,
            "source": {"description": recipe.source, **source_info},
            "licence": recipe.licence,
            "split_rule": recipe.split_rule,
            "tokenizer": readers.ptb_tokenizer_name() if recipe.ptb_tokenized else None,
            "columns": list(built.splits["train"][0]) if built.splits["train"] else [],
            "splits": {split: _split_stats(recipe.task, built.splits[split]) for split in SPLITS},
            "label_set": _label_set(recipe.task, built.splits),
            "sha256": digests,
            **built.notes,
        }
        if recipe.task == "word-sense":  # thousands of sense keys: count them instead of listing
            manifest["label_set_size"] = len(manifest.pop("label_set"))
        (out / MANIFEST).write_text(json.dumps(manifest, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        if target.exists():  # force: move the old folder aside, then swap
            old = Path(tempfile.mkdtemp(prefix=f".{name}.tmp-{os.getpid()}-old-", dir=root))
            os.replace(target, old / name)
        os.replace(out, target)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
        for leftover in root.glob(f".{name}.tmp-{os.getpid()}-old-*"):
            shutil.rmtree(leftover, ignore_errors=True)
    if log:
        log(f"{name}: wrote {target}")
    return target


def load_prepared(name: str, root: str | os.PathLike | None = None) -> "DatasetDict":
    """The prepared set ``name`` as a ``DatasetDict`` with train/dev/test (checksums verified)."""
    import datasets

    get_recipe(name)
    folder = prepared_dir(name, root)
    if not folder.is_dir():
        raise UserError(f"the data set {name!r} is not prepared in {folder.parent}; "
                        f"run 'elmo-tasks data prepare {name}'" + (f" --out {folder.parent}" if root is not None else ""))
    manifest = verify(folder)
    out = {}
    for split in SPLITS:
        if manifest["splits"][split]["sentences"] == 0:  # tiny inputs may leave a split empty
            out[split] = datasets.Dataset.from_dict({column: [] for column in manifest["columns"]})
        else:
            out[split] = readers.read_jsonl(folder / f"{split}.jsonl")
    return datasets.DatasetDict(out)


def content_digest(name: str, root: str | os.PathLike | None = None) -> str:
    """One sha256 over the split files' digests in the manifest of the prepared set ``name`` (no file
    is read but the manifest); ``"not prepared"`` when there is none. Run fingerprints include it."""
    manifest = _read_manifest(prepared_dir(name, root))
    if manifest is None:
        return "not prepared"
    return hashlib.sha256(json.dumps(manifest.get("sha256"), sort_keys=True).encode()).hexdigest()


def describe(name: str, root: str | os.PathLike | None = None) -> str:
    """One line per split with its sizes, for the command line."""
    manifest = verify(prepared_dir(name, root))
    lines = []
    for split in SPLITS:
        stats = manifest["splits"][split]
        lines.append(f"  {split:<5} {stats['sentences']:>7,} sentences {stats['tokens']:>9,} tokens")
    return "\n".join(lines)



def load_sense_frequencies(root: str | os.PathLike | None = None,
                           name: str = "wordnet-wsd") -> dict[str, list[dict[str, Any]]]:
    """The ``wordnet-wsd`` sense-frequency table: ``"lemma%pos"`` -> the lemma's senses in WordNet
    sense-number order, each ``{"sense", "synset", "sense_number", "count"}`` (SemCor tag counts
    from ``index.sense``). Covers every sense of every lemma in the set, seen in the examples or not."""
    path = prepared_dir(name, root) / SENSE_FREQUENCIES
    if not path.is_file():
        raise UserError(f"{path}: not found; run 'elmo-tasks data prepare {name}' first")
    return json.loads(path.read_text(encoding="utf-8"))

