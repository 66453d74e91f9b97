"""WordNet 3.0 glosses (Debian ``wordnet-base`` ``data.*``): definitions, with the quoted usage examples split off."""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from pathlib import Path

WORDNET_DATA_FILES = ("data.noun", "data.verb", "data.adj", "data.adv")


def split_wordnet_gloss(gloss: str) -> tuple[str, list[str]]:
    """A WordNet gloss field -> (definition text without examples, the quoted usage examples)."""
    examples = [m.group(1).strip() for m in re.finditer(r'"([^"]*)"', gloss)]
    definition = re.sub(r'"[^"]*"', " ", gloss)
    definition = re.sub(r"\s*;(\s*;)*\s*", "; ", " ".join(definition.split()))
    definition = definition.strip(" ;:,")
    return definition, [e for e in examples if e]


def wordnet_glosses(lines: Iterable[str]) -> Iterator[tuple[str, list[str]]]:
    """(definition, examples) of each synset line of a WordNet ``data.*`` file."""
    for line in lines:
        if line.startswith("  ") or "|" not in line:  # licence header
            continue
        yield split_wordnet_gloss(line.split("|", 1)[1].strip())


def read_wordnet_glosses(root: Path) -> Iterator[str]:
    """Each definition as a sentence (the usage examples are evaluation text: left out)."""
    for name in WORDNET_DATA_FILES:
        path = root / "usr/share/wordnet" / name
        with open(path, encoding="utf-8", errors="replace") as handle:
            for definition, _ in wordnet_glosses(handle):
                if definition:
                    yield definition[0].upper() + definition[1:] + "."

