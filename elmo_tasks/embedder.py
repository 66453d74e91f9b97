"""The Python API for ELMo vectors: load a model, embed token lists, write HDF5 dumps.

    >>> from elmo_tasks.embedder import Embedder
    >>> embedder = Embedder.from_dir()          # the toolkit's default model
    >>> out = embedder.layers([["I", "love", "to", "watch", "TV"]])
    >>> out.layers.shape, out.mask.shape       # (1, 3, 5, 2P), (1, 5)

The command-line tools ``embed`` and ``embed-file`` use these same objects.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path

import h5py
import numpy as np
import torch
from tqdm import tqdm

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.char_ids import batch_to_ids
from elmo_tasks.bilm.inference import InferenceEngine, InferenceSettings
from elmo_tasks.bilm.model import BiLM, BiLMOutput
from elmo_tasks.bilm.weights import load_bilm
from elmo_tasks.dump import LAYER_CHOICES, DumpWriter, check_sentence_keys, reduce_layers
from elmo_tasks.errors import UserError
from elmo_tasks.model_folder import (  # noqa: F401  (public names)
    DEFAULT_MODEL_DIR,
    FIXTURE_MODEL_DIR,
    FIXTURE_WARNING,
    ModelFolder,
    default_model_dir,
    is_fixture_model,
    resolve_model,
)
from elmo_tasks.paths import check_input_file, check_output_file

SORT_CHUNK_BATCHES = 16  # stateless runs sort this many batches' worth of sentences by length at a time


class Embedder:
    """A frozen biLM run by an inference engine, with batching helpers. Stateless unless the biLM
    was loaded ``stateful``. ``settings`` tunes the engine (``elmo_tasks.bilm.inference``)."""

    def __init__(self, bilm: BiLM, batch_size: int = 64, settings: InferenceSettings | None = None) -> None:
        if batch_size < 1:
            raise UserError(f"batch size must be at least 1, got {batch_size}")
        self.engine = InferenceEngine(bilm.eval().requires_grad_(False), settings)
        self.batch_size = batch_size

    @classmethod
    def from_dir(cls, directory: str | Path | ModelFolder | None = None, stateful: bool = False,
                 batch_size: int = 64, settings: InferenceSettings | None = None) -> "Embedder":
        """Load a model folder (``options.json`` + ``weights.hdf5``); None means the default model."""
        folder = directory if isinstance(directory, ModelFolder) else resolve_model(directory)
        return cls(load_bilm(folder.options_file, folder.weights_file, stateful=stateful), batch_size, settings)

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

    def sentence_vectors(self, sentences: Iterable[Sequence[str]], layers: str = "all") -> np.ndarray:
        """One vector per sentence, the mean over its tokens (TF-Hub's ``default``): (N, 3, 2P) for
        ``all`` layers, (N, 2P) for ``top`` or ``average``; zeros for an empty sentence."""
        vectors = [reduce_layers(array, layers, pool="mean") for array in self.embed_sentences(sentences)]
        if not vectors:
            shape = (0, self.num_layers, self.output_dim) if layers == "all" else (0, self.output_dim)
            return np.zeros(shape, dtype=np.float32)
        return np.stack(vectors)

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
                   progress: bool = False, lines: range | None = None, pool: str = "none",
                   use_sentence_keys: bool = False, tokenizer: Callable[[str], list[str]] | None = None) -> int:
        """Embed a file of sentences (one per line; ``-`` is standard input) into HDF5.

        The layout is AllenNLP's (``elmo_tasks.dump``): one dataset per line, named by its 0-based
        line number (or by the sentence with ``use_sentence_keys``): (3, n, 2P) for ``all``, (n, 2P)
        for ``top`` and ``average``, without the token axis for ``pool="mean"``; plus
        ``sentence_to_index``; each dataset keeps its tokens (attribute ``tokens``). Lines are split on
        whitespace unless a ``tokenizer`` is given. With ``use_sentence_keys`` the whole input is read
        and every key checked before anything is embedded (``elmo_tasks.dump.check_sentence_keys``).
        ``lines`` restricts the run to those line numbers (one shard of a distributed run, see
        ``elmo_tasks.distributed``). Datasets are written as batches finish, so memory stays flat
        in the file's length. The output is written under a temporary name and renamed at the end,
        so an interrupted run leaves nothing at ``output_file``. Returns the number of sentences written.
        """
        if layers not in LAYER_CHOICES:
            raise UserError(f"--layers must be one of {', '.join(LAYER_CHOICES)}, got {layers!r}")
        stdin = str(input_file) == "-"
        input_path = Path(input_file) if stdin else check_input_file(input_file, "input file")
        output_path = check_output_file(output_file, "output file", inputs=[] if stdin else [input_path])
        count = 0
        texts: dict[int, tuple[str, list[str]]] = {}
        numbered = _read_lines(input_path, lines)
        if use_sentence_keys:  # every key checked before any work (the keys are held for the check anyway)
            numbered = list(numbered)
            check_sentence_keys(numbered, "standard input" if stdin else str(input_path))
        first_line = lines.start if lines is not None else 0
        split = tokenizer or str.split
        tokenize = "whitespace" if tokenizer is None else \
            f"{getattr(tokenizer, '__module__', '')}.{getattr(tokenizer, '__qualname__', 'tokenizer')}".lstrip(".")
        with atomic_path(output_path) as tmp, h5py.File(tmp, "w") as handle:
            writer = DumpWriter(handle, layers, pool, use_sentence_keys, tokenize=tokenize)
            stream = self.embed_indexed(_remember(numbered, texts, first_line, split))
            if progress:
                stream = tqdm(stream, unit=" sentences", desc="embed-file", file=sys.stderr,
                              total=len(lines) if lines is not None else None)
            for count, (index, array) in enumerate(stream, start=1):  # noqa: B007 (count is returned)
                text, tokens = texts.pop(index)
                writer.add(first_line + index, text, array, tokens)
            writer.finish()
        return count


def check_sentence_key_file(path: str | Path) -> None:
    """Refuse (one line naming the file and line) a file whose lines cannot all be sentence keys."""
    check_sentence_keys(_read_lines(Path(path)), str(path))


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
    with (open(sys.stdin.fileno(), "rb", closefd=False) if str(path) == "-" else open(path, "rb")) as handle:
        for index, raw in enumerate(handle):
            if lines is not None:
                if index < lines.start:
                    continue
                if index >= lines.stop:
                    break
            try:
                text = raw.decode("utf-8").rstrip("\r\n")
            except UnicodeDecodeError as exc:
                raise UserError(f"{path}, line {index + 1}: not valid UTF-8 ({exc.reason} at byte {exc.start})") from None
            yield index, text[1:] if index == 0 and text.startswith("\ufeff") else text  # a byte-order mark


def _remember(numbered: Iterable[tuple[int, str]], texts: dict[int, tuple[str, list[str]]], first_line: int,
              split: Callable[[str], list[str]]) -> Iterator[list[str]]:
    """Yield each line's tokens, keeping its text and tokens under its position in the run until its
    dataset is written."""
    for index, text in numbered:
        tokens = split(text)
        texts[index - first_line] = (text, tokens)
        yield tokens
