"""The Python API for ELMo vectors: load a model, embed token lists, write HDF5 dumps.

    >>> from elmo_tasks.embedder import Embedder
    >>> embedder = Embedder.from_dir()          # the toolkit's default model
    >>> out = embedder.layers([["I", "love", "to", "watch", "TV"]])
    >>> out.layers.shape, out.mask.shape       # (1, 3, 5, 2P), (1, 5)

The command-line tools ``embed`` and ``embed-file`` use these same objects.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Iterable, Iterator, Sequence

import h5py
import numpy as np
import torch

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.inference import InferenceEngine, InferenceSettings
from elmo_tasks.bilm.model import BiLM, BiLMOutput
from elmo_tasks.bilm.weights import WEIGHTS_NAME, load_bilm, load_bilm_dir
from elmo_tasks.errors import UserError

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "default"
FIXTURE_MODEL_DIR = MODELS_DIR / "tiny_fixture"
FIXTURE_WARNING = (
    "note: using the tiny test model (allennlp's 32-dimension fixture): it has no linguistic value; "
    "pass --model DIR for a real model"
)
LAYER_CHOICES = ("all", "top", "average")
SORT_CHUNK_BATCHES = 16  # stateless runs sort this many batches' worth of sentences by length at a time


def default_model_dir() -> Path:
    """The shipped default model, or the tiny fixture model while no trained default ships."""
    if (DEFAULT_MODEL_DIR / WEIGHTS_NAME).is_file():
        return DEFAULT_MODEL_DIR
    return FIXTURE_MODEL_DIR


def is_fixture_model(directory: Path) -> bool:
    return Path(directory).resolve() == FIXTURE_MODEL_DIR.resolve()


class Embedder:
    """A frozen biLM run by an inference engine, with batching helpers. Stateless unless the biLM
    was loaded ``stateful``. ``settings`` tunes the engine (``elmo_tasks.bilm.inference``)."""

    def __init__(self, bilm: BiLM, batch_size: int = 64, settings: InferenceSettings | None = None) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.engine = InferenceEngine(bilm.eval().requires_grad_(False), settings)
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, directory: str | Path | None = None, stateful: bool = False, batch_size: int = 64,
                 settings: InferenceSettings | None = None) -> "Embedder":
        """Load a model folder (``options.json`` + ``weights.hdf5``); None means the default model."""
        return cls(load_bilm_dir(directory or default_model_dir(), stateful=stateful), batch_size, settings)

    @classmethod
    def from_files(cls, options_file: str | Path, weights_file: str | Path, stateful: bool = False,
                   batch_size: int = 64, settings: InferenceSettings | None = None) -> "Embedder":
        return cls(load_bilm(options_file, weights_file, stateful=stateful), batch_size, settings)

    @property
    def bilm(self) -> BiLM:
        return self.engine.bilm

    @property
    def output_dim(self) -> int:
        return self.bilm.output_dim

    @property
    def device(self) -> torch.device:
        return self.engine.device

    def to(self, device: str | torch.device) -> "Embedder":
        """Move the engine (e.g. to a GPU); inputs follow it and results come back as CPU arrays."""
        self.engine.to(device)
        return self

    @property
    def num_layers(self) -> int:
        return self.bilm.num_layers

    def layers(self, sentences: Sequence[Sequence[str]]) -> BiLMOutput:
        """One batch: layers (B, 3, T, 2P) and mask (B, T) as tensors."""
        with torch.inference_mode():
            return self.engine(batch_to_ids(sentences).to(self.device))

    def embed_batch(self, sentences: Sequence[Sequence[str]]) -> list[np.ndarray]:
        """One float32 array (3, n, 2P) per sentence, trimmed to its length (a copy: it holds no batch padding)."""
        if not sentences:
            return []
        out = self.layers(sentences)
        lengths = out.mask.sum(dim=1).tolist()
        layers = out.layers.cpu().numpy()
        return [layers[i, :, :n].copy() for i, n in enumerate(lengths)]

    def embed_sentences(self, sentences: Iterable[Sequence[str]]) -> Iterator[np.ndarray]:
        """Stream (3, n, 2P) arrays in input order.

        Stateless: sentences are read in chunks, sorted by length into batches (less padding, and
        the LSTMs keep most rows active at every step) and yielded back in their original order.
        Stateful: consecutive batches in order, like the references, so that the carried states
        match theirs.
        """
        pending: dict[int, np.ndarray] = {}
        next_index = 0
        for index, array in self.embed_indexed(sentences):
            pending[index] = array
            while next_index in pending:
                yield pending.pop(next_index)
                next_index += 1

    def embed_indexed(self, sentences: Iterable[Sequence[str]]) -> Iterator[tuple[int, np.ndarray]]:
        """(input index, (3, n, 2P) array) pairs in the order they are computed: by length within
        chunks of ``16 * batch_size`` sentences (stateless, unless ``sort_by_length``
        is off), or in input order (stateful).

        Memory stays flat in the input's length: at most one chunk of sentences and one batch of
        results are held at a time.
        """
        chunk_size = self.batch_size if not self._sorts() else self.batch_size * SORT_CHUNK_BATCHES
        chunk: list[Sequence[str]] = []
        start = 0
        for sentence in sentences:
            chunk.append(sentence)
            if len(chunk) == chunk_size:
                yield from self._embed_chunk(chunk, start)
                start += len(chunk)
                chunk = []
        if chunk:
            yield from self._embed_chunk(chunk, start)

    def _sorts(self) -> bool:
        """Whether batches are sorted by length: stateless models, unless the settings say not to."""
        return self.engine.settings.sort_by_length and not self.bilm.stateful

    def _embed_chunk(self, chunk: list[Sequence[str]], start: int) -> Iterator[tuple[int, np.ndarray]]:
        if self._sorts():  # longest first: the LSTMs then keep most rows active at every step
            order = sorted(range(len(chunk)), key=lambda i: len(chunk[i]), reverse=True)
        else:
            order = list(range(len(chunk)))
        for batch_start in range(0, len(order), self.batch_size):
            rows = order[batch_start : batch_start + self.batch_size]
            for row, array in zip(rows, self.embed_batch([chunk[i] for i in rows])):
                yield start + row, array

    def embed_file(self, input_file: str | Path, output_file: str | Path, layers: str = "all",
                   progress: bool = False, lines: range | None = None) -> int:
        """Embed a file of whitespace-tokenised sentences (one per line) into HDF5.

        One dataset per line, named by its 0-based line number: (3, n, 2P) for ``all``, (n, 2P)
        for ``top`` and ``average``; plus ``sentence_to_index`` (a JSON string mapping each
        sentence's text to its key). ``lines`` restricts the run to those line numbers (one shard
        of a distributed run, see ``elmo_tasks.distributed``). Datasets are written as batches
        finish, so memory stays flat in the file's length. The output is written under a
        temporary name and renamed at the end, so an interrupted run leaves nothing at
        ``output_file``. Returns the number of sentences written.
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
        count = 0
        sentence_to_index: dict[str, str] = {}
        numbered = _read_lines(input_path, lines)
        first_line = lines.start if lines is not None else 0
        with atomic_path(output_path) as tmp, h5py.File(tmp, "w") as handle:
            tokens = (text.split() for text in _remember(numbered, sentence_to_index))
            stream = self.embed_indexed(tokens)
            if progress:
                from tqdm import tqdm

                stream = tqdm(stream, unit=" sentences", desc="embed-file", file=sys.stderr,
                              total=len(lines) if lines is not None else None)
            for count, (index, array) in enumerate(stream, start=1):
                if layers == "top":
                    array = array[-1]
                elif layers == "average":
                    array = array.mean(axis=0)
                handle.create_dataset(str(first_line + index), data=array.astype(np.float32, copy=False))
            handle.create_dataset("sentence_to_index", data=json.dumps(sentence_to_index),
                                  dtype=h5py.string_dtype())
        return count


def count_lines(path: str | Path) -> int:
    """Number of lines of a file (a last line without a newline counts), read in blocks."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while block := handle.read(1 << 20):
            count += block.count(b"\n")
            last = block[-1:]
    return count + (last != b"\n")


def _read_lines(path: Path, lines: range | None = None) -> Iterator[tuple[int, str]]:
    """(line number, text) of a UTF-8 text file, streamed, optionally only the numbers in ``lines``;
    a decoding error names the line."""
    with open(path, "rb") as handle:
        for index, raw in enumerate(handle):
            if lines is not None:
                if index < lines.start:
                    continue
                if index >= lines.stop:
                    break
            try:
                yield index, raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}, line {index + 1}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None


def _remember(numbered: Iterable[tuple[int, str]], sentence_to_index: dict[str, str]) -> Iterator[str]:
    for index, text in numbered:
        sentence_to_index.setdefault(text.strip(), str(index))
        yield text
