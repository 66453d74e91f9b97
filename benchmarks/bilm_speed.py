"""biLM speed, side by side: elmo-tasks vs the reference implementation on identical weights.

The reference is allennlp's ELMo code as packaged in ``simple-elmo-pytorch`` (PyPI, an optional
benchmark dependency: ``pip install simple-elmo-pytorch==0.2``). Both run in this one process, on
the same real sentences (distinct lines of the corpus held-out split, or WordNet glosses), batch
size 64, the same torch thread count, on:

* ``small`` and ``original``: random weights of the released shapes (1024 cells / 128 projection
  and 4096 / 512, both with the standard 2048-filter character CNN), written in the public
  ``options.json`` + ``weights.hdf5`` format by this script;
* ``default``: the toolkit's shipped model, when there is one.

elmo-tasks runs through its public API (``Embedder.embed_sentences``: length-sorted batches,
order restored), starting with an empty token cache; the reference runs consecutive batches with
its states reset before each batch (stateless, like its first batch). Per model the table gives
tokens/s for both, the ratio, the largest absolute difference between the two outputs (all three
layers), FLOPs per token from the model's sizes, this machine's measured float32 GEMM rate, our
throughput as a fraction of the limit that rate sets, and each side's peak working memory.

    python benchmarks/bilm_speed.py            # the full table (under 10 minutes on 2 cores)
    python benchmarks/bilm_speed.py --quick    # a smaller run (under a minute)

``--before TREE`` also times another checkout of elmo-tasks (``git worktree add /tmp/before main``)
on the same model and sentences, in a child process with that tree first on its path, interleaved
with ours (``--repeats`` rounds of before, ours; float32 then bfloat16), and prints the best of each
side by side.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import (  # noqa: E402
    flops_per_token,
    gemm_rates,
    load_sentences,
    machine_description,
    reset_peak_rss,
    rss_mib,
    write_random_model,
)

from elmo_tasks.bilm.weights import OPTIONS_NAME, WEIGHTS_NAME  # noqa: E402
from elmo_tasks.embedder import DEFAULT_MODEL_DIR, Embedder  # noqa: E402
from elmo_tasks.errors import UserError, run_script  # noqa: E402

FULL_SENTENCES = {"small": 2048, "original": 512, "default": 1024}
QUICK_SENTENCES = {"small": 256, "original": 64, "default": 128}
WARMUP_SENTENCES = 8


def load_reference(directory: Path):
    try:
        from simple_elmo_pytorch.models.elmo import ElmoBiLmSentence, batch_to_ids
    except ImportError:
        raise UserError("the reference implementation is missing: pip install simple-elmo-pytorch==0.2") from None
    model = ElmoBiLmSentence(str(directory / OPTIONS_NAME), str(directory / WEIGHTS_NAME))
    return model.eval(), batch_to_ids


def run_reference(model, to_ids, sentences: list[list[str]], batch_size: int) -> list[np.ndarray]:
    """(3, n, 2P) per sentence; consecutive batches, states reset before each (stateless)."""
    out = []
    with torch.no_grad():
        for start in range(0, len(sentences), batch_size):
            batch = sentences[start : start + batch_size]
            model._elmo_lstm.reset_states()
            layers = torch.stack(model(to_ids(batch))["activations"], dim=1)  # (B, 3, T+2, 2P)
            out.extend(layers[i, :, 1 : len(s) + 1].numpy() for i, s in enumerate(batch))
    return out


def timed(function):
    """(result, seconds, peak working memory in MiB above the resident memory at the start)."""
    supported = reset_peak_rss()
    start_rss = rss_mib()
    start = time.perf_counter()
    result = function()
    seconds = time.perf_counter() - start
    peak = rss_mib("VmHWM") - start_rss if supported else float("nan")
    return result, seconds, peak


def time_embedder(directory: Path, sentences: list[list[str]], warmup: list[list[str]], batch_size: int,
                  precision: str) -> dict:
    """Tokens/s of ``Embedder.embed_sentences`` from an empty token cache, after an untimed pass (the
    child process of ``--before``: runs the elmo-tasks first on its path)."""
    import elmo_tasks

    embedder = Embedder.from_dir(directory, batch_size=batch_size)
    embedder.engine.set(precision=precision)
    list(embedder.embed_sentences(warmup + sentences))  # oneDNN compiles its kernels per row count: a
    embedder.engine.token_cache.clear()  # whole untimed pass first, as ours has had in the parent process
    _, seconds, _ = timed(lambda: list(embedder.embed_sentences(sentences)))
    return {"tok_s": sum(len(s) for s in sentences) / seconds, "code": str(Path(elmo_tasks.__file__).parent)}


def run_before(tree: Path, directory: Path, sentences: list[list[str]], warmup: list[list[str]],
               batch_size: int, precision: str, threads: int) -> float:
    """Tokens/s of the checkout ``tree`` on the same work, in a child process (bounded in time)."""
    with tempfile.TemporaryDirectory(prefix="bilm-before-") as tmp:
        job = Path(tmp) / "job.json"
        job.write_text(json.dumps({"directory": str(directory), "sentences": sentences, "warmup": warmup,
                                   "batch_size": batch_size, "precision": precision}))
        env = {**os.environ, "PYTHONPATH": str(tree)}
        done = subprocess.run([sys.executable, __file__, "--threads", str(threads), "--child", str(job)], env=env,
                              capture_output=True, text=True, timeout=900)
    if done.returncode != 0:
        raise UserError(f"--before {tree}: the child run failed: {done.stderr.strip().splitlines()[-1:]}")
    result = json.loads(done.stdout.strip().splitlines()[-1])
    if not Path(result["code"]).resolve().is_relative_to(tree.resolve()):
        raise UserError(f"--before {tree}: the child ran elmo-tasks from {result['code']}, not from that tree")
    return result["tok_s"]


def compare_with_before(ours: Embedder, before: Path, directory: Path, sentences: list[list[str]],
                        warmup: list[list[str]], batch_size: int, threads: int, precisions: list[str],
                        repeats: int) -> dict[str, dict[str, float]]:
    """Best tokens/s of ``repeats`` interleaved rounds (before, now) per precision, each from an empty
    token cache: the checkout ``before`` in a child process, ours in this one."""
    tokens = sum(len(s) for s in sentences)
    best = {p: {"before": 0.0, "now": 0.0} for p in precisions}
    for _ in range(repeats):
        for precision in precisions:
            best[precision]["before"] = max(best[precision]["before"], run_before(
                before, directory, sentences, warmup, batch_size, precision, threads))
            ours.engine.set(precision=precision).token_cache.clear()
            _, seconds, _ = timed(lambda: list(ours.embed_sentences(sentences)))
            best[precision]["now"] = max(best[precision]["now"], tokens / seconds)
    ours.engine.set(precision="float32").token_cache.clear()
    return best


def bench_model(name: str, directory: Path, sentences: list[list[str]], warmup: list[list[str]],
                batch_size: int, rate: float, ablation: bool, bf16: bool, before: Path | None = None,
                threads: int = 2, repeats: int = 2) -> dict:
    ours = Embedder.from_dir(directory, batch_size=batch_size)
    reference, to_ids = load_reference(directory)
    list(ours.embed_sentences(warmup))  # one-time library set-up, then back to an empty token cache
    ours.engine.token_cache.clear()
    run_reference(reference, to_ids, warmup, batch_size)

    tokens = sum(len(s) for s in sentences)
    got, ours_s, ours_mem = timed(lambda: list(ours.embed_sentences(sentences)))
    want, ref_s, ref_mem = timed(lambda: run_reference(reference, to_ids, sentences, batch_size))
    diff = max(float(np.abs(a - b).max()) for a, b in zip(got, want) if a.size)
    flops = flops_per_token(ours.bilm.options)
    row = {
        "model": name, "sentences": len(sentences), "tokens": tokens,
        "ours_tok_s": tokens / ours_s, "ref_tok_s": tokens / ref_s, "ratio": ref_s / ours_s,
        "max_abs_diff": diff, "flops_per_token": flops["total"], "lstm_flops_per_token": flops["lstm"],
        "gemm_gflops": rate / 1e9, "limit_tok_s": rate / flops["total"],
        "fraction_of_limit": tokens / ours_s * flops["total"] / rate,
        "lstm_fraction_of_limit": tokens / ours_s * flops["lstm"] / rate,
        "ours_peak_mib": ours_mem, "ref_peak_mib": ref_mem,
        "weights_mib": sum(p.numel() * p.element_size() for p in ours.bilm.parameters()) / 2**20,
        "token_cache": len(ours.engine.token_cache),
    }
    if bf16:  # the opt-in reduced precision, from an empty token cache again
        ours.engine.set(precision="bfloat16").token_cache.clear()
        low, low_s, low_mem = timed(lambda: list(ours.embed_sentences(sentences)))
        row["bf16"] = {"tok_s": tokens / low_s, "ratio": ref_s / low_s, "peak_mib": low_mem,
                       "max_abs_diff": max(float(np.abs(a - b).max()) for a, b in zip(low, want) if a.size),
                       "max_abs_value": max(float(np.abs(b).max()) for b in want if b.size)}
        ours.engine.set(precision="float32")
    if before is not None:
        precisions = ["float32", "bfloat16"] if bf16 else ["float32"]
        row["before"] = {"tree": str(before), "repeats": repeats,
                         **compare_with_before(ours, before, directory, sentences, warmup, batch_size, threads,
                                               precisions, repeats)}
    if ablation:
        row["ablation"] = run_ablation(ours, sentences, batch_size, tokens)
    ours = reference = None  # free both models before the next shape loads
    return row


def run_ablation(ours: Embedder, sentences: list[list[str]], batch_size: int, tokens: int) -> dict[str, float]:
    """Tokens/s with one trick at a time taken away: one field of the engine's settings each
    (from an empty token cache each time)."""
    engine = ours.engine
    default = engine.settings
    results = {}
    cases = [
        ("all tricks again (oneDNN's kernels now compiled: the first run paid for that)", {}),
        ("no length sorting", dict(sort_by_length=False)),
        ("no token cache across batches", dict(token_cache_size=0)),
        ("per-filter CNN instead of one fused product", dict(fused_cnn=False)),
        ("torch.mm instead of oneDNN packed weights (and no fused CNN)", dict(packed_products=False)),
        ("one worker thread instead of two", dict(workers=1)),
        ("plain path (BiLM.forward, no inference path)", dict(fast_forward=False)),
    ]
    for label, changes in cases:
        engine.set(**{**vars(default), **changes}).token_cache.clear()
        _, seconds, _ = timed(lambda: list(ours.embed_sentences(sentences)))
        results[label] = tokens / seconds
    engine.set(**vars(default))
    return results


def print_table(rows: list[dict]) -> None:
    print("\n| model | sentences / tokens | ours tok/s | reference tok/s | ratio | max abs diff | GFLOP/token "
          "(LSTM) | GEMM GFLOP/s | limit tok/s | ours / limit (LSTM only) | peak MiB ours / ref (weights) |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print(f"| {r['model']} | {r['sentences']} / {r['tokens']} | {r['ours_tok_s']:.0f} | {r['ref_tok_s']:.0f} | "
              f"{r['ratio']:.2f}x | {r['max_abs_diff']:.1e} | {r['flops_per_token'] / 1e9:.3f} "
              f"({r['lstm_flops_per_token'] / 1e9:.3f}) | {r['gemm_gflops']:.0f} | {r['limit_tok_s']:.0f} | "
              f"{r['fraction_of_limit']:.0%} ({r['lstm_fraction_of_limit']:.0%}) | "
              f"{max(r['ours_peak_mib'], 0):.0f} / {max(r['ref_peak_mib'], 0):.0f} ({r['weights_mib']:.0f}) |")
    if any("bf16" in r for r in rows):
        print("\nopt-in bfloat16 matrix products (embed-file --precision bfloat16):\n")
        print("| model | ours bf16 tok/s | vs reference | vs ours float32 | max abs diff (largest |value|) "
              "| bf16 GEMM GFLOP/s | ours / bf16 limit (LSTM only) |")
        print("| --- | --- | --- | --- | --- | --- | --- |")
        for r in rows:
            if "bf16" in r:
                b = r["bf16"]
                print(f"| {r['model']} | {b['tok_s']:.0f} | {b['ratio']:.2f}x | {b['tok_s'] / r['ours_tok_s']:.2f}x | "
                      f"{b['max_abs_diff']:.1e} ({b['max_abs_value']:.1f}) | {b['gemm_gflops']:.0f} | "
                      f"{b['fraction_of_limit']:.0%} ({b['lstm_fraction_of_limit']:.0%}) |")
    if any("before" in r for r in rows):
        print("\nbefore (--before tree) and now, interleaved in this run (tokens/s, best of the rounds):\n")
        print("| model | rounds | float32 before | float32 now | now / before | bfloat16 before | bfloat16 now "
              "| now / before | bfloat16 / float32 now |")
        print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
        nan = {"before": float("nan"), "now": float("nan")}
        for r in rows:
            if "before" in r:
                b = r["before"]
                f, low = b["float32"], b.get("bfloat16", nan)
                print(f"| {r['model']} | {b['repeats']} | {f['before']:.0f} | {f['now']:.0f} | "
                      f"{f['now'] / f['before']:.2f}x | {low['before']:.0f} | {low['now']:.0f} | "
                      f"{low['now'] / low['before']:.2f}x | {low['now'] / f['now']:.2f}x |")
    for r in rows:
        if "ablation" in r:
            print(f"\nablation, {r['model']} (tokens/s; all tricks: {r['ours_tok_s']:.0f}):")
            for label, value in r["ablation"].items():
                print(f"  {label}: {value:.0f}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer sentences per model (under a minute)")
    parser.add_argument("--sentences", metavar="FILE", help="one tokenised sentence per line (default: the corpus "
                        "held-out split from `elmo-tasks data corpus`, else WordNet glosses)")
    parser.add_argument("--models", default="small,original,default",
                        help="comma-separated, from small, original, default (default: all three)")
    parser.add_argument("--count", type=int, metavar="N", help="sentences per model (default: by model and mode)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--ablation", action="store_true", help="also time each trick taken away")
    parser.add_argument("--no-bf16", dest="bf16", action="store_false",
                        help="skip the opt-in bfloat16 rows (timed by default)")
    parser.add_argument("--json", metavar="FILE", help="also write the rows as JSON")
    parser.add_argument("--before", metavar="TREE", type=Path,
                        help="also time this checkout (e.g. `git worktree add /tmp/before main`), interleaved")
    parser.add_argument("--repeats", type=int, default=2, metavar="N",
                        help="interleaved rounds (before, now) per precision with --before; the best of each")
    parser.add_argument("--child", metavar="JOB", type=Path, help=argparse.SUPPRESS)  # --before's child process
    args = parser.parse_args(argv)

    torch.set_num_threads(args.threads)
    if args.child is not None:
        job = json.loads(args.child.read_text())
        print(json.dumps(time_embedder(Path(job["directory"]), job["sentences"], job["warmup"], job["batch_size"],
                                       job["precision"])))
        return 0
    if args.before is not None and not (args.before / "elmo_tasks" / "__init__.py").is_file():
        raise UserError(f"--before {args.before}: not an elmo-tasks checkout (no elmo_tasks/__init__.py)")
    print(f"machine: {machine_description(args.threads)}")
    print("GPU: none (this benchmark runs on the CPU)" if not torch.cuda.is_available()
          else f"GPU present ({torch.cuda.get_device_name()}), not used by this CPU benchmark")
    counts = QUICK_SENTENCES if args.quick else FULL_SENTENCES
    names = [n.strip() for n in args.models.split(",") if n.strip()]
    for name in names:
        if name not in counts:
            raise UserError(f"unknown model {name!r}: choose from {', '.join(counts)}")
    needed = max(args.count or counts[n] for n in names) + WARMUP_SENTENCES
    all_sentences, source = load_sentences(args.sentences, needed)
    print(f"sentences: {source}")
    rates = gemm_rates()
    rate = max(rates.values())
    print(f"float32 GEMM rate: {rate / 1e9:.1f} GFLOP/s ({args.threads} threads; best square product of "
          + ", ".join(f"{name} {value / 1e9:.1f}" for name, value in rates.items()) + ")")

    low_rate = 0.0
    if args.bf16:
        low_rates = gemm_rates(dtype=torch.bfloat16)
        low_rate = max(low_rates.values())
        print(f"bfloat16 GEMM rate: {low_rate / 1e9:.1f} GFLOP/s (the same sizes; "
              + ", ".join(f"{name} {value / 1e9:.1f}" for name, value in low_rates.items()) + ")")

    rows = []
    with tempfile.TemporaryDirectory(prefix="bilm-speed-") as tmp:
        for name in names:
            count = args.count or counts[name]
            sentences, warmup = all_sentences[:count], all_sentences[-WARMUP_SENTENCES:]
            if name == "default":
                directory = DEFAULT_MODEL_DIR
                if not (directory / WEIGHTS_NAME).is_file():
                    print(f"default: no default model at {directory} yet, skipped")
                    continue
            else:
                directory = write_random_model(Path(tmp) / name, name)
            start = time.perf_counter()
            row = bench_model(name, directory, sentences, warmup, args.batch_size, rate, args.ablation, args.bf16,
                              args.before, args.threads, args.repeats)
            if "bf16" in row:  # the bfloat16 run against the bfloat16 products' own limit
                row["bf16"].update(gemm_gflops=low_rate / 1e9,
                                   fraction_of_limit=row["bf16"]["tok_s"] * row["flops_per_token"] / low_rate,
                                   lstm_fraction_of_limit=row["bf16"]["tok_s"] * row["lstm_flops_per_token"] / low_rate)
            print(f"{name}: ours {row['ours_tok_s']:.0f} tok/s, reference {row['ref_tok_s']:.0f} tok/s, "
                  f"{row['ratio']:.2f}x, max abs diff {row['max_abs_diff']:.1e} "
                  f"({time.perf_counter() - start:.0f} s)", flush=True)
            rows.append(row)
    print_table(rows)
    load = " / ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\nload average (1/5/15 min) at the end: {load}; peak MiB is the working memory above the "
          "resident memory at the start of each run")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_description(args.threads), "sentences": source,
                                               "rows": rows}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "bilm_speed")
