"""Do trained task models predict what their runs measured? Three real runs, their archives, and the
archive's size and load time.

Runs (trained once into ``--runs``, a finished run there is reused; ``predict_speed.py`` shares the tagger):

- CRF tagger: ``configs/tasks/ner_wnut16_elmo.yaml`` (GloVe + ELMo BiLSTM-CRF, WNUT-16), as committed;
- classifier: ``configs/benchmarks/polarity_glove_elmo.yaml`` with ``trainer.epochs=6``, ``trainer.amp=false``;
- word senses: ``configs/tasks/wsd_wordnet_nearest.yaml`` (nearest sense on ELMo's top layer; nothing trained);
- under ``trainer.amp``: the classifier again with its committed ``amp: true`` (``trainer.epochs=6``).

For each: ``elmo-tasks predict RUN test.jsonl --format jsonl --evaluate`` against ``metrics.json``'s
``test``; ``TaskModel.predict`` on the test split against ``predictions/test.jsonl``; ``elmo-tasks
package`` and the archive's predictions on ``--sentences`` raw sentences no split contains against
the run folder's (whole result objects, probabilities included). For the tagger: the archive's size
and members, and ``TaskModel.load`` of it in a fresh process (first load: unpacked into an empty
cache; second: unpacked already), and what keeping the GloVe words no split had in float16
changes against float32 on the same raw sentences.

    flock /tmp/heavy.lock python benchmarks/predict_truth.py      # ~10 minutes on 2 cores with training
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from task_runs import ROOT, TEXT_SOURCE, finished_run, machine, raw_sentences, split_token_lists  # noqa: E402

from elmo_tasks import TaskModel  # noqa: E402
from elmo_tasks.data.tokenize import tokenize  # noqa: E402
from elmo_tasks.errors import run_script  # noqa: E402
from elmo_tasks.experiment import load_config  # noqa: E402
from elmo_tasks.features.glove import load_glove_table  # noqa: E402
from elmo_tasks.task_model.parts import from_run_folder  # noqa: E402
from elmo_tasks.training.splits import load_splits  # noqa: E402

RUNS = {  # name -> (config, overrides)
    "tagger": (ROOT / "configs/tasks/ner_wnut16_elmo.yaml", {}),
    "classifier": (ROOT / "configs/benchmarks/polarity_glove_elmo.yaml", {"trainer.epochs": 6, "trainer.amp": False}),
    "word-sense": (ROOT / "configs/tasks/wsd_wordnet_nearest.yaml", {}),
    "classifier-amp": (ROOT / "configs/benchmarks/polarity_glove_elmo.yaml", {"trainer.epochs": 6}),
}
FOLDERS = {"tagger": "ner_wnut16_elmo", "classifier": "polarity_glove_elmo", "word-sense": "wsd_wordnet_nearest",
           "classifier-amp": "polarity_glove_elmo_amp"}
GOLD = {"tagging": "tags", "classification": "label", "wsd": "sense"}


def cli(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    done = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", *args], capture_output=True, text=True,
                          timeout=1800, env=env)
    if done.returncode != 0:
        raise SystemExit(f"elmo-tasks {' '.join(args[:2])} failed (exit {done.returncode}): {done.stderr.strip()[-400:]}")
    return done


def test_items(config_path: Path, overrides: dict[str, Any], out: Path) -> list[dict[str, Any]]:
    """The run's test split as input objects with gold labels, written to ``out`` as JSON lines."""
    test = load_splits(load_config(config_path, overrides).dataset)["test"]
    keep = ("tokens", "tags", "label", "target", "lemma", "pos", "sense")
    items = [{k: row[k] for k in keep if k in row} for row in test]
    out.write_text("".join(json.dumps(item, ensure_ascii=False) + "\n" for item in items), encoding="utf-8")
    return items


def wsd_items(model: TaskModel, texts: list[str]) -> list[dict[str, Any]]:
    """Raw sentences as word-sense inputs: the first token whose lower-cased form is a lemma the model
    has training senses for (nouns first), taken as its own lemma (no morphology: enough to compare)."""
    out = []
    for text in texts:
        tokens = tokenize(text)
        for pos in ("n", "v", "a", "r"):
            hit = next((i for i, t in enumerate(tokens) if f"{t.lower()}%{pos}" in model.parts.task.candidates), None)
            if hit is not None:
                out.append({"tokens": tokens, "target": hit, "lemma": tokens[hit].lower(), "pos": pos})
                break
    return out


