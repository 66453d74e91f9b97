"""Tweets as the biLM and GloVe expect text: HTML entities unescaped, contractions split as the
pretraining text is split (``I'm`` -> ``I 'm``, :func:`elmo_tasks.data.tokenize.split_clitic`),
and optionally every @mention and URL mapped to one placeholder (``@user``, ``<url>``).

Labels stay on the data's own tokens: :func:`normalize_tweet` returns the pieces to embed and,
for each piece, the index of the token it came from, so the features of a token's pieces can be
pooled back onto that token (``elmo_tasks.features``) and tags and predictions never move.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence

from elmo_tasks.data.tokenize import split_clitic

MENTION, URL = "@user", "<url>"
_MENTION = re.compile(r"^@\w{1,30}$")
_URL = re.compile(r"(?i)^(?:https?://|www\.)\S+$|^\S+\.(?:com|net|org|ly|co|me|gl)/\S*$")


def normalize_tweet(tokens: Sequence[str], placeholders: bool = False) -> tuple[list[str], list[int]]:
    """(pieces to embed, owner token index of each piece); every token gets at least one piece."""
    pieces: list[str] = []
    owners: list[int] = []
    for i, token in enumerate(tokens):
        text = html.unescape(token)
        if placeholders and _URL.match(text):
            parts = [URL]
        elif placeholders and _MENTION.match(text):
            parts = [MENTION]
        elif text and not any(c.isspace() for c in text):
            parts = [p for p in split_clitic(text) if p] or [text]
        else:
            parts = [token]
        pieces.extend(parts)
        owners.extend([i] * len(parts))
    return pieces, owners


def normalize_sentences(sentences: Sequence[Sequence[str]], mode: str) -> tuple[list[list[str]], list[list[int]]]:
    """:func:`normalize_tweet` for every sentence; ``mode`` is a config's ``dataset.normalize``
    (``none``: the tokens themselves, each its own piece)."""
    if mode == "none":
        return [list(s) for s in sentences], [list(range(len(s))) for s in sentences]
    if mode not in ("tweets", "tweets+placeholders"):
        raise ValueError(f"unknown normalisation {mode!r}")
    out = [normalize_tweet(s, placeholders=mode == "tweets+placeholders") for s in sentences]
    return [pieces for pieces, _ in out], [owners for _, owners in out]
