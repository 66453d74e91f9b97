"""Paragraphs of prose from Perl's POD documentation (``perlpod``'s format, read directly).

Blocks are separated by blank lines. Verbatim blocks (indented: code) and command blocks
(``=head1``, ``=over``, ``=cut`` ...) are dropped, as is everything between ``=begin`` and
``=end`` and in a ``=for`` block; ``=item`` text is kept when it is prose. Formatting codes are
resolved to their text: ``B<..>``, ``I<..>``, ``C<..>``, ``F<..>``, ``S<..>`` to their content,
``L<text|target>`` to its text (``L<name>`` to the name), ``E<lt>``/``E<gt>`` and other escapes to
their character, ``X<..>`` and ``Z<>`` to nothing; doubled brackets (``C<< a > b >>``) are handled.
"""

from __future__ import annotations

import html
import re
from collections.abc import Iterator

from elmo_tasks.data.pretraining_corpus.prose import is_english_prose

_ESCAPES = {"lt": "<", "gt": ">", "verbar": "|", "sol": "/"}
_CODE_START = re.compile(r"([BICEFLSXZ])<(<+\s)?")


def _resolve(text: str, position: int = 0, closing: str = "") -> tuple[str, int]:
    """Resolve formatting codes from ``position`` up to ``closing`` (or the end); returns the text and
    the position after the closing delimiter."""
    out: list[str] = []
    while position < len(text):
        if closing and text.startswith(closing, position):
            return "".join(out), position + len(closing)
        match = _CODE_START.match(text, position)
        if match:
            code = match.group(1)
            # C<< x >>: as many closing brackets as opening ones, after a space
            inner_close = " " + ">" * (1 + match.group(2).count("<")) if match.group(2) else ">"
            inner, position = _resolve(text, match.end(), inner_close)
            out.append(_apply(code, inner.strip() if match.group(2) else inner))
            continue
        out.append(text[position])
        position += 1
    return "".join(out), position


def _apply(code: str, inner: str) -> str:
    if code in "XZ":
        return ""
    if code == "E":
        if inner in _ESCAPES:
            return _ESCAPES[inner]
        if inner.isdigit() or inner.startswith("0x"):
            try:
                return chr(int(inner, 0))
            except ValueError:
                return ""
        return html.unescape(f"&{inner};")
    if code == "L":
        if "|" in inner:
            return inner.split("|", 1)[0]
        if inner.startswith(("http:", "https:", "ftp:")):
            return inner
        name, _, section = inner.partition("/")
        return section.strip('"') if section and not name else name
    return inner


def resolve_codes(text: str) -> str:
    """Plain text of a POD paragraph with its formatting codes resolved."""
    return _resolve(text)[0]


def pod_paragraphs(pod: str) -> Iterator[str]:
    """The prose paragraphs of one POD document (see the module docstring)."""
    blocks = re.split(r"\n[ \t]*\n", pod.replace("\r\n", "\n"))
    in_pod = True
    in_begin = 0
    for block in blocks:
        if not block.strip():
            continue
        if block.startswith("="):
            command, _, rest = block.partition(" ")
            command = command.split("\n", 1)[0]
            if command == "=cut":
                in_pod = False
            elif command in ("=pod", "=head1", "=head2", "=head3", "=head4", "=over", "=back", "=encoding"):
                in_pod = True
            elif command == "=begin":
                in_begin += 1
            elif command == "=end":
                in_begin = max(0, in_begin - 1)
            elif command == "=item" and in_pod and not in_begin:
                text = " ".join(resolve_codes(rest).split())
                if is_english_prose(text) and len(text.split()) >= 6:
                    yield text
            continue
        if not in_pod or in_begin or block[0] in " \t":  # code, or a verbatim block
            continue
        text = " ".join(resolve_codes(block).split())
        if is_english_prose(text):
            yield text
