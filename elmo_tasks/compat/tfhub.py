"""The TF-Hub ELMo module's interface (``google/elmo/2``, ``/3``) on top of this toolkit's biLM.

    >>> from elmo_tasks.compat import tfhub as hub
    >>> elmo = hub.Module("https://tfhub.dev/google/elmo/3")  # downloaded once, converted, cached (or the Kaggle handle)
    >>> hub.Module("elmo_3.tar.gz")               # or hub.load(...): a module folder or archive, or any model source
    >>> hub.Module("default")                     # the names --model takes: default, fixture, original...
    >>> out = elmo(["I love to watch TV", "I am wearing a wrist watch"], signature="default", as_dict=True)
    >>> out["elmo"].shape, out["default"].shape   # (2, 6, 2P), (2, 2P): numpy arrays, no session

Both signatures of the module: ``default`` takes sentences as strings (split on spaces) and
``tokens`` takes ``{"tokens": (B, T) strings padded with "", "sequence_len": (B,) ints}``. The
outputs, for T = the longest sentence:

* ``word_emb`` (B, T, P): the character CNN's token vectors;
* ``lstm_outputs1``, ``lstm_outputs2`` (B, T, 2P): the two LSTM layers, [forward; backward];
* ``elmo`` (B, T, 2P): ``scaling * sum_j softmax(weights)_j * layer_j`` over the three layers (the
  token layer duplicated to 2P), with the module's trained ``aggregation/weights`` and
  ``aggregation/scaling`` (a plain average for models without them);
* ``default`` (B, 2P): the mean of ``elmo`` over each sentence's real tokens;
* ``sequence_len`` (B,).

Every output is 0 at padding positions. Calls are stateless: each sentence starts from a zero LSTM
state, so its vectors do not depend on the batch it came in. ``trainable`` is accepted and
ignored: these are numpy arrays (fine-tune the mix with ``elmo_tasks.elmo.Elmo`` instead).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from elmo_tasks.embedder import Embedder
from elmo_tasks.errors import UserError
from elmo_tasks.formats.tfhub import AGGREGATION_NAME, read_aggregation_file
from elmo_tasks.model_folder import resolve_model

OUTPUTS = ("word_emb", "lstm_outputs1", "lstm_outputs2", "elmo", "default", "sequence_len")


class Module:
    """A loaded ELMo with the TF-Hub module's call signature; outputs are numpy arrays."""

    def __init__(self, spec: str | Path, trainable: bool = False, batch_size: int = 64) -> None:
        folder = resolve_model(spec).path  # a name or URL (downloaded once), a model folder, or a module to convert
        self.embedder = Embedder.from_dir(folder, batch_size=batch_size)
        self.trainable = trainable
        layers = self.embedder.num_layers
        self.weights, self.scaling = np.zeros(layers), 1.0
        if (folder / AGGREGATION_NAME).exists():
            weights, self.scaling = read_aggregation_file(folder / AGGREGATION_NAME, layers)
            self.weights = np.asarray(weights, dtype=np.float64)

    @property
    def mix(self) -> np.ndarray:
        """The softmax-normalised layer weights of ``elmo``."""
        e = np.exp(self.weights - self.weights.max())
        return e / e.sum()

    def __call__(self, inputs: Any, signature: str = "default", as_dict: bool = False) -> Any:
        if signature == "default":
            sentences = _sentences_from_strings(inputs)
        elif signature == "tokens":
            sentences = _sentences_from_tokens(inputs)
        else:
            raise UserError(f"unknown signature {signature!r}: the ELMo module has 'default' and 'tokens'")
        outputs = self.embed(sentences)
        return outputs if as_dict else outputs["default"]

    def embed(self, sentences: Sequence[Sequence[str]]) -> dict[str, np.ndarray]:
        """The module's outputs for tokenised sentences."""
        lengths = np.array([len(s) for s in sentences], dtype=np.int64)
        width, p = int(lengths.max(initial=0)), self.embedder.output_dim // 2
        layers = np.zeros((len(sentences), self.embedder.num_layers, width, 2 * p), dtype=np.float32)
        for row, array in enumerate(self.embedder.embed_sentences(sentences)):
            layers[row, :, : array.shape[1]] = array
        mix = self.mix.astype(np.float32)
        elmo = np.float32(self.scaling) * np.einsum("l,bltd->btd", mix, layers)
        default = elmo.sum(axis=1) / np.maximum(lengths, 1)[:, None].astype(np.float32)
        return {"word_emb": layers[:, 0, :, :p].copy(), "lstm_outputs1": layers[:, 1], "lstm_outputs2": layers[:, 2],
                "elmo": elmo, "default": default, "sequence_len": lengths}


def load(path: str | Path, trainable: bool = False) -> Module:
    """``hub.load``/``hub.Module`` for ELMo: a TF-Hub handle or module (folder or .tar.gz) or any model source
    ``--model`` takes (``default``, ``fixture``, a name or URL, a model folder, a bilm-tf checkpoint...)."""
    return Module(path, trainable=trainable)


def _sentences_from_strings(inputs: Any) -> list[list[str]]:
    if isinstance(inputs, (str, bytes)):
        raise UserError("the 'default' signature takes a list of sentences (strings), not one string: wrap it in a list")
    sentences = []
    for index, text in enumerate(np.asarray(inputs, dtype=object).reshape(-1)):
        if isinstance(text, bytes):
            text = text.decode("utf-8")
        if not isinstance(text, str):
            raise UserError(f"the 'default' signature takes strings; item {index} is {type(text).__name__}")
        sentences.append([t for t in text.split(" ") if t])
    return sentences


def _sentences_from_tokens(inputs: Any) -> list[list[str]]:
    if not isinstance(inputs, dict) or set(inputs) != {"tokens", "sequence_len"}:
        raise UserError("the 'tokens' signature takes {'tokens': (batch, max_len) strings, 'sequence_len': (batch,) ints}")
    tokens = np.asarray(inputs["tokens"], dtype=object)
    lengths = np.asarray(inputs["sequence_len"]).reshape(-1)
    if tokens.ndim != 2 or tokens.shape[0] != lengths.shape[0]:
        raise UserError(f"'tokens' must be (batch, max_len) with one 'sequence_len' per row; got {tokens.shape} "
                        f"and {lengths.shape[0]} lengths")
    if np.any(lengths < 0) or np.any(lengths > tokens.shape[1]):
        raise UserError(f"'sequence_len' values must lie in 0..{tokens.shape[1]}")
    return [[t.decode("utf-8") if isinstance(t, bytes) else str(t) for t in row[:n]] for row, n in zip(tokens, lengths)]
