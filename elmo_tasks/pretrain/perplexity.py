"""Held-out perplexity of any exported biLM that has its output softmax (``softmax.hdf5`` + ``vocab.txt``).

The text is read as in pretraining (one whitespace-tokenised sentence per line), batched into
``rows`` continuous streams of ``unroll``-token windows with the states carried from window to
window (the model's ``state_mode`` when it recorded one), and scored with the full softmax in both
directions: forward, backward, and exp of their mean loss (bilm-tf's figure). Words outside the
model's vocabulary are the target ``<UNK>``: perplexities are comparable only on one vocabulary.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.weights import OPTIONS_NAME, load_bilm_dir
from elmo_tasks.errors import UserError
from elmo_tasks.model_folder import VOCAB_NAME, resolve_model
from elmo_tasks.pretrain.evaluate import (
    Perplexity,
    bilm_perplexity,
    heldout_streams,
    zero_states,
)
from elmo_tasks.pretrain.softmax import SOFTMAX_NAME, Softmax, load_softmax
from elmo_tasks.pretrain.text_source import TypeTable, encode_files
from elmo_tasks.pretrain.vocab import Vocabulary
from elmo_tasks.pretrain.windows import run_windows


def load_language_model(source: str | Path | None) -> tuple[BiLM, Softmax, Vocabulary]:
    """The biLM of a model folder (or ``default``, or any ``--model`` source) with its softmax and
    vocabulary; a one-line error when one is missing."""
    directory = resolve_model(source).path
    model = load_bilm_dir(directory)
    if not (directory / SOFTMAX_NAME).is_file():
        raise UserError(f"{directory} has no {SOFTMAX_NAME}: a perplexity needs the model's output softmax "
                        "(models exported by 'elmo-tasks pretrain' have one; released ELMo models do not)")
    if not (directory / VOCAB_NAME).is_file():
        raise UserError(f"{directory} has no {VOCAB_NAME}: the softmax's rows need their vocabulary")
    softmax = load_softmax(directory / SOFTMAX_NAME, width=model.options.projection_dim)
    vocab = Vocabulary.load(directory / VOCAB_NAME)
    if softmax.vocab_size != len(vocab):
        raise UserError(f"{directory / SOFTMAX_NAME}: {softmax.vocab_size:,} rows, but {VOCAB_NAME} has "
                        f"{len(vocab):,} words")
    return model, softmax, vocab


def _state_mode(directory: Path) -> str:
    try:
        return str(json.loads((directory / OPTIONS_NAME).read_text(encoding="utf-8")).get("state_mode", "stateful"))
    except (OSError, ValueError, AttributeError):
        return "stateful"


@torch.no_grad()
def text_perplexity(model_dir: str | Path | None, text_files: list[str], device: str | torch.device = "cpu",
                    rows: int = 64, unroll: int = 20, max_tokens: int | None = None,
                    progress: bool = False) -> Perplexity:
    """Forward, backward and average perplexity of the model in ``model_dir`` on ``text_files``."""
    device = torch.device(device)
    directory = resolve_model(model_dir).path  # resolved (and converted, for TF sources) once
    model, softmax, vocab = load_language_model(directory)
    model.to(device).eval()
    softmax.to(device)
    types = TypeTable()
    text = encode_files(list(text_files), types)  # one-line errors: missing, empty, not UTF-8
    per_sentence = _state_mode(directory) == "per_sentence"
    streams = heldout_streams(text, vocab.target_map(types), rows, unroll, per_sentence, max_tokens)
    char_table = types.char_table()
    n = streams.fwd_inputs.shape[0]
    initial = (zero_states(model, n, device), zero_states(model, n, device))

    def run(batch, states):
        return run_windows(model, char_table, batch, states, 0.0, device)

    return bilm_perplexity(run, softmax, streams, initial, per_sentence, device, progress=progress)
