"""AllenNLP's ELMo character indexing (``allennlp.data.token_indexers.elmo_indexer``) on this toolkit's ids.

``ELMoCharacterMapper`` (user scripts call ``convert_word_to_char_ids`` directly) and
``ELMoTokenCharactersIndexer`` give exactly AllenNLP's ids: a word's UTF-8 bytes (at most 48)
between the begin/end-of-word marks, padded with 260, everything +1 (``elmo_tasks.bilm.char_ids``).
The class attributes (``beginning_of_sentence_characters``...) hold the raw ids, before the +1, as
AllenNLP's do. The indexer takes strings or ``Token`` objects and ignores its ``vocabulary``
argument (the ELMo indexer counts no vocabulary), so ``None`` works in its place.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch

from elmo_tasks.bilm.char_ids import (
    BOS_CHAR,
    BOS_IDS,
    BOS_TOKEN,
    BOW_CHAR,
    EOS_CHAR,
    EOS_IDS,
    EOS_TOKEN,
    EOW_CHAR,
    MAX_CHARS_PER_TOKEN,
    N_RAW_CHARS,
    PAD_CHAR,
    marked_char_ids,
    token_to_char_ids,
)
from elmo_tasks.errors import UserError


@dataclass
class Token:
    """AllenNLP's ``Token``: the indexer reads ``text``; the other fields are carried for scripts that set them."""

    text: str | None = None
    idx: int | None = None
    lemma_: str | None = None
    pos_: str | None = None
    tag_: str | None = None
    dep_: str | None = None
    ent_type_: str | None = None
    text_id: int | None = None


def token_text(token: Any, where: str) -> str:
    """The text of a token given as a string or as an object with ``.text`` (AllenNLP's ``Token``)."""
    text = token if isinstance(token, str) else getattr(token, "text", None)
    if not isinstance(text, str):
        raise UserError(f"{where} needs tokens that keep their text (strings or Token(text)), got {token!r}")
    return text


class ELMoCharacterMapper:
    """Token -> 50 character ids as AllenNLP makes them, with optional special tokens (``tokens_to_add``)."""

    max_word_length = MAX_CHARS_PER_TOKEN
    beginning_of_sentence_character = BOS_CHAR
    end_of_sentence_character = EOS_CHAR
    beginning_of_word_character = BOW_CHAR
    end_of_word_character = EOW_CHAR
    padding_character = PAD_CHAR
    beginning_of_sentence_characters = [i - 1 for i in BOS_IDS]  # raw ids, as AllenNLP's attribute
    end_of_sentence_characters = [i - 1 for i in EOS_IDS]
    bos_token = BOS_TOKEN
    eos_token = EOS_TOKEN

    def __init__(self, tokens_to_add: dict[str, int] | None = None) -> None:
        self.tokens_to_add = dict(tokens_to_add or {})
        for token, raw_id in self.tokens_to_add.items():
            if not isinstance(token, str) or isinstance(raw_id, bool) or not isinstance(raw_id, int) \
                    or not 0 <= raw_id < N_RAW_CHARS:
                raise UserError(f"tokens_to_add[{token!r}] = {raw_id!r}: special tokens map strings to raw character "
                                f"ids 0..{N_RAW_CHARS - 1} (unused control bytes 1-32 are the safe choice)")

    def convert_word_to_char_ids(self, word: str) -> list[int]:
        """The 50 ids (+1 applied, so 1..261) of ``word``; ``<S>``/``</S>`` and added tokens are special."""
        if not isinstance(word, str):
            raise UserError(f"convert_word_to_char_ids takes a string, got {type(word).__name__}")
        if word in self.tokens_to_add:
            return list(marked_char_ids(self.tokens_to_add[word]))
        return list(token_to_char_ids(word))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ELMoCharacterMapper) and self.tokens_to_add == other.tokens_to_add


class ELMoTokenCharactersIndexer:
    """AllenNLP's ``elmo_characters`` indexer: ``tokens_to_indices`` then ``as_padded_tensor`` give the
    (T, 50) ids ``Elmo`` takes (``batch_to_ids`` does both for whole batches)."""

    def __init__(self, namespace: str = "elmo_characters", tokens_to_add: dict[str, int] | None = None,
                 token_min_padding_length: int = 0) -> None:
        self._namespace = namespace
        self._mapper = ELMoCharacterMapper(tokens_to_add)
        self._token_min_padding_length = token_min_padding_length

    def count_vocab_items(self, token: Any, counter: dict[str, dict[str, int]]) -> None:
        """The ELMo indexer counts no vocabulary."""

    def tokens_to_indices(self, tokens: Sequence[Any], vocabulary: Any, index_name: str) -> dict[str, list[list[int]]]:
        """``{index_name: [50 ids per token]}``; ``vocabulary`` is not used."""
        del vocabulary
        texts = [token_text(t, "ELMoTokenCharactersIndexer") for t in tokens]
        return {index_name: [self._mapper.convert_word_to_char_ids(text) for text in texts]}

    def get_padding_lengths(self, token: list[int]) -> dict[str, int]:
        return {}

    def get_padding_token(self) -> list[int]:
        """A position with no token: 50 zeros."""
        return [0] * MAX_CHARS_PER_TOKEN

    def get_token_min_padding_length(self) -> int:
        return self._token_min_padding_length

    def as_padded_tensor(self, tokens: dict[str, list[list[int]]], desired_num_tokens: dict[str, int],
                         padding_lengths: dict[str, int]) -> dict[str, torch.Tensor]:
        """Each key's ids as a (desired, 50) int64 tensor: cut to ``desired_num_tokens[key]`` or padded with zero tokens."""
        out = {}
        for key, rows in tokens.items():
            length = desired_num_tokens[key]
            kept = [list(r) for r in rows[:length]] + [self.get_padding_token()] * max(0, length - len(rows))
            out[key] = torch.tensor(kept, dtype=torch.long).reshape(length, MAX_CHARS_PER_TOKEN)
        return out

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ELMoTokenCharactersIndexer) and (self._namespace, self._mapper) == (
            other._namespace, other._mapper)
