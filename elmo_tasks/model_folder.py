"""A model folder: where a biLM's files live, resolved once from what a user wrote.

``--model``, ``features.elmo.model`` and the benchmarks all go through :func:`resolve_model`:
``default`` (the shipped default model, or the tiny fixture while none ships), ``fixture`` (the
tiny test model), a folder holding ``options.json`` + ``weights.hdf5`` (what ``elmo-tasks
pretrain`` exports, with ``vocab.txt`` and ``softmax.hdf5`` beside them), a public model's name or
URL (``elmo_tasks.model_sources``: downloaded once into the cache), or a TF-Hub module, bilm-tf
checkpoint or NLPL zip on disk (converted once into the cache). A local path wins over a name.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.model_sources import is_remote, resolve_remote

MODELS_DIR = Path(__file__).parent / "models"
DEFAULT_MODEL_DIR = MODELS_DIR / "default"
FIXTURE_MODEL_DIR = MODELS_DIR / "tiny_fixture"
# the public format's file names (elmo_tasks.bilm.weights reads and writes them; not imported from
# there, which would load torch and h5py whenever the command line starts)
OPTIONS_NAME = "options.json"
WEIGHTS_NAME = "weights.hdf5"
SOFTMAX_NAME = "softmax.hdf5"  # not part of the public format: W (V, P) and b (V) for vocab.txt
VOCAB_NAME = "vocab.txt"
NAMED = ("default", "fixture")  # model names that are not paths
FIXTURE_WARNING = (
    "note: using the tiny test model (allennlp's 32-dimension fixture): it has no linguistic value; "
    "pass --model DIR for a real model"
)


def default_model_dir() -> Path:
    """The shipped default model, or the tiny fixture model while no trained default ships."""
    if (DEFAULT_MODEL_DIR / WEIGHTS_NAME).is_file():
        return DEFAULT_MODEL_DIR
    return FIXTURE_MODEL_DIR


_DIGESTS: dict[tuple[str, int, int], str] = {}  # (path, size, mtime) -> sha256, for this process


def file_digest(path: Path) -> str:
    """sha256 of a file (remembered by path, size and modification time within the process)."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _DIGESTS:
        _DIGESTS[key] = sha256_file(path)
    return _DIGESTS[key]


@dataclass(frozen=True)
class ModelFolder:
    """A folder with ``options.json`` + ``weights.hdf5`` (checked by :func:`resolve_model`)."""

    path: Path

    @property
    def options_file(self) -> Path:
        return self.path / OPTIONS_NAME

    @property
    def weights_file(self) -> Path:
        return self.path / WEIGHTS_NAME

    @property
    def softmax_file(self) -> Path:
        return self.path / SOFTMAX_NAME

    @property
    def vocab_file(self) -> Path:
        return self.path / VOCAB_NAME

    @property
    def is_fixture(self) -> bool:
        return self.path.resolve() == FIXTURE_MODEL_DIR.resolve()

    def options(self) -> BiLMOptions:
        return BiLMOptions.load(self.options_file)

    def shape(self) -> tuple[int, int]:
        """(number of representation layers, their width 2P), from ``options.json``."""
        options = self.options()
        return options.n_layers + 1, options.output_dim

    def digest(self) -> str:
        """Identity of the model: the hashes of its options and weights files."""
        return hashlib.sha256((file_digest(self.options_file) + file_digest(self.weights_file)).encode()).hexdigest()

    def __str__(self) -> str:
        return str(self.path)


def resolve_model(source: str | Path | None) -> ModelFolder:
    """The model folder ``source`` names: None or ``default``, ``fixture``, a folder path, a registry name
    or URL (``elmo-tasks models``), or a TF-Hub module, bilm-tf checkpoint or NLPL zip (converted once
    into the cache by ``elmo_tasks.formats``).

    This is the one place a user's model string becomes files on disk.
    """
    if source is None or str(source) == "default":
        return ModelFolder(default_model_dir())
    if str(source) == "fixture":
        return ModelFolder(FIXTURE_MODEL_DIR)
    if isinstance(source, str) and is_remote(source) and not Path(source).exists():
        return ModelFolder(resolve_remote(source))
    folder = ModelFolder(Path(source))
    if folder.options_file.is_file() and folder.weights_file.is_file():
        return folder
    # Any other source (a TF-Hub module, a bilm-tf checkpoint or save folder, an NLPL zip) is converted once
    # into the cache, and half a public-format folder is refused there (a bilm-tf save folder holds
    # options.json without weights.hdf5); elmo_tasks.formats loads torch and h5py, so it is imported only
    # when a source needs it.
    from elmo_tasks.formats.convert import resolve_model_dir

    return ModelFolder(resolve_model_dir(folder.path))


def is_fixture_model(directory: str | Path) -> bool:
    return ModelFolder(Path(directory)).is_fixture
