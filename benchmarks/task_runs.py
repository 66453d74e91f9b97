"""Shared pieces of the trained-task-model benchmarks (``predict_speed.py``, ``predict_truth.py``): real
runs trained once and reused, and raw English sentences that no split of a run contains.

The raw text is the Wikipedia articles and the Lee et al. news texts of the ``gensim`` wheel's test
data (the pinned package ``data corpus`` reads too), split into sentences by
:func:`elmo_tasks.data.tokenize.split_sentences`, in file order, distinct, 4 to 80 PTB tokens each.
"""

from __future__ import annotations

import os
import resource
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from elmo_tasks.data.packages import archive  # noqa: E402
from elmo_tasks.data.pretraining_corpus import wikitext  # noqa: E402
from elmo_tasks.data.sources import archive_member  # noqa: E402
from elmo_tasks.data.tokenize import split_sentences, tokenize  # noqa: E402
from elmo_tasks.errors import UserError  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.training import trainer  # noqa: E402
from elmo_tasks.training.splits import load_splits  # noqa: E402

TEXT_SOURCE = ("gensim 4.4.0 wheel test data: Wikipedia articles (enwiki ...-shortened.bz2, CC BY-SA) "
               "then the Lee et al. news texts (lee_background.cor)")


def split_token_lists(config_path: str | Path, overrides: dict[str, Any]) -> set[tuple[str, ...]]:
    """Every sentence (as a token tuple) of the train, dev and test splits the config reads."""
    raw = load_splits(load_config(config_path, overrides).dataset)
    return {tuple(tokens) for split in raw.values() for tokens in split["tokens"]}


def raw_sentences(count: int, exclude: set[tuple[str, ...]]) -> list[str]:
    """``count`` distinct raw sentences of :data:`TEXT_SOURCE` whose PTB tokens are none of ``exclude``."""
    wheel = archive("gensim")
    paragraphs = list(wikitext.wiki_dump_paragraphs(archive_member(wheel, wikitext.WIKI_MEMBER)))
    paragraphs += list(wikitext.lee_paragraphs(archive_member(wheel, wikitext.LEE_MEMBER)))
    seen: set[str] = set()
    out: list[str] = []
    for paragraph in paragraphs:
        for sentence in split_sentences(paragraph):
            tokens = tokenize(sentence)
            if sentence in seen or not 4 <= len(tokens) <= 80 or tuple(tokens) in exclude:
                continue
            seen.add(sentence)
            out.append(sentence)
            if len(out) == count:
                return out
    raise UserError(f"{TEXT_SOURCE}: only {len(out)} usable sentences, {count} needed")


def finished_run(config_path: str | Path, overrides: dict[str, Any], folder: Path, threads: int) -> dict[str, Any]:
    """The metrics of the run of ``config_path`` + ``overrides`` in ``folder``: trained now, or the
    finished run already there (a folder of another config is refused by the run folder itself)."""
    started = time.perf_counter()
    metrics = trainer.run(load_config(config_path, overrides), folder, progress=False, echo=True, threads=threads)
    print(f"# run {folder}: {time.perf_counter() - started:.1f}s here (the run's own total_seconds "
          f"{metrics['total_seconds']}); test {metrics['test']}", flush=True)
    return metrics


def peak_rss_mib() -> float:
    """The kernel's peak resident-set mark of this process, MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    """CPU kind and load, for the printed header."""
    flags = Path("/proc/cpuinfo").read_text()
    kind = "avx512_bf16" if "avx512_bf16" in flags else "avx2" if "avx2" in flags else "other"
    model = next((line.split(":", 1)[1].strip() for line in flags.splitlines() if line.startswith("model name")), "?")
    return f"{model}, {os.cpu_count()} cores, CPU kind {kind}, load average {os.getloadavg()[0]:.2f}"
