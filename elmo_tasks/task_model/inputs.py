"""What a task model reads: raw strings, token lists, or objects (``{"text"|"tokens", "target", ...}``),
checked and tokenised into :class:`Example` s before the model runs.

Raw strings are tokenised as the training data was (PTB by default; ``tokenize="whitespace"`` for
pre-split text) and keep the character offsets of their tokens (:func:`token_offsets`), so that
tagged spans point back into the string even where the tokeniser changed a token (quotes, dashes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from elmo_tasks.data.readers.common import get_tokenizer
from elmo_tasks.data.tokenize import normalize_chars
from elmo_tasks.errors import UserError

TOKENIZERS = ("ptb", "whitespace")
GOLD_FIELDS = {"tagging": "tags", "classification": "label", "wsd": "sense"}
# what a token of the PTB tokeniser may stand for in the raw text, beside itself
_ALIASES = {"``": ('"', "\u201c", "\u201e", "\u00ab", "``"), "''": ('"', "\u201d", "\u00bb", "\u2033", "''"),
            "`": ("'", "\u2018", "`"), "'": ("\u2019", "\u2032", "'"), "--": ("\u2014", "\u2013", "--"),
            "...": ("\u2026", "...")}


@dataclass
class Example:
    """One checked input: its tokens and, when it came as a string, the text and each token's
    (start, end) character offsets; word senses: the target token (and lemma, pos); ``gold``: the
    label(s) when the input had them (for ``--evaluate``)."""

    tokens: list[str]
    text: str | None = None
    offsets: list[tuple[int, int]] | None = None
    target: int | None = None
    lemma: str | None = None
    pos: str | None = None
    gold: Any = None

    @property
    def lemma_key(self) -> str:
        return f"{self.lemma}%{self.pos}"


def tokenizer_named(name: str | None, default: str = "ptb") -> Callable[[str], list[str]]:
    name = name or default
    if name not in TOKENIZERS:
        raise UserError(f"tokenize must be one of {', '.join(TOKENIZERS)}, got {name!r}")
    return get_tokenizer(name)


def token_offsets(text: str, tokens: Sequence[str]) -> list[tuple[int, int]]:
    """(start, end) of each token in ``text`` (end exclusive), left to right. A token the tokeniser
    changed is matched by its aliases (``"`` for ``````) or its normalised characters; one that
    cannot be found covers the next non-space characters, so offsets stay ordered and inside the text."""
    out: list[tuple[int, int]] = []
    pos = 0
    for token in tokens:
        while pos < len(text) and text[pos].isspace():
            pos += 1
        span = _match(text, pos, token)
        if span is None:  # search a little further (a character the tokeniser dropped)
            found = text.find(token, pos, pos + len(token) + 16)
            span = (found, found + len(token)) if found >= 0 else None
        if span is None:
            end = pos
            while end < len(text) and not text[end].isspace() and end - pos < max(len(token), 1):
                end += 1
            span = (pos, max(end, pos))
        out.append(span)
        pos = span[1]
    return out


def _match(text: str, pos: int, token: str) -> tuple[int, int] | None:
    if text.startswith(token, pos):
        return pos, pos + len(token)
    for alias in _ALIASES.get(token, ()):
        if text.startswith(alias, pos):
            return pos, pos + len(alias)
    for end in range(pos + 1, min(len(text), pos + 2 * len(token) + 4) + 1):  # normalised characters
        if normalize_chars(text[pos:end]).strip() == token:
            return pos, end
    return None


def make_example(index: int, item: Any, kind: str, tokenize: Callable[[str], list[str]]) -> Example:
    """The :class:`Example` of input ``item`` (number ``index``), or a UserError naming both."""
    if isinstance(item, str):
        return _from_text(index, item, tokenize, kind)
    if isinstance(item, (list, tuple)):
        return Example(_tokens(index, item, "tokens"), **_no_target(index, kind))
    if not isinstance(item, dict):
        raise UserError(f"item {index}: expected a string, a list of tokens or an object, got {type(item).__name__}")
    if ("text" in item) == ("tokens" in item):
        raise UserError(f"item {index}: give exactly one of \"text\" and \"tokens\"")
    if "text" in item:
        if not isinstance(item["text"], str):
            raise UserError(f"item {index}: \"text\" must be a string")
        example = _from_text(index, item["text"], tokenize, kind, allow_target=True)
    else:
        example = Example(_tokens(index, item["tokens"], "tokens"))
    if kind == "wsd":
        target = item.get("target")
        if isinstance(target, bool) or not isinstance(target, int) or not 0 <= target < len(example.tokens):
            raise UserError(f"item {index}: \"target\" must be an integer within the tokens "
                            f"(0 .. {len(example.tokens) - 1}), got {target!r}")
        example.target = target
        for key in ("lemma", "pos"):
            value = item.get(key)
            if value is not None and not isinstance(value, str):
                raise UserError(f"item {index}: \"{key}\" must be a string")
            setattr(example, key, value)
        if example.lemma is None:
            example.lemma = example.tokens[target].lower()
        if example.pos is None:
            raise UserError(f"item {index}: \"pos\" is needed for word senses (n, v, a, r: the lemma's part of speech)")
    elif "target" in item:
        raise UserError(f"item {index}: \"target\" is only for word-sense models (this one does {kind})")
    gold = item.get(GOLD_FIELDS[kind])
    if gold is not None:
        example.gold = _gold(index, gold, kind, len(example.tokens))
    return example


def _from_text(index: int, text: str, tokenize: Callable[[str], list[str]], kind: str,
               allow_target: bool = False) -> Example:
    if kind == "wsd" and not allow_target:
        raise UserError(f"item {index}: a word-sense model needs an object with \"tokens\" (or \"text\") and "
                        "\"target\", not a bare string")
    tokens = tokenize(text)
    if not tokens and kind != "tagging":
        raise UserError(f"item {index}: \"text\" has no tokens")
    return Example(tokens, text, token_offsets(text, tokens))


def _tokens(index: int, tokens: Any, field: str) -> list[str]:
    if not isinstance(tokens, (list, tuple)) or not all(isinstance(t, str) and t and not any(c.isspace() for c in t)
                                                         for t in tokens):
        raise UserError(f"item {index}: \"{field}\" must be a list of non-empty strings without spaces")
    return list(tokens)


def _no_target(index: int, kind: str) -> dict[str, Any]:
    if kind == "wsd":
        raise UserError(f"item {index}: a word-sense model needs an object with \"tokens\" and \"target\"")
    return {}


def _gold(index: int, gold: Any, kind: str, n: int) -> Any:
    field = GOLD_FIELDS[kind]
    if kind == "tagging":
        if not isinstance(gold, list) or len(gold) != n or not all(isinstance(t, str) for t in gold):
            raise UserError(f"item {index}: \"tags\" must be a list of {n} strings (one per token)")
        return list(gold)
    if not isinstance(gold, str):
        raise UserError(f"item {index}: \"{field}\" must be a string")
    return gold


@dataclass(frozen=True)
class InputReader:
    """A task model's input checks without the model (picklable): its task kind and training tokeniser."""

    kind: str
    default_tokenizer: str = "ptb"

    def examples(self, items: Any, tokenize: str | None = None) -> list[Example]:
        """The checked, tokenised inputs; a bad item is a UserError naming its index and field."""
        split = tokenizer_named(tokenize, self.default_tokenizer)
        out = [item if isinstance(item, Example) else make_example(i, item, self.kind, split)
               for i, item in enumerate(items)]
        for i, example in enumerate(out):
            if not example.tokens and self.kind != "tagging":
                raise UserError(f"item {i}: no tokens (a {self.kind} model needs at least one)")
        return out
