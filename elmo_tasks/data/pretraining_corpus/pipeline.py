"""The corpus pipeline: paragraphs -> sentences -> PTB tokens -> filters -> dedup -> held-out split -> files.

Each source's paragraphs are split into sentences and tokenised (:mod:`elmo_tasks.data.tokenize`),
then filtered, in this order, each drop counted in the manifest:

1. length: fewer than ``min_tokens`` or more than ``max_tokens`` tokens (a longer sentence is first
   cut after ``;`` or ``:`` into clauses that fit, :func:`split_long`, and only dropped if it cannot be);
2. junk: leftover markup characters (GCIDE's ``?`` for an unknown character, ``\\``, ``{``, ``_``, ``=`` ...);
3. exclusion: the sentence's normalised key is the key of an evaluation sentence
   (:mod:`elmo_tasks.data.pretraining_corpus.exclusions`), counted per set;
4. duplicate: the exact token string was kept before (from any source).

A kept sentence goes to ``heldout.txt`` when ``sha256(f"{seed}:{sentence}")`` falls in the first
``heldout_fraction`` of the hash range (stable: it depends on the sentence only, so a sentence held
out once stays held out when sources are added), else to ``train.txt``. ``train.txt`` is shuffled
with ``seed``; ``heldout.txt`` keeps source order.
"""

from __future__ import annotations

import hashlib
import json
import random
import re
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

from elmo_tasks.atomic import atomic_path
from elmo_tasks.data.pretraining_corpus.exclusions import normalized_key
from elmo_tasks.data.sources import sha256_file
from elmo_tasks.data.tokenize import split_sentences, tokenize

MIN_TOKENS = 3
MAX_TOKENS = 100

_JUNK = re.compile(r"[\\{}\[\]|<>=^~*_]|\w\?|\?\w|\ufffd")
_RAW_JUNK = re.compile(r"\?[A-Za-z]|\ufffd")  # GCIDE writes "?" for a character it cannot show: "?way"
_JUNK_SEQUENCE = re.compile(r"(?:^| )[(,] \?(?: |$)|(?:^| )\? [),]")