def differences(a: dict[str, float], b: dict[str, float]) -> dict[str, float]:
    return {k: abs(a[k] - b[k]) for k in b if k in a}


def check_run(name: str, args: argparse.Namespace, texts: list[str]) -> dict[str, Any]:
    config_path, overrides = RUNS[name]
    run = args.runs / FOLDERS[name]
    metrics = finished_run(config_path, overrides, run, args.threads)
    row: dict[str, Any] = {"run": str(run), "config": str(config_path.relative_to(ROOT)), "set": overrides,
                           "precision": metrics.get("precision"), "main_metric": metrics["main_metric"],
                           "test": metrics["test"]}
    items = test_items(config_path, overrides, args.runs / f"{name}.test.jsonl")
    # 1. predict --evaluate on the test split vs metrics.json
    done = cli("predict", str(run), str(args.runs / f"{name}.test.jsonl"), "--format", "jsonl", "--evaluate",
               "--out", str(args.runs / f"{name}.test.predicted.jsonl"), "--threads", str(args.threads), "--quiet")
    evaluated = json.loads(done.stdout.strip().splitlines()[-1])
    row["evaluate"] = evaluated
    row["evaluate_equals_metrics"] = evaluated == metrics["test"]
    row["evaluate_abs_difference"] = differences(evaluated, metrics["test"])
    # 2. TaskModel.predict on the test split vs predictions/test.jsonl
    model = TaskModel.load(run)
    results = model.predict([{k: v for k, v in item.items() if k != GOLD[model.task]} for item in items])
    saved = [json.loads(line)["pred"] for line in (run / "predictions" / "test.jsonl").read_text().splitlines()]
    mine = [r[GOLD[model.task]] for r in results]
    row["test_sentences"] = len(saved)
    row["predictions_differing_from_run"] = sum(a != b for a, b in zip(mine, saved)) + abs(len(mine) - len(saved))
    # 3. the archive vs the run folder on raw text no split contains
    archive = args.runs / f"{FOLDERS[name]}.tar.gz"
    archive.unlink(missing_ok=True)
    cli("package", str(run), str(archive))
    packed, fresh = TaskModel.load(archive), TaskModel.load(run)  # both fresh: no token cache of earlier text
    raw = wsd_items(model, texts) if model.task == "wsd" else texts
    ours, theirs = fresh.predict(raw), packed.predict(raw)
    row["raw_inputs"] = len(raw)
    row["archive_results_differing"] = sum(a != b for a, b in zip(ours, theirs))
    # the same model after the test split: the biLM's token cache holds vectors encoded among other tokens
    row["after_other_text"] = result_gap(model.predict(raw), ours)
    row["archive_bytes"] = archive.stat().st_size
    if model.task == "wsd":
        row["raw_answers_with_gloss"] = sum(r.get("gloss") is not None for r in ours)
        row["raw_backoff"] = sum(r["backoff"] for r in ours)
    if "glove" in model.features:
        row["float16_vs_float32_glove"] = glove_precision(run, raw, ours)
    return row


def result_gap(first: list[dict[str, Any]], second: list[dict[str, Any]]) -> dict[str, Any]:
    """How two result lists differ: whole results, answers (tags, label, sense), largest probability gap."""
    def answer(r: dict[str, Any]) -> Any:
        return r.get("tags", r.get("label", r.get("sense")))

    def probabilities(r: dict[str, Any]) -> list[float]:
        if "tag_probabilities" in r:
            return r["tag_probabilities"]
        if "probabilities" in r:
            return [r["probabilities"][k] for k in sorted(r["probabilities"])]
        return [r["score"]] if r.get("score") is not None else []

    gap = max((abs(x - y) for a, b in zip(first, second) for x, y in zip(probabilities(a), probabilities(b))),
              default=0.0)
    return {"results_differing": sum(a != b for a, b in zip(first, second)),
            "answers_differing": sum(answer(a) != answer(b) for a, b in zip(first, second)),
            "max_probability_difference": round(gap, 7)}


def glove_precision(run: Path, raw: list[Any], ours: list[dict[str, Any]]) -> dict[str, Any]:
    """The same model with the GloVe words no split had in float32 (as read) instead of float16."""
    parts = from_run_folder(run)
    source = parts.config["features"]["glove"]["source"]
    words, vectors = load_glove_table(source)
    row_of = {w: i for i, w in enumerate(words)}
    exact = vectors[[row_of[w] for w in parts.glove.extra_words]].astype(np.float32)
    parts.glove = dataclasses.replace(parts.glove, extra_vectors=exact)
    return result_gap(TaskModel(parts).predict(raw), ours)


