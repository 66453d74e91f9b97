"""Prediction speed of a trained GloVe + ELMo BiLSTM-CRF tagger (the WNUT-16 config) on raw text.

Trains ``configs/tasks/ner_wnut16_elmo.yaml`` once into ``--runs`` (a finished run there is reused),
then, each part in a fresh process (its own peak RSS), on ``--sentences`` raw sentences of Wikipedia
and news text that no WNUT-16 split contains (:mod:`task_runs`):

- ``batched``: ``TaskModel.predict`` over all of them, ``--batch-size`` (length-sorted batches);
- ``single``: the same model one sentence at a time, on the first ``--single`` of them (a subset:
  the full set would take long); its tags are checked against the batched ones;
- ``cli``: ``elmo-tasks predict`` on the same file (process start, load, tokenising, writing JSON lines);
- ``eval``: the run's own evaluation loop (``training.evaluation.evaluate``) over the ELMo feature
  cache of the run's three splits, at the run's batch size and at ``--batch-size``.

    flock /tmp/heavy.lock python benchmarks/predict_speed.py            # ~5 minutes on 2 cores with training

Prints one line per part and a summary; ``--json FILE`` keeps them.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_runs import ROOT, TEXT_SOURCE, finished_run, machine, peak_rss_mib, raw_sentences, split_token_lists  # noqa: E402

from elmo_tasks import TaskModel  # noqa: E402
from elmo_tasks.errors import run_script  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.schema import parse_assignments  # noqa: E402
from elmo_tasks.training import trainer  # noqa: E402
from elmo_tasks.training.evaluation import evaluate  # noqa: E402
from elmo_tasks.training.run_folder import load_checkpoint  # noqa: E402

CONFIG = ROOT / "configs" / "tasks" / "ner_wnut16_elmo.yaml"


def part_batched(run: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    model = TaskModel.load(run)
    model.predict(texts[:args.batch_size], batch_size=args.batch_size)  # warm-up, outside the timing
    examples = model.examples(texts)
    tick = time.perf_counter()
    results = model.predict_examples(examples, batch_size=args.batch_size)
    seconds = time.perf_counter() - tick
    Path(args.tags_out).write_text(json.dumps([[r["tags"], r["tag_probabilities"]] for r in results[:args.single]]))
    return {"sentences": len(texts), "tokens": sum(len(e.tokens) for e in examples), "seconds": seconds,
            "spans": sum(len(r["spans"]) for r in results)}


def part_single(run: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    model = TaskModel.load(run)
    subset = texts[:args.single]
    model.predict(subset[:8], batch_size=1)  # warm-up
    examples = model.examples(subset)
    tick = time.perf_counter()
    results = [model.predict_examples([e], batch_size=1)[0] for e in examples]
    seconds = time.perf_counter() - tick
    batched = json.loads(Path(args.tags_out).read_text())
    gap = max(abs(x - y) for r, (_, probs) in zip(results, batched) for x, y in zip(r["tag_probabilities"], probs))
    return {"sentences": len(subset), "tokens": sum(len(e.tokens) for e in examples), "seconds": seconds,
            "tags_differing_from_batched": sum(r["tags"] != tags for r, (tags, _) in zip(results, batched)),
            "max_probability_difference_from_batched": round(gap, 7)}


def part_eval(run: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    config = load_config(run / "config.yaml")
    task, splits, model, _ = trainer.prepare(config, progress=False, log=lambda m: None)
    model.load_state_dict(load_checkpoint(run / "checkpoints" / "best.pt"))
    device = torch.device("cpu")
    out: dict[str, Any] = {"sentences": sum(len(s) for s in splits.values()),
                           "tokens": sum(len(t) for s in splits.values() for t in s.tokens)}
    for label, batch_size in (("run_batch", config.trainer.batch_size), ("batch", args.batch_size)):
        for split in splits.values():  # warm-up
            evaluate(model, split, task, batch_size, device)
            break
        tick = time.perf_counter()
        for split in splits.values():
            evaluate(model, split, task, batch_size, device)
        out[f"seconds_{label}"] = time.perf_counter() - tick
        out[f"batch_size_{label}"] = batch_size
    out["seconds"] = out["seconds_batch"]
    return out


def run_part(name: str, args: argparse.Namespace) -> dict[str, Any]:
    command = [sys.executable, __file__, "--part", name, "--runs", str(args.runs), "--sentences", str(args.sentences),
               "--single", str(args.single), "--batch-size", str(args.batch_size), "--threads", str(args.threads)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        sys.stderr.write(done.stderr)
        raise SystemExit(f"part {name} failed (exit {done.returncode})")
    return json.loads(done.stdout.strip().splitlines()[-1])


def part_cli(run: Path, texts: list[str], args: argparse.Namespace) -> dict[str, Any]:
    """``elmo-tasks predict`` as a child of this (fresh) process: its wall time and its own peak RSS."""
    import resource

    out = Path(args.text_file).with_suffix(".predicted.jsonl")
    command = [sys.executable, "-m", "elmo_tasks.cli", "predict", str(run), args.text_file, "--out", str(out),
               "--batch-size", str(args.batch_size), "--threads", str(args.threads), "--quiet"]
    tick = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, timeout=1800)
    seconds = time.perf_counter() - tick
    if done.returncode != 0:
        raise SystemExit(f"elmo-tasks predict failed (exit {done.returncode}): {done.stderr.strip()[-300:]}")
    lines = out.read_text(encoding="utf-8").splitlines()
    child_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    return {"sentences": len(lines), "seconds": seconds, "cli_peak_rss_mib": child_peak}


PARTS = {"batched": part_batched, "single": part_single, "eval": part_eval, "cli": part_cli}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench" / "predict", help="where the run is kept")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                        help="change the config (a smoke test: --set trainer.epochs=1; use another --runs)")
    parser.add_argument("--sentences", type=int, default=10_000)
    parser.add_argument("--single", type=int, default=500, help="sentences timed one at a time (a subset)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--json", type=Path, help="write the figures here too")
    parser.add_argument("--part", choices=sorted(PARTS), help=argparse.SUPPRESS)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    run = args.runs / "ner_wnut16_elmo"
    text_file = args.runs / f"raw_{args.sentences}.txt"
    args.tags_out = str(args.runs / "batched_tags.json")
    args.text_file = str(text_file)
    if args.part:
        texts = text_file.read_text(encoding="utf-8").splitlines()
        figures = PARTS[args.part](run, texts, args)
        figures["peak_rss_mib"] = peak_rss_mib()
        print(json.dumps(figures))
        return 0

    print(f"# {machine()}; torch {torch.__version__}, {args.threads} threads", flush=True)
    args.runs.mkdir(parents=True, exist_ok=True)
    overrides = parse_assignments(args.assignments, "--set")
    metrics = finished_run(CONFIG, overrides, run, args.threads)
    texts = raw_sentences(args.sentences, split_token_lists(CONFIG, overrides))
    text_file.write_text("\n".join(texts) + "\n", encoding="utf-8")
    print(f"# {len(texts)} raw sentences, none in a WNUT-16 split: {TEXT_SOURCE}", flush=True)
    rows: dict[str, Any] = {}
    for name in ("batched", "single", "eval", "cli"):
        rows[name] = run_part(name, args)
        print(f"{name}: {json.dumps(rows[name])}", flush=True)

    def rate(row: dict[str, Any], key: str = "seconds") -> float:
        return row["sentences"] / row[key]

    b, s, e, c = rows["batched"], rows["single"], rows["eval"], rows["cli"]
    print()
    print("| way | sentences | sentences/s | tokens/s | peak RSS MiB |")
    print("| --- | --- | --- | --- | --- |")
    print(f"| TaskModel.predict, batch {args.batch_size} | {b['sentences']} | {rate(b):.1f} | "
          f"{b['tokens'] / b['seconds']:.0f} | {b['peak_rss_mib']:.0f} |")
    print(f"| one sentence at a time (first {s['sentences']}) | {s['sentences']} | {rate(s):.1f} | "
          f"{s['tokens'] / s['seconds']:.0f} | {s['peak_rss_mib']:.0f} |")
    print(f"| elmo-tasks predict (whole process) | {c['sentences']} | {rate(c):.1f} | - | {c['cli_peak_rss_mib']:.0f} |")
    for label in ("run_batch", "batch"):
        print(f"| the run's evaluation loop on cached features, batch {e[f'batch_size_{label}']} (its 3 splits) | "
              f"{e['sentences']} | {rate(e, f'seconds_{label}'):.1f} | {e['tokens'] / e[f'seconds_{label}']:.0f} | "
              f"{e['peak_rss_mib']:.0f} |")
    print()
    def tokens_per_s(row: dict[str, Any]) -> float:
        return row["tokens"] / row["seconds"]

    print(f"batched / one at a time: {rate(b) / rate(s):.1f}x sentences/s "
          f"({tokens_per_s(b) / tokens_per_s(s):.1f}x tokens/s); "
          f"tags that differ between the two on the {s['sentences']}: {s['tags_differing_from_batched']}, "
          f"largest tag-probability difference {s['max_probability_difference_from_batched']}")
    print(f"cached evaluation loop (batch {args.batch_size}) / batched predict: "
          f"{tokens_per_s(e) / tokens_per_s(b):.1f}x tokens/s (WNUT-16 tweets average "
          f"{e['tokens'] / e['sentences']:.1f} tokens, the raw sentences {b['tokens'] / b['sentences']:.1f})")
    print(f"the run: test span F1 {metrics['test'].get('span_f1')}, best epoch {metrics['best_epoch']}; "
          f"{b['spans']} spans found in the {b['sentences']} raw sentences")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "predict_speed.py")