def heldout_score(sentence: str, seed: int) -> float:
    """A number in [0, 1) fixed by the sentence and the seed (the heldout split's hash)."""
    digest = hashlib.sha256(f"{seed}:{sentence}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2.0**64


def split_long(tokens: list[str], max_tokens: int) -> list[list[str]]:
    """Cut an over-long sentence after ``;`` (then ``:``) into clauses of at most ``max_tokens``,
    greedily joining neighbours; ``[tokens]`` when no such cut gets every piece short enough."""
    for mark in (";", ":"):
        clauses: list[list[str]] = [[]]
        for token in tokens:
            clauses[-1].append(token)
            if token == mark:
                clauses.append([])
        clauses = [c for c in clauses if c]
        if len(clauses) < 2 or any(len(c) > max_tokens for c in clauses):
            continue
        pieces: list[list[str]] = [[]]
        for clause in clauses:
            if pieces[-1] and len(pieces[-1]) + len(clause) > max_tokens:
                pieces.append([])
            pieces[-1].extend(clause)
        return pieces
    return [tokens]


@dataclass
class SourceStats:
    """What one source gave: its package and licence, and the counts of kept and dropped sentences."""

    package: str = ""
    version: str = ""
    licence: str = ""
    paragraphs: int = 0
    sentences_seen: int = 0
    sentences_kept: int = 0
    tokens_kept: int = 0
    train_sentences: int = 0
    heldout_sentences: int = 0
    dropped: Counter = field(default_factory=Counter)
    long_sentences_split: int = 0  # over max_tokens, cut after ";" or ":" instead of dropped
    skipped: str | None = None
    notes: list[str] = field(default_factory=list)
    kind: str = ""
    archives: dict[str, str] = field(default_factory=dict)  # archive file name -> sha256
    train_tokens: int = 0
    heldout_tokens: int = 0


@dataclass
class CorpusBuilder:
    """Filters, deduplicates and splits tokenised sentences; see the module docstring."""

    exclusions: dict[str, set[str]]
    heldout_fraction: float = 0.01
    seed: int = 0
    min_tokens: int = MIN_TOKENS
    max_tokens: int = MAX_TOKENS
    train: list[str] = field(default_factory=list)
    heldout: list[str] = field(default_factory=list)
    seen: set[bytes] = field(default_factory=set)

    def add_sentence(self, tokens: list[str], stats: SourceStats, raw: str | None = None) -> str:
        """Add one tokenised sentence (``raw``: its text before tokenising, checked for markup too);
        returns "train", "heldout" or the reason it was dropped."""
        stats.sentences_seen += 1
        reason = self._reason(tokens, raw)
        if reason is None:
            line = " ".join(tokens)
            digest = hashlib.blake2b(line.encode("utf-8"), digest_size=12).digest()
            if digest in self.seen:
                reason = "duplicate"
            else:
                self.seen.add(digest)
        if reason is not None:
            stats.dropped[reason] += 1
            return reason
        stats.sentences_kept += 1
        stats.tokens_kept += len(tokens)
        if heldout_score(line, self.seed) < self.heldout_fraction:
            self.heldout.append(line)
            stats.heldout_sentences += 1
            stats.heldout_tokens += len(tokens)
            return "heldout"
        self.train.append(line)
        stats.train_sentences += 1
        stats.train_tokens += len(tokens)
        return "train"

    def _reason(self, tokens: list[str], raw: str | None) -> str | None:
        if len(tokens) < self.min_tokens:
            return "too-short"
        if len(tokens) > self.max_tokens:
            return "too-long"
        if (any(_JUNK.search(token) for token in tokens) or _JUNK_SEQUENCE.search(" ".join(tokens))
                or (raw is not None and _RAW_JUNK.search(raw))):
            return "markup"
        key = normalized_key(tokens)
        for name, keys in self.exclusions.items():
            if key in keys:
                return f"excluded:{name}"
        return None

    def add_paragraphs(self, paragraphs: Iterable[str], stats: SourceStats,
                       progress: Callable[[int], None] | None = None) -> None:
        for paragraph in paragraphs:
            stats.paragraphs += 1
            for sentence in split_sentences(paragraph):
                tokens = tokenize(sentence)
                if len(tokens) > self.max_tokens:
                    pieces = split_long(tokens, self.max_tokens)
                    if len(pieces) > 1:
                        stats.long_sentences_split += 1
                        for piece in pieces:
                            self.add_sentence(piece, stats, raw=sentence)
                        continue
                self.add_sentence(tokens, stats, raw=sentence)
            if progress is not None:
                progress(1)


def write_atomic_lines(path: Path, lines: Iterable[str]) -> None:
    """Write one line per item under a temporary name, then rename (no half file on a crash)."""
    with atomic_path(path) as tmp, open(tmp, "w", encoding="utf-8", newline="\n") as handle:
        for line in lines:
            handle.write(line)
            handle.write("\n")


def write_outputs(out_dir: Path, builder: CorpusBuilder, manifest: dict) -> dict:
    """train.txt (shuffled with the seed), heldout.txt, manifest.json (with checksums), atomically."""
    out_dir.mkdir(parents=True, exist_ok=True)
    train = list(builder.train)
    random.Random(builder.seed).shuffle(train)
    write_atomic_lines(out_dir / "train.txt", train)
    write_atomic_lines(out_dir / "heldout.txt", builder.heldout)
    manifest = dict(manifest)
    manifest["files"] = {
        name: {"lines": count, "tokens": tokens, "sha256": sha256_file(out_dir / name)}
        for name, count, tokens in (
            ("train.txt", len(train), sum(len(line.split()) for line in train)),
            ("heldout.txt", len(builder.heldout), sum(len(line.split()) for line in builder.heldout)),
        )
    }
    write_atomic_lines(out_dir / "manifest.json", [json.dumps(manifest, indent=2, sort_keys=False)])
    return manifest
