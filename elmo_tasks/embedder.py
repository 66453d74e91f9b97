"""The Python API for ELMo vectors: load a model, embed token lists, write HDF5 dumps.

    >>> from elmo_tasks.embedder import Embedder
    >>> embedder = Embedder.from_dir()          # the toolkit's default model
    >>> out = embedder.layers([["I", "love", "to", "watch", "TV"]])
    >>> out.layers.shape, out.mask.shape       # (1, 3, 5, 2P), (1, 5)

The command-line tools ``embed`` and ``embed-file`` use these same objects.
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np
import torch

from elmo_tasks.bilm.chars import batch_to_ids
from elmo_tasks.bilm.model import BiLM, BiLMOutput
from elmo_tasks.bilm.weights import OPTIONS_NAME, WEIGHTS_NAME, load_bilm, load_bilm_dir
from elmo_tasks.errors import UserError

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "default"
FIXTURE_MODEL_DIR = MODELS_DIR / "tiny_fixture"
FIXTURE_WARNING = (
    "note: using the tiny test model (allennlp's 32-dimension fixture): it has no linguistic value; "
    "pass --model DIR for a real model"
)
LAYER_CHOICES = ("all", "top", "average")


def default_model_dir() -> Path:
    """The shipped default model, or the tiny fixture model while no trained default ships."""
    if (DEFAULT_MODEL_DIR / WEIGHTS_NAME).is_file():
        return DEFAULT_MODEL_DIR
    return FIXTURE_MODEL_DIR


def is_fixture_model(directory: Path) -> bool:
    return Path(directory).resolve() == FIXTURE_MODEL_DIR.resolve()


class Embedder:
    """A frozen biLM with batching helpers. Stateless unless the biLM was loaded ``stateful``."""

    def __init__(self, bilm: BiLM, batch_size: int = 64) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.bilm = bilm.eval().requires_grad_(False)
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, directory: str | Path | None = None, stateful: bool = False, batch_size: int = 64) -> "Embedder":
        """Load a model folder (``options.json`` + ``weights.hdf5``); None means the default model."""
        return cls(load_bilm_dir(directory or default_model_dir(), stateful=stateful), batch_size)

    @classmethod
    def from_files(cls, options_file: str | Path, weights_file: str | Path, stateful: bool = False,
                   batch_size: int = 64) -> "Embedder":
        return cls(load_bilm(options_file, weights_file, stateful=stateful), batch_size)

    @property
    def output_dim(self) -> int:
        return self.bilm.output_dim

    @property
    def num_layers(self) -> int:
        return self.bilm.num_layers

    def layers(self, sentences: Sequence[Sequence[str]]) -> BiLMOutput:
        """One batch: layers (B, 3, T, 2P) and mask (B, T) as tensors."""
        with torch.inference_mode():
            return self.bilm(batch_to_ids(sentences))

    def embed_batch(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One float32 array (3, n, 2P) per sentence, trimmed to its length."""
        if not sentences:
            return []
        out = self.layers(sentences)
        lengths = out.mask.sum(dim=1).tolist()
        return [out.layers[i, :, :n].numpy() for i, n in enumerate(lengths)]

    def embed_sentences(self, sentences: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        """Stream (3, n, 2P) arrays in input order.

        Stateless: sentences are read in chunks, sorted by length into batches (less padding) and
        yielded back in their original order. Stateful: consecutive batches in order, like the
        references, so that the carried states match theirs.
        """
        chunk_size = self.batch_size if self.bilm.stateful else self.batch_size * 16
        chunk: list[Sequence[str]] = []
        for sentence in sentences:
            chunk.append(sentence)
            if len(chunk) == chunk_size:
                yield from self._embed_chunk(chunk)
                chunk = []
        if chunk:
            yield from self._embed_chunk(chunk)

    def _embed_chunk(self, chunk: list[Sequence[str]]) -> Iterator[np.ndarray]:
        if self.bilm.stateful:
            yield from self.embed_batch(chunk)
            return
        order = sorted(range(len(chunk)), key=lambda i: len(chunk[i]), reverse=True)
        results: list[np.ndarray | None] = [None] * len(chunk)
        for start in range(0, len(order), self.batch_size):
            rows = order[start : start + self.batch_size]
            for row, array in zip(rows, self.embed_batch([chunk[i] for i in rows])):
                results[row] = array
        yield from results  # type: ignore[misc]

    def embed_file(self, input_file: str | Path, output_file: str | Path, layers: str = "all",
                   progress: bool = False) -> int:
        """Embed a file of whitespace-tokenised sentences (one per line) into HDF5.

        One dataset per line, named by its 0-based line number: (3, n, 2P) for ``all``, (n, 2P)
        for ``top`` and ``average``; plus ``sentence_to_index`` (a JSON string mapping each
        sentence's text to its key). The output is written under a temporary name and renamed at
        the end, so an interrupted run leaves nothing at ``output_file``. Returns the line count.
        """
        if layers not in LAYER_CHOICES:
            raise UserError(f"--layers must be one of {', '.join(LAYER_CHOICES)}, got {layers!r}")
        input_path, output_path = Path(input_file), Path(output_file)
        if not input_path.is_file():
            raise UserError(f"input file not found: {input_path}")
        if output_path.is_dir():
            raise UserError(f"output path is a folder: {output_path}")
        if not output_path.parent.is_dir():
            raise UserError(f"output folder does not exist: {output_path.parent}")
        fd, tmp_name = tempfile.mkstemp(prefix=output_path.name + ".tmp-", dir=output_path.parent)
        os.close(fd)
        tmp = Path(tmp_name)
        count = 0
        try:
            sentence_to_index: dict[str, str] = {}
            with h5py.File(tmp, "w") as handle:
                texts = _read_lines(input_path)
                tokens = (text.split() for text in _remember(texts, sentence_to_index))
                stream = self.embed_sentences(tokens)
                if progress:
                    from tqdm import tqdm

                    stream = tqdm(stream, unit=" sentences", desc="embed-file", file=sys.stderr)
                for count, array in enumerate(stream, start=1):
                    if layers == "top":
                        array = array[-1]
                    elif layers == "average":
                        array = array.mean(axis=0)
                    handle.create_dataset(str(count - 1), data=array.astype(np.float32, copy=False))
                handle.create_dataset("sentence_to_index", data=json.dumps(sentence_to_index),
                                      dtype=h5py.string_dtype())
            os.replace(tmp, output_path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
        return count


def _read_lines(path: Path) -> Iterator[str]:
    """Lines of a UTF-8 text file, streamed; a decoding error names the line."""
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                yield raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}, line {number}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _remember(texts: Iterable[str], sentence_to_index: dict[str, str]) -> Iterator[str]:
    for index, text in enumerate(texts):
        sentence_to_index.setdefault(text.strip(), str(index))
        yield text
