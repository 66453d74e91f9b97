"""Continued pretraining: start a run from an exported biLM (``elmo-tasks pretrain CONFIG --init-from DIR``).

Any model in the public format (``options.json`` + ``weights.hdf5``: one that ``pretrain``
exported, bilm-tf's, allennlp's; ``default``, the shipped model; or any source ``--model`` takes)
gives the biLM's weights; its ``softmax.hdf5`` and ``vocab.txt``,
when both are there, give the output softmax and the vocabulary, so that training continues where
it stopped. Without them (released ELMo models ship no softmax) the softmax starts fresh over the
vocabulary the config builds. The config's model section must describe the same shape.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import load_bilm_dir
from elmo_tasks.errors import UserError
from elmo_tasks.model_folder import VOCAB_NAME, resolve_model
from elmo_tasks.pretrain.softmax import SOFTMAX_NAME, Softmax, load_softmax

SHAPE_FIELDS = ("lstm_dim", "projection_dim", "n_layers", "cell_clip", "proj_clip", "use_skip_connections",
                "char_embedding_dim", "filters", "n_highway", "activation")


@dataclass
class Initial:
    """What a run starts from: the biLM, and the softmax with its vocabulary file when the folder has both."""

    model: BiLM
    softmax: Softmax | None
    vocab_file: Path | None
    source: Path


def describe(options: BiLMOptions) -> str:
    clip = lambda v: v or 0  # None and 0 both mean "no clipping"
    return (f"LSTM {options.lstm_dim}/{options.projection_dim} x {options.n_layers} layers, "
            f"clips {clip(options.cell_clip)}/{clip(options.proj_clip)}, skip {options.use_skip_connections}, "
            f"char dim {options.char_embedding_dim}, filters {options.filters}, {options.n_highway} highway, "
            f"{options.activation}")


def same_shape(a: BiLMOptions, b: BiLMOptions) -> bool:
    def key(o: BiLMOptions) -> tuple:
        values = {name: getattr(o, name) for name in SHAPE_FIELDS}
        values["cell_clip"], values["proj_clip"] = o.cell_clip or 0, o.proj_clip or 0
        values["filters"] = [list(f) for f in o.filters]
        return tuple(str(values[name]) for name in SHAPE_FIELDS)

    return key(a) == key(b)


def load_initial(source: str | Path, options: BiLMOptions, config_source: str) -> Initial:
    """The model ``source`` names (a folder, ``default``, or any source ``resolve_model`` converts),
    checked against the config's ``options`` (a one-line error naming both)."""
    directory = resolve_model(source).path
    model = load_bilm_dir(directory)
    if not same_shape(model.options, options):
        raise UserError(f"--init-from {directory}: the model's shape ({describe(model.options)}) does not match "
                        f"the config {config_source} ({describe(options)}); copy the model's sizes into the "
                        "config's model section")
    has_softmax, has_vocab = (directory / SOFTMAX_NAME).is_file(), (directory / VOCAB_NAME).is_file()
    if not (has_softmax and has_vocab):
        return Initial(model, None, None, directory)
    try:
        softmax = load_softmax(directory / SOFTMAX_NAME, width=options.projection_dim)
    except UserError as exc:
        raise UserError(f"--init-from {exc}") from None
    return Initial(model, softmax, directory / VOCAB_NAME, directory)
