"""Is a paragraph English running prose? The filter that keeps code, tables, command lines and
other languages out of the documentation and Wikipedia sources."""

from __future__ import annotations

import re

_WORD = re.compile(r"[^\W\d_]+")
# not "in", which German, Dutch and Italian share
_FUNCTION_WORDS = frozenset(
    "the a an of to and or is are was were be it that this for on with as by not can from at which "
    "you if".split())
_CODE_CHARS = re.compile(r"[{}\[\]<>=;$@#|\\_*]|::|->|\(\)|//")


def is_english_prose(text: str, min_words: int = 4) -> bool:
    """True for a paragraph of English sentences: at least ``min_words`` words, nearly all letters
    ASCII, English function words among them (one in seven words at least), few code characters."""
    words = _WORD.findall(text)
    if len(words) < min_words:
        return False
    letters = sum(len(w) for w in words)
    non_ascii = sum(1 for w in words for c in w if ord(c) > 127)
    if non_ascii > 0.02 * letters:
        return False
    function = sum(1 for w in words if w.lower() in _FUNCTION_WORDS)
    if function * 7 < len(words):
        return False
    code = len(_CODE_CHARS.findall(text))
    return code * 20 <= len(words)
