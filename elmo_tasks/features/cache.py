"""The on-disk cache of biLM layers: computed once per (model weights, sentences), reused by every run.

The biLM is frozen, so a split's layers never change: they are stored as one array of every token
of the split, ``layers.npy`` (n_tokens, n_layers, 2P) in float16 or float32, with ``offsets.npy``
(n_sentences + 1) marking where each sentence starts, and ``meta.json``. The folder's name is a
hash of the model's files, the sentences' tokens (in order), the dtype and the cache format, so a
different model or changed data never hits a stale cache, while labels and heads do not matter.

Under ``torchrun`` the ranks build a cache together, each embedding one block of the sentences
(see ``LayerCache.build``).

Writes are atomic: the folder is written under a temporary name and renamed into place only once
complete, so a killed build leaves nothing that a later run would trust (the leftover temporary
folder is removed by the next build of the same key once its process is gone).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

from elmo_tasks import distributed
from elmo_tasks.atomic import make_temp_dir
from elmo_tasks.data.sources import cache_dir
from elmo_tasks.embedder import Embedder
from elmo_tasks.errors import UserError
from elmo_tasks.lock import hold
from elmo_tasks.model_folder import ModelFolder

CACHE_FORMAT = 1
DTYPES = {"float16": np.float16, "float32": np.float32}


def default_cache_root() -> Path:
    return cache_dir() / "features"


def sentences_digest(sentences: Sequence[Sequence[str]]) -> str:
    digest = hashlib.sha256()
    for tokens in sentences:
        digest.update(json.dumps(list(tokens), ensure_ascii=False).encode("utf-8"))
        digest.update(b"\n")
    return digest.hexdigest()


@dataclass
class CachedLayers:
    """A split's layers: ``layers`` (n_tokens, L, D) and ``offsets`` (n_sentences + 1)."""

    layers: torch.Tensor
    offsets: np.ndarray
    path: Path

    def __len__(self) -> int:
        return len(self.offsets) - 1

    def batch(self, rows: Sequence[int], width: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded layers (B, L, T, D) in the cache's dtype and mask (B, T) for sentences ``rows``."""
        starts = self.offsets[list(rows)]
        lengths = self.offsets[np.asarray(rows) + 1] - starts
        width = int(lengths.max(initial=0)) if width is None else width
        index = (np.concatenate([np.arange(s, s + n) for s, n in zip(starts, lengths)]) if len(rows)
                 else np.zeros(0, dtype=np.int64))
        mask = torch.from_numpy(np.arange(width)[None, :] < lengths[:, None])
        out = self.layers.new_zeros(len(rows), width, *self.layers.shape[1:])
        out[mask] = self.layers[torch.from_numpy(index)]
        return out.transpose(1, 2), mask


class LayerCache:
    """Where and how cached layers live: ``root / <model hash> / <key>``."""

    def __init__(self, model: ModelFolder | str | Path, root: str | Path | None = None, dtype: str = "float16",
                 batch_size: int = 64) -> None:
        if dtype not in DTYPES:
            raise UserError(f"cache dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
        self.model = model if isinstance(model, ModelFolder) else ModelFolder(Path(model))
        self.model_dir = self.model.path
        self.root = Path(root) if root is not None else default_cache_root()
        self.dtype = dtype
        self.batch_size = batch_size
        self._model_digest: str | None = None
        self._embedder = None  # loaded on the first build, reused for the other splits
        self.device = None  # where the biLM runs when it builds (None: the CPU; under torchrun each rank's own)

    @property
    def model_key(self) -> str:
        if self._model_digest is None:
            self._model_digest = self.model.digest()
        return self._model_digest

    def path_for(self, sentences: Sequence[Sequence[str]]) -> Path:
        key = hashlib.sha256(f"{CACHE_FORMAT}:{self.dtype}:{sentences_digest(sentences)}".encode()).hexdigest()[:24]
        return self.root / self.model_key[:16] / f"{key}-{self.dtype}"

    def lookup(self, sentences: Sequence[Sequence[str]]) -> CachedLayers | None:
        """The cached layers of ``sentences`` if a complete, matching cache exists."""
        return self._open(self.path_for(sentences), sentences)

    def peek(self, sentences: Sequence[Sequence[str]]) -> np.memmap | None:
        """The cached layers of ``sentences``, memory-mapped rather than read, if a complete cache exists."""
        return self._check(self.path_for(sentences), sentences)

    def get(self, sentences: Sequence[Sequence[str]], progress: bool = True, desc: str = "cache") -> CachedLayers:
        """The cached layers, built first if needed (with a progress bar on stderr)."""
        self.ensure(sentences, progress=progress, desc=desc)
        found = self.lookup(sentences)
        if found is None:
            raise UserError(f"the feature cache at {self.path_for(sentences)} could not be read back after building it")
        return found

    def ensure(self, sentences: Sequence[Sequence[str]], progress: bool = True, desc: str = "cache") -> bool:
        """Build the cache of ``sentences`` unless a complete one exists; True when it was built.

        Under torchrun rank 0 decides for every rank, so that all of them build (or skip) together.
        """
        if not distributed.broadcast_from_main(self.peek(sentences) is None):
            return False
        self.build(sentences, progress=progress, desc=desc)
        return True

    def _open(self, path: Path, sentences: Sequence[Sequence[str]]) -> CachedLayers | None:
        layers = self._check(path, sentences)
        if layers is None:
            return None
        return CachedLayers(torch.from_numpy(np.array(layers)), np.load(path / "offsets.npy"), path)  # read into memory

    def _check(self, path: Path, sentences: Sequence[Sequence[str]]) -> np.memmap | None:
        """The layers array of the cache at ``path`` (memory-mapped, not read) if it is complete and matches."""
        meta_path = path / "meta.json"
        if not meta_path.is_file():
            return None
        try:
            meta = json.loads(meta_path.read_text())
            offsets = np.load(path / "offsets.npy")
            layers = np.load(path / "layers.npy", mmap_mode="r")
        except (OSError, ValueError, RecursionError):
            return None
        if not isinstance(meta, dict):
            return None
        expected = np.concatenate([[0], np.cumsum([len(s) for s in sentences])])
        if (meta.get("format") != CACHE_FORMAT or meta.get("model") != self.model_key or meta.get("dtype") != self.dtype
                or len(offsets) != len(expected) or not np.array_equal(offsets, expected)
                or layers.shape[0] != expected[-1] or layers.dtype != DTYPES[self.dtype]):
            return None
        return layers

    def build(self, sentences: Sequence[Sequence[str]], progress: bool = True, desc: str = "cache") -> Path:
        """Run the biLM over ``sentences`` and store the layers atomically; returns the folder.

        Under ``torchrun`` every rank calls this with the same sentences: rank 0 preallocates the
        array in a temporary folder, each rank fills the rows of its own block of sentences
        (``distributed.shard_indices``), and rank 0 renames the folder into place once all are
        done, so the cache is the one a single process would write (up to float rounding: a
        sentence's values move by about 1e-7 with its batch). The cache root must then be a
        folder every rank sees (one machine, or a shared filesystem).
        """
        rank = distributed.current_rank()
        target = self.path_for(sentences)
        if not rank.is_main:
            return self._build(target, sentences, progress, desc, rank)
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot write the feature cache under {self.root} (features.elmo.cache_dir): "
                            f"{exc.strerror or exc}: {exc.filename or target.parent}") from None
        # one builder per key: another process building it is waited for, and its cache reused
        with hold(target.parent / f"{target.name}.lock", f"the feature cache {target}", wait=True):
            return self._build(target, sentences, progress, desc, rank)

    def _build(self, target: Path, sentences: Sequence[Sequence[str]], progress: bool, desc: str, rank) -> Path:
        embedder = self._load_embedder(rank)
        offsets = np.concatenate([[0], np.cumsum([len(s) for s in sentences])]).astype(np.int64)
        shape = (int(offsets[-1]), embedder.num_layers, embedder.output_dim)
        tmp = None
        if rank.is_main and self._check(target, sentences) is None:  # else built while we waited
            try:
                tmp = self._start(target, shape)
            except OSError as exc:
                raise UserError(f"cannot write the feature cache under {self.root} (features.elmo.cache_dir): "
                                f"{exc.strerror or exc}: {exc.filename or target.parent}") from None
        tmp = distributed.broadcast_from_main(str(tmp) if tmp is not None else "")
        if not tmp:
            return target
        tmp = Path(tmp)
        try:
            if not (tmp / "layers.npy").is_file():
                raise UserError(f"rank {rank.rank} cannot see the feature cache folder {tmp} that rank 0 created: "
                                "with several machines, cache_dir must be on a filesystem they share")
            started = time.perf_counter()
            self._fill(tmp / "layers.npy", embedder, sentences, offsets,
                       distributed.shard_indices(len(sentences), rank.rank, rank.world),
                       progress=progress and rank.is_main, desc=desc)
            distributed.barrier()  # every rank's rows are on disk
            if rank.is_main:
                meta = {"format": CACHE_FORMAT, "model": self.model_key, "model_dir": str(self.model_dir),
                        "dtype": self.dtype, "sentences": len(sentences), "tokens": shape[0],
                        "num_layers": shape[1], "dim": shape[2], "processes": rank.world,
                        "seconds": round(time.perf_counter() - started, 3)}
                self._finish(tmp, target, offsets, meta, sentences)
            distributed.barrier()  # the cache is in place before any rank reads it
        except OSError as exc:  # a full disk, a folder removed under us
            raise UserError(f"writing the feature cache {tmp} failed: {exc.strerror or exc}") from None
        finally:
            if rank.is_main and tmp.exists():
                shutil.rmtree(tmp, ignore_errors=True)
        return target

    def _load_embedder(self, rank):
        """The model, loaded once per cache; on the rank's GPU in a multi-process run."""
        if self._embedder is None:
            self._embedder = Embedder.from_dir(self.model_dir, batch_size=self.batch_size)
            if rank.world > 1:
                self._embedder.to(distributed.device_for(rank))
            elif self.device is not None:
                self._embedder.to(self.device)
        return self._embedder

    def _start(self, target: Path, shape: tuple[int, int, int]) -> Path:
        """A fresh temporary folder beside ``target`` holding a zero-filled ``layers.npy`` of ``shape``."""
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = make_temp_dir(target)  # and removes the ones of killed builds
        layers = np.lib.format.open_memmap(tmp / "layers.npy", mode="w+", dtype=DTYPES[self.dtype], shape=shape)
        del layers
        return tmp

    @staticmethod
    def _fill(path: Path, embedder, sentences: Sequence[Sequence[str]], offsets: np.ndarray, rows: range,
              progress: bool, desc: str) -> None:
        """Write the layers of ``sentences[rows]`` into their rows of the array at ``path``."""
        layers = np.load(path, mmap_mode="r+")
        bar = None
        if progress:
            bar = tqdm(total=len(rows), unit=" sentences", desc=desc, file=sys.stderr)
        stream = embedder.embed_sentences(sentences[i] for i in rows)  # (L, n, D) each, in order
        for row, array in zip(rows, stream):
            layers[offsets[row]:offsets[row + 1]] = array.transpose(1, 0, 2)
            if bar is not None:
                bar.update(1)
        if bar is not None:
            bar.close()
        layers.flush()
        del layers

    def _finish(self, tmp: Path, target: Path, offsets: np.ndarray, meta: dict,
                sentences: Sequence[Sequence[str]]) -> None:
        """Complete the folder (offsets, then meta.json last, which marks completion) and rename it to ``target``."""
        np.save(tmp / "offsets.npy", offsets)
        for name in ("layers.npy", "offsets.npy"):
            _fsync(tmp / name)
        (tmp / "meta.json").write_text(json.dumps(meta, indent=1) + "\n")
        _fsync(tmp / "meta.json")
        try:
            os.rename(tmp, target)
        except OSError:  # another process finished the same cache first
            if self._check(target, sentences) is None:
                shutil.rmtree(target, ignore_errors=True)
                os.rename(tmp, target)


def _fsync(path: Path) -> None:
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