def load_times(archive: Path, run: Path, threads: int) -> dict[str, float]:
    """Seconds of ``import elmo_tasks`` + ``TaskModel.load`` in fresh processes: the archive into an empty
    cache, the archive again (unpacked), and the run folder."""
    code = ("import time, torch; t = time.perf_counter(); from elmo_tasks import TaskModel; "
            f"torch.set_num_threads({threads}); m = TaskModel.load({{path!r}}); "
            "print(time.perf_counter() - t)")
    out = {}
    with tempfile.TemporaryDirectory() as cache:
        env = {**os.environ, "ELMO_TASKS_CACHE": cache, "HF_DATASETS_OFFLINE": "1"}
        for label, path in (("archive_first", archive), ("archive_again", archive)):
            done = subprocess.run([sys.executable, "-c", code.format(path=str(path))], capture_output=True, text=True,
                                  env=env, timeout=600)
            if done.returncode != 0:
                raise SystemExit(f"loading {path} failed: {done.stderr.strip()[-300:]}")
            out[label] = float(done.stdout.split()[-1])
    done = subprocess.run([sys.executable, "-c", code.format(path=str(run))], capture_output=True, text=True,
                          timeout=600, env={**os.environ, "HF_DATASETS_OFFLINE": "1"})
    if done.returncode != 0:
        raise SystemExit(f"loading {run} failed: {done.stderr.strip()[-300:]}")
    out["run_folder"] = float(done.stdout.split()[-1])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=ROOT / "runs" / "bench" / "predict", help="where the runs are kept")
    parser.add_argument("--sentences", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--only", choices=sorted(RUNS), action="append", help="check only these runs")
    parser.add_argument("--json", type=Path, help="write the figures here too")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    args.runs.mkdir(parents=True, exist_ok=True)
    print(f"# {machine()}; torch {torch.__version__}, {args.threads} threads", flush=True)
    names = args.only or list(RUNS)
    exclude: set[tuple[str, ...]] = set()
    for name in names:
        exclude |= split_token_lists(*RUNS[name])
    exclude |= {tuple(t.lower() for t in tokens) for tokens in exclude}  # polarity's tokens are lower-cased
    texts = raw_sentences(args.sentences, exclude)
    print(f"# {len(texts)} raw sentences, none in a split of these runs: {TEXT_SOURCE}", flush=True)
    rows: dict[str, Any] = {}
    for name in names:
        rows[name] = check_run(name, args, texts)
        print(f"{name}: {json.dumps(rows[name])}", flush=True)
    if "tagger" in rows:
        archive, run = args.runs / f"{FOLDERS['tagger']}.tar.gz", args.runs / FOLDERS["tagger"]
        import tarfile

        with tarfile.open(archive, "r:gz") as tar:
            rows["tagger"]["archive_members"] = {m.name: m.size for m in tar.getmembers()}
        rows["tagger"]["load_seconds"] = load_times(archive, run, args.threads)
        print(f"tagger archive: {json.dumps({k: rows['tagger'][k] for k in ('archive_members', 'load_seconds')})}")
    print()
    print("| run | precision | test metrics.json | --evaluate equal | largest difference | test predictions "
          "differing | raw inputs | archive results differing | archive MiB |")
    print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
    for name, row in rows.items():
        main_key = row["main_metric"]
        print(f"| {name} | {row['precision']} | {main_key} {row['test'][main_key]} | {row['evaluate_equals_metrics']} | "
              f"{max(row['evaluate_abs_difference'].values()):.2g} | {row['predictions_differing_from_run']} of "
              f"{row['test_sentences']} | {row['raw_inputs']} | {row['archive_results_differing']} | "
              f"{row['archive_bytes'] / 2**20:.1f} |")
    for name, row in rows.items():
        if "float16_vs_float32_glove" in row:
            print(f"{name}: GloVe extras float16 vs float32 on {row['raw_inputs']} raw inputs: "
                  f"{json.dumps(row['float16_vs_float32_glove'])}")
    for name, row in rows.items():
        print(f"{name}: the same model after predicting its test split, vs fresh, on {row['raw_inputs']} raw inputs: "
              f"{json.dumps(row['after_other_text'])}")
    if "tagger" in rows:
        print(f"tagger archive load (import + TaskModel.load, fresh process): {json.dumps(rows['tagger']['load_seconds'])}")
    if args.json:
        args.json.write_text(json.dumps({"machine": machine(), "threads": args.threads, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    run_script(main, "predict_truth.py")
