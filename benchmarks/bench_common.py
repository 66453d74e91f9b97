"""Shared pieces of the speed and memory benchmarks: real sentences, random models in the public
format, the machine's float32 GEMM rate, and peak-memory readings.

Run the benchmarks as scripts (``python benchmarks/bilm_speed.py``); this module sits next to them.
"""

from __future__ import annotations

import os
import platform
import re
import time
from pathlib import Path

import torch

from elmo_tasks import modules
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import save_bilm
from elmo_tasks.errors import UserError

# the released shapes (elmo-reference.md §1.1): both with the standard 2048-filter character CNN
SHAPES = {
    "small": dict(lstm_dim=1024, projection_dim=128, n_highway=1),  # elmo_2x1024_128_2048cnn_1xhighway
    "original": dict(lstm_dim=4096, projection_dim=512, n_highway=2),  # elmo_2x4096_512_2048cnn_2xhighway
}


def two_lstm_forward(lstm: modules.BiLSTM, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The heads' BiLSTM before the fused recurrence (still the CUDA path): one ``nn.LSTM`` per direction and layer."""
    lengths = mask.sum(dim=1)
    for i, (fwd, bwd) in enumerate(zip(lstm.forward_layers, lstm.backward_layers)):
        if i:
            x = lstm.dropout(x)
        forward_out, _ = fwd(x)
        backward_out, _ = bwd(modules.reverse_within_lengths(x, lengths))
        x = torch.cat([forward_out, modules.reverse_within_lengths(backward_out, lengths)], dim=-1)
    return x * mask.unsqueeze(-1)


def autograd_crf_nll(crf, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """The CRF's loss before its log-partition function: autograd through a log-sum-exp per position."""
    with torch.autocast(emissions.device.type, enabled=False):
        emissions = emissions.float()
        trans, start = crf._scores()
        b, t, _ = emissions.shape
        tags, maskf, rows = tags.clamp_min(0), mask.to(emissions.dtype), torch.arange(b)
        emitted = emissions.gather(2, tags.unsqueeze(2)).squeeze(2)
        moves = trans[tags[:, :-1], tags[:, 1:]]
        score = start[tags[:, 0]] + (emitted * maskf).sum(1) + (moves * maskf[:, 1:]).sum(1)
        score = score + crf.end[tags[rows, (mask.sum(1) - 1).clamp_min(0)]]
        alpha = start.unsqueeze(0) + emissions[:, 0]
        for i in range(1, t):
            step = torch.logsumexp(alpha.unsqueeze(2) + trans.unsqueeze(0), dim=1) + emissions[:, i]
            alpha = torch.where(mask[:, i:i + 1], step, alpha)
        log_z = torch.logsumexp(alpha + crf.end.unsqueeze(0), dim=1)
        nonempty = mask[:, 0]
        return ((log_z - score) * nonempty).sum() / nonempty.sum().clamp_min(1)


def corpus_dir() -> Path:
    return Path(os.environ.get("ELMO_TASKS_CACHE", Path.home() / ".cache" / "elmo-tasks")) / "corpus"


def default_sentence_file(large: bool = False) -> Path | None:
    """The held-out (or, when ``large``, the training) split of ``elmo-tasks data corpus``, if built."""
    path = corpus_dir() / ("train.txt" if large else "heldout.txt")
    return path if path.is_file() else None


def wordnet_glosses() -> list[str]:
    """WordNet 3.0 glosses (Debian wordnet-base), one tokenised sentence each: the fallback text."""
    from elmo_tasks.data.packages import debian_package

    root = debian_package("wordnet-base") / "usr" / "share" / "wordnet"
    sentences = []
    for part in ("noun", "verb", "adj", "adv"):
        with open(root / f"data.{part}", encoding="utf-8", errors="replace") as handle:
            for line in handle:
                if line.startswith("  ") or " | " not in line:  # the licence header
                    continue
                gloss = line.split(" | ", 1)[1].strip()
                sentences.append(" ".join(re.findall(r"\w+(?:'\w+)?|[^\w\s]", gloss)))
    return sentences


def load_sentences(path: str | Path | None, count: int, large: bool = False) -> tuple[list[list[str]], str]:
    """The first ``count`` distinct non-empty lines of ``path`` (default: the corpus split, else WordNet
    glosses) as token lists, and a description of where they came from."""
    if path is None:
        path = default_sentence_file(large)
    if path is not None:
        path = Path(path)
        if not path.is_file():
            raise UserError(f"sentence file not found: {path}")
        lines = _distinct(path.read_text(encoding="utf-8").splitlines(), count)
        source = str(path)
    else:
        lines = _distinct(wordnet_glosses(), count)
        source = "WordNet 3.0 glosses (Debian wordnet-base)"
    if len(lines) < count:
        raise UserError(f"{source}: only {len(lines)} distinct sentences, {count} needed")
    return [line.split() for line in lines], source


def _distinct(lines: list[str], count: int) -> list[str]:
    seen: set[str] = set()
    out = []
    for line in lines:
        line = line.strip()
        if line and line not in seen:
            seen.add(line)
            out.append(line)
            if len(out) == count:
                break
    return out


def write_random_model(directory: Path, shape: str, seed: int = 0) -> Path:
    """A biLM of a released shape with random weights (torch's default initialisers), written as
    ``options.json`` + ``weights.hdf5``."""
    torch.manual_seed(seed)
    model = BiLM(BiLMOptions(**SHAPES[shape]))
    return save_bilm(model, directory)


def flops_per_token(options: BiLMOptions) -> dict[str, float]:
    """Floating-point operations (2 per multiply-add) per token position, from the model's sizes.

    The CNN counts every window of the 50 character positions, as the plain computation does.
    """
    d, p, c = options.char_embedding_dim, options.projection_dim, options.lstm_dim
    f = options.n_filters
    cnn = sum(2 * d * width * count * (50 - width + 1) for width, count in options.filters)
    highway = options.n_highway * 2 * (2 * f * f)
    projection = 2 * f * p
    lstm = 2 * options.n_layers * (2 * (p + p) * 4 * c + 2 * c * p)  # both directions
    return {"cnn": cnn, "highway": highway, "projection": projection, "lstm": lstm,
            "total": cnn + highway + projection + lstm}


def gemm_rates(seconds: float = 2.0, sizes: tuple[int, ...] = (1024, 2048, 3072)) -> dict[str, float]:
    """The best float32 matrix-product rate (FLOP/s) over square sizes at the current thread count, per
    method: ``torch.mm``, and oneDNN on prepacked weights where the build has it (the biLM's inference
    path uses it, and it runs faster here). The machine's limit is set by the faster of the two."""
    from elmo_tasks.bilm import packed

    methods = {"torch.mm": lambda a, w: a @ w.t()}
    if packed.ready(torch.device("cpu")):
        methods["oneDNN packed"] = lambda a, w: packed.linear(a, w)
    rates = {}
    for name, product in methods.items():
        best = 0.0
        for n in sizes:
            a, w = torch.randn(n, n), torch.randn(n, n)
            if name == "oneDNN packed":
                w = packed.pack(w)
            product(a, w)
            runs, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds / len(sizes) / len(methods) or runs < 2:
                product(a, w)
                runs += 1
            best = max(best, 2 * n**3 * runs / (time.perf_counter() - start))
        rates[name] = best
    return rates


def reset_peak_rss() -> bool:
    """Reset the kernel's peak-RSS mark for this process (Linux); False where unsupported."""
    try:
        with open("/proc/self/clear_refs", "w") as handle:
            handle.write("5")
        return True
    except OSError:
        return False


def rss_mib(field: str = "VmRSS") -> float:
    """This process's resident memory (``VmRSS``) or its peak since the last reset (``VmHWM``), MiB."""
    with open("/proc/self/status") as handle:
        for line in handle:
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def machine_description(threads: int) -> str:
    cpu = platform.processor() or "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            names = [line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")]
        cpu = names[0] if names else cpu
    except OSError:
        pass
    try:
        load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    except OSError:
        load = "n/a"
    return (f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {threads} threads; "
            f"load average (1/5/15 min) at start: {load}")
