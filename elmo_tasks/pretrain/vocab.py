"""The softmax vocabulary: ``<S>``, ``</S>``, ``<UNK>`` first, then words by descending frequency.

The order matters: the log-uniform negative sampler assumes id 0.. are the most frequent words.
A vocabulary file (one token per line, the bilm-tf format) can be read instead of building one;
lines ``!!!MAXTERMID`` are skipped as bilm-tf does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from elmo_tasks.bilm.char_ids import BOS_TOKEN, EOS_TOKEN
from elmo_tasks.errors import UserError
from elmo_tasks.pretrain.text_source import BOS_TYPE, EOS_TYPE, PAD_TYPE, EncodedText, TypeTable, read_lines

UNK_TOKEN = "<UNK>"
SPECIALS = (BOS_TOKEN, EOS_TOKEN, UNK_TOKEN)


class Vocabulary:
    def __init__(self, words: list[str], source: str = "<built>") -> None:
        self.words = list(words)
        self.index = {w: i for i, w in enumerate(self.words)}
        for special in SPECIALS:
            if special not in self.index:
                raise UserError(f"{source}: the vocabulary must contain {' '.join(SPECIALS)}; {special} is missing")
        if len(self.index) != len(self.words):
            dup = next(w for i, w in enumerate(self.words) if self.index[w] != i)
            raise UserError(f"{source}: token {dup!r} appears twice in the vocabulary")
        self.bos, self.eos, self.unk = (self.index[s] for s in SPECIALS)

    def __len__(self) -> int:
        return len(self.words)

    @classmethod
    def build(cls, text: EncodedText, types: TypeTable, max_size: int, min_count: int = 1) -> "Vocabulary":
        """The most frequent words of ``text`` (ties: first appearance), specials first."""
        counts = np.bincount(text.tokens, minlength=len(types))
        counts[[BOS_TYPE, EOS_TYPE, PAD_TYPE]] = 0
        special_types = [types.index[s] for s in SPECIALS if s in types.index]
        counts[special_types] = 0  # a literal "<UNK>" in the text is not counted twice
        order = np.argsort(-counts, kind="stable")
        keep = order[counts[order] >= min_count][: max_size - len(SPECIALS)]
        return cls(list(SPECIALS) + [types.strings[i] for i in keep])

    @classmethod
    def load(cls, path: str | Path) -> "Vocabulary":
        path = Path(path)
        words = []
        for number, line in read_lines(path):
            word = line.strip()
            if not word or word == "!!!MAXTERMID":
                continue
            if len(word.split()) != 1:
                raise UserError(f"{path}, line {number}: a vocabulary line must hold one token, got {word!r}")
            words.append(word)
        if not words:
            raise UserError(f"{path}: the vocabulary file is empty")
        return cls(words, source=str(path))

    def save(self, path: str | Path) -> None:
        Path(path).write_text("\n".join(self.words) + "\n", encoding="utf-8")

    def target_map(self, types: TypeTable) -> np.ndarray:
        """type id -> vocabulary id (``<UNK>`` for words outside the vocabulary); padding -> -1."""
        out = np.full(len(types), self.unk, dtype=np.int32)
        for i, s in enumerate(types.strings):
            j = self.index.get(s)
            if j is not None:
                out[i] = j
        out[BOS_TYPE], out[EOS_TYPE], out[PAD_TYPE] = self.bos, self.eos, -1
        return out
