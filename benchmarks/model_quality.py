"""The quality of biLM model folders, measured the way the model card reports it, side by side.

    python benchmarks/model_quality.py --model DIR [--model DIR2 ...] [--seeds 3] [--json OUT.json] [--md OUT.md]
        [--include EARLIER.json]   # columns of an earlier run (same held-out text and seeds)

For every model folder (options.json + weights.hdf5; softmax.hdf5 + vocab.txt for the perplexity):

- held-out perplexity (forward, backward, average; full softmax) on the corpus held-out text that
  ``elmo-tasks data corpus`` writes (``--heldout FILE`` for another), through ``elmo-tasks perplexity``;
  where that command is not in this checkout, through the pretraining evaluation code that
  ``benchmarks/bilm_sanity.py`` uses (the output says which). Each model scores its own vocabulary,
  so with different vocabularies the figures compare only roughly: the OOV rate of each is printed.
  The average is also given on the text's part from the first default model's corpus sources and on
  the rest (``heldout.txt`` keeps source order; its ``manifest.json`` counts each source's lines).
- linear probes of layers 0/1/2 on WSJ POS (configs/benchmarks/wsj-pos_probe_layer{0,1,2}.yaml) and
  on WNUT-16 (configs/tasks/ner_wnut16_probe_layer1.yaml, with layer0/layer2 for the others), the
  model swapped in by a generated config that extends the shipped one; each is an ``elmo-tasks run``
  per seed (best dev epoch chosen by the config's metric, test reported), mean ± sample std.
- the "watch" example: cosine of "watch" in "I love to watch TV" vs "I am wearing a wrist watch".
- the OOV rate of the WNUT-16 test tokens (all, and those inside entities) against each vocabulary.

Runs go to a temporary folder; ELMo features are cached where ``elmo-tasks run`` always caches them.
Everything runs with one thread and at lowered priority (the machine's cores are shared).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import yaml

ROOT = Path(__file__).resolve().parents[1]
NICENESS = 10  # the priority everything runs at (the machine's cores are shared)
LAYERS = (0, 1, 2)
# the sources of the corpus the first shipped default model was trained on (its MODEL_CARD.md): the
# held-out text is also scored on their part and on the rest (modern text) separately
OLD_CORPUS_SOURCES = ("gcide", "austen", "kjv", "wordnet-glosses", "carroll")
WATCH = (["I", "love", "to", "watch", "TV"], 3, ["I", "am", "wearing", "a", "wrist", "watch"], 5)


def cache_root() -> Path:
    return Path(os.environ.get("ELMO_TASKS_CACHE", Path.home() / ".cache" / "elmo-tasks"))


@dataclass
class ProbeTask:
    """A probe: one shipped config per layer (the generated config sets the model and ``fixed: layerK``)."""

    name: str
    label: str
    configs: dict[int, Path]
    metrics: tuple[str, ...]
    prepared: str | None = None  # the `elmo-tasks data prepare` name its data comes from
    overrides: dict[str, Any] = field(default_factory=dict)  # extra config keys (a data slice for tests)


def default_tasks() -> list[ProbeTask]:
    bench, tasks = ROOT / "configs" / "benchmarks", ROOT / "configs" / "tasks"
    return [
        ProbeTask("wsj-pos", "WSJ POS probe", {k: bench / f"wsj-pos_probe_layer{k}.yaml" for k in LAYERS},
                  ("accuracy",), prepared="wsj-pos"),
        ProbeTask("wnut16", "WNUT-16 probe", {k: tasks / "ner_wnut16_probe_layer1.yaml" for k in LAYERS},
                  ("accuracy", "span_f1"), prepared="wnut16"),
    ]


def cli(args: list[str], **kwargs) -> subprocess.CompletedProcess:
    """``elmo-tasks ARGS`` in a child process of this Python, one thread (it inherits our priority)."""
    env = dict(os.environ, OMP_NUM_THREADS="1", MKL_NUM_THREADS="1", HF_DATASETS_OFFLINE="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
    return subprocess.run([sys.executable, "-m", "elmo_tasks.cli", *args], env=env,
                          check=False, capture_output=True, text=True, **kwargs)


def checked(proc: subprocess.CompletedProcess, what: str) -> str:
    if proc.returncode != 0:
        raise RuntimeError(f"{what} failed (exit {proc.returncode}):\n{proc.stderr[-3000:]}")
    return proc.stdout


# -- perplexity ------------------------------------------------------------------------------------


def perplexity(model: Path, text: Path) -> dict[str, Any]:
    """Forward/backward/average perplexity, full softmax; None values when the model has no softmax."""
    if not (model / "softmax.hdf5").is_file() or not (model / "vocab.txt").is_file():
        return {"forward": None, "backward": None, "average": None, "how": "no softmax.hdf5 + vocab.txt"}
    proc = cli(["perplexity", str(text), "--model", str(model), "--device", "cpu", "--quiet"])
    if proc.returncode == 0:
        out = json.loads(proc.stdout.strip().splitlines()[-1])
        return {k: out[k] for k in ("forward", "backward", "average", "tokens")} | {"how": "elmo-tasks perplexity"}
    if "invalid choice: 'perplexity'" not in proc.stderr:
        checked(proc, f"elmo-tasks perplexity {text} --model {model}")
    return _perplexity_by_evaluate(model, text)


def _perplexity_by_evaluate(model: Path, text: Path, rows: int = 64) -> dict[str, Any]:
    """The scoring path of benchmarks/bilm_sanity.py (elmo_tasks.pretrain.evaluate), for checkouts
    without ``elmo-tasks perplexity``: 64 stateful rows, the model's own unroll length."""
    import torch

    from elmo_tasks.bilm.weights import load_bilm_dir
    from elmo_tasks.pretrain.corpus import TypeTable, encode_files
    from elmo_tasks.pretrain.evaluate import (
        bilm_perplexity,
        heldout_streams,
        zero_states,
    )
    from elmo_tasks.pretrain.softmax import SOFTMAX_NAME, load_softmax
    from elmo_tasks.pretrain.vocab import Vocabulary
    from elmo_tasks.pretrain.windows import run_windows

    options = json.loads((model / "options.json").read_text())
    vocab, softmax, bilm = Vocabulary.load(model / "vocab.txt"), load_softmax(model / SOFTMAX_NAME), load_bilm_dir(model)
    per_sentence = options.get("state_mode", "stateful") == "per_sentence"
    types = TypeTable()
    held = encode_files([str(text)], types)
    char_table, cpu = types.char_table(), torch.device("cpu")
    streams = heldout_streams(held, vocab.target_map(types), rows, int(options.get("unroll_steps", 20)), per_sentence, None)
    n = streams.fwd_inputs.shape[0]
    result = bilm_perplexity(lambda batch, states: run_windows(bilm, char_table, batch, states, 0.0, cpu), softmax,
                             streams, (zero_states(bilm, n, cpu), zero_states(bilm, n, cpu)), per_sentence, cpu)
    return {"forward": result.forward, "backward": result.backward, "average": result.average, "tokens": result.tokens,
            "how": "pretrain.evaluate (bilm_sanity.py's path; no `elmo-tasks perplexity` in this checkout)"}


def heldout_parts(heldout: Path, folder: Path) -> dict[str, dict[str, Any]]:
    """The held-out text cut into the old corpus's sources and the others, as files under ``folder``
    (``heldout.txt`` keeps source order and ``manifest.json`` beside it counts each source's
    sentences); {} when there is no manifest that matches the file."""
    manifest = heldout.parent / "manifest.json"
    lines = heldout.read_text(encoding="utf-8").splitlines()
    if not manifest.is_file():
        return {}
    sources = json.loads(manifest.read_text(encoding="utf-8")).get("sources", {})
    counts = [(name, info.get("heldout_sentences", 0)) for name, info in sources.items()]
    if sum(c for _, c in counts) != len(lines):
        return {}
    parts: dict[str, dict[str, Any]] = {}
    start = 0
    for name, count in counts:
        label = "old-corpus sources" if name in OLD_CORPUS_SOURCES else "other sources"
        part = parts.setdefault(label, {"sources": [], "lines": []})
        part["sources"].append(name)
        part["lines"] += lines[start:start + count]
        start += count
    folder.mkdir(parents=True, exist_ok=True)
    for label, part in parts.items():
        part["path"] = folder / f"heldout_{label.split()[0]}.txt"
        part["path"].write_text("\n".join(part.pop("lines")) + "\n", encoding="utf-8")
    return parts


# -- vocabulary coverage ---------------------------------------------------------------------------


def load_vocab(model: Path) -> set[str] | None:
    path = model / "vocab.txt"
    if not path.is_file():
        return None
    return {line.rstrip("\n") for line in path.read_text(encoding="utf-8").splitlines()} - {"<S>", "</S>", "<UNK>"}


def read_tagged(path: Path) -> list[tuple[list[str], list[str]]]:
    """Sentences of a prepared ``.jsonl`` (tokens, tags) or a CoNLL file (token TAB tag, blank line between)."""
    if path.suffix == ".jsonl":
        rows = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
        return [(r["tokens"], r["tags"]) for r in rows]
    sentences, tokens, tags = [], [], []
    for line in path.read_text(encoding="utf-8").splitlines() + [""]:
        if line.strip():
            parts = line.split("\t") if "\t" in line else line.split()
            tokens.append(parts[0])
            tags.append(parts[-1])
        elif tokens:
            sentences.append((tokens, tags))
            tokens, tags = [], []
    return sentences


def oov_rates(vocab: set[str] | None, heldout: list[str], tagged: list[tuple[list[str], list[str]]]) -> dict[str, Any]:
    """Shares of held-out tokens, tagged-test tokens and tagged-test entity tokens (tag != O) outside ``vocab``."""
    if vocab is None:
        return {"vocab_size": None, "heldout": None, "test_tokens": None, "test_entity_tokens": None}

    def rate(tokens: list[str]) -> float | None:
        return sum(t not in vocab for t in tokens) / len(tokens) if tokens else None

    words = [t for tokens, _ in tagged for t in tokens]
    entities = [t for tokens, tags in tagged for t, g in zip(tokens, tags) if g != "O"]
    return {"vocab_size": len(vocab) + 3, "heldout": rate(heldout), "test_tokens": rate(words),
            "test_entity_tokens": rate(entities)}


# -- the watch example -----------------------------------------------------------------------------


def watch_cosines(model: Path) -> list[float]:
    """Per layer, the cosine of "watch" (verb) vs "watch" (noun) in the model's ELMo layers."""
    from elmo_tasks.embedder import Embedder

    first, i, second, j = WATCH
    a, b = Embedder.from_dir(model).embed_batch([first, second])
    return [float(np.dot(a[k, i], b[k, j]) / (np.linalg.norm(a[k, i]) * np.linalg.norm(b[k, j]))) for k in range(a.shape[0])]


# -- probes ----------------------------------------------------------------------------------------


def probe_config(task: ProbeTask, layer: int, model: Path, folder: Path) -> Path:
    data = {"extends": str(task.configs[layer].resolve()), "name": f"{task.name}_probe_layer{layer}",
            "features": {"elmo": {"model": str(model.resolve()), "fixed": f"layer{layer}"}}}
    for dotted, value in task.overrides.items():
        parent = data
        *keys, last = dotted.split(".")
        for key in keys:
            parent = parent.setdefault(key, {})
        parent[last] = value
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{task.name}_layer{layer}.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def run_probe(task: ProbeTask, layer: int, model: Path, seeds: list[int], folder: Path,
              log: Callable[[str], None]) -> dict[str, Any]:
    config = probe_config(task, layer, model, folder)
    runs = []
    for seed in seeds:
        out = folder / f"{task.name}_layer{layer}" / f"seed{seed}"
        checked(cli(["run", str(config), "--seed", str(seed), "--out", str(out), "--quiet", "--threads", "1"]),
                f"elmo-tasks run {config} --seed {seed}")
        metrics = json.loads((out / "metrics.json").read_text())
        runs.append({"seed": seed, "test": metrics["test"], "dev": metrics["dev"], "main_metric": metrics["main_metric"],
                     "best_epoch": metrics["best_epoch"], "epochs_run": metrics["epochs_run"],
                     "seconds": metrics["total_seconds"]})
        log(f"  {task.name} layer {layer} seed {seed}: test " +
            ", ".join(f"{m} {metrics['test'][m]:.4f}" for m in task.metrics) + f" ({metrics['total_seconds']:.0f} s)")
    summary = {}
    for m in task.metrics:
        values = np.array([r["test"][m] for r in runs], dtype=float)
        summary[m] = {"mean": float(values.mean()), "std": float(values.std(ddof=1)) if len(values) > 1 else None,
                      "values": values.tolist()}
    return {"config": str(task.configs[layer]), "runs": runs, "test": summary}


def prepare_data(tasks: list[ProbeTask], log: Callable[[str], None]) -> None:
    for task in tasks:
        if task.prepared and not (cache_root() / "datasets" / task.prepared / "manifest.json").is_file():
            log(f"elmo-tasks data prepare {task.prepared}")
            checked(cli(["data", "prepare", task.prepared]), f"elmo-tasks data prepare {task.prepared}")


def evaluate_model(model: Path, seeds: list[int], tasks: list[ProbeTask], heldout: Path, tagged_test: Path,
                   workdir: Path, parts: dict[str, dict[str, Any]],
                   log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> dict[str, Any]:
    """Every figure of the table for one model folder (probe runs go under ``workdir``)."""
    start = time.perf_counter()
    options = json.loads((model / "options.json").read_text())
    lstm = options.get("lstm", {})
    vocab = load_vocab(model)
    heldout_tokens = heldout.read_text(encoding="utf-8").split()
    result: dict[str, Any] = {"model": str(model), "shape": {"cells": lstm.get("dim"), "projection": lstm.get("projection_dim")},
                              "oov": oov_rates(vocab, heldout_tokens, read_tagged(tagged_test)), "seconds": {}}
    log(f"{model}: perplexity on {heldout}")
    t = time.perf_counter()
    result["perplexity"] = perplexity(model, heldout)
    result["perplexity_parts"] = {label: perplexity(model, part["path"]) for label, part in parts.items()}
    result["seconds"]["perplexity"] = round(time.perf_counter() - t, 1)
    result["watch"] = watch_cosines(model)
    result["probes"] = {}
    for task in tasks:
        t = time.perf_counter()
        result["probes"][task.name] = {str(k): run_probe(task, k, model, seeds, workdir, log) for k in sorted(task.configs)}
        result["seconds"][task.name] = round(time.perf_counter() - t, 1)
    result["seconds"]["total"] = round(time.perf_counter() - start, 1)
    return result


# -- the table -------------------------------------------------------------------------------------


def _pct(value: float | None) -> str:
    return "n/a" if value is None else f"{100 * value:.1f}%"


def _mean_std(summary: dict[str, Any]) -> str:
    mean, std = 100 * summary["mean"], summary["std"]
    return f"{mean:.1f}" if std is None else f"{mean:.1f} ± {100 * std:.1f}"


def _ppl(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.1f}"


def render_table(results: list[dict[str, Any]], tasks: list[ProbeTask], context: dict[str, Any]) -> str:
    """One markdown table, a column per model, then the notes that say how to read it."""
    names = [Path(r["model"]).name for r in results]
    if len(set(names)) < len(names):
        names = [r["model"] for r in results]
    rows: list[tuple[str, list[str]]] = [
        ("shape (LSTM cells / projection)", [f"{r['shape']['cells']} / {r['shape']['projection']}" for r in results]),
        ("softmax vocabulary", [str(r["oov"]["vocab_size"] or "none") for r in results]),
        ("held-out OOV rate (vs its vocabulary)", [_pct(r["oov"]["heldout"]) for r in results]),
    ]
    for direction in ("forward", "backward", "average"):
        rows.append((f"held-out perplexity, {direction}", [_ppl(r["perplexity"][direction]) for r in results]))
    for label, part in context.get("heldout_parts", {}).items():
        rows.append((f"held-out perplexity, average, {label} ({part['tokens']:,} tokens)",
                     [_ppl(r["perplexity_parts"][label]["average"]) for r in results]))
    metric_names = {"accuracy": "test token accuracy", "span_f1": "test span F1"}
    for task in tasks:
        for metric in task.metrics:
            for k in sorted(task.configs):
                rows.append((f"{task.label}, layer {k}: {metric_names.get(metric, metric)}",
                             [_mean_std(r["probes"][task.name][str(k)]["test"][metric]) for r in results]))
    for k in range(max(len(r["watch"]) for r in results)):
        rows.append((f"'watch' cosine (TV vs wrist), layer {k}",
                     [f"{r['watch'][k]:.3f}" if k < len(r["watch"]) else "n/a" for r in results]))
    rows.append(("WNUT-16 test tokens OOV", [_pct(r["oov"]["test_tokens"]) for r in results]))
    rows.append(("WNUT-16 test entity tokens OOV", [_pct(r["oov"]["test_entity_tokens"]) for r in results]))
    rows.append(("wall time of this column", [f"{r['seconds']['total'] / 60:.1f} min" for r in results]))
    lines = ["| | " + " | ".join(names) + " |", "| --- |" + " ---: |" * len(names)]
    lines += [f"| {label} | " + " | ".join(cells) + " |" for label, cells in rows]
    held = context["heldout"]
    hows = sorted({r["perplexity"]["how"] for r in results})
    lines += [
        "",
        f"- Held-out text: `{held['path']}` ({held['sentences']:,} sentences, {held['tokens']:,} tokens, "
        f"sha256 {held['sha256'][:16]}…). Perplexity: full softmax over each model's own vocabulary, "
        f"`<UNK>` being one of its words, every target; computed by {'; '.join(hows)}. "
        "**Models with different vocabularies are comparable only roughly** (a larger vocabulary makes "
        "more, and rarer, targets; compare the OOV rates), and a model may have trained on sentences of "
        "this text if its corpus was split differently. "
        + " ".join(f"*{label}*: {', '.join(p['sources'])}." for label, p in context.get("heldout_parts", {}).items()),
        (f"- Probes: `elmo-tasks run` of the shipped probe configs with the model swapped in, seeds "
         f"{', '.join(map(str, context['seeds']))}; the epoch is chosen on dev by each config's metric "
         "(WSJ POS: accuracy; WNUT-16: span F1), test reported as mean ± sample std in %."),
        (f"- OOV: share of whitespace tokens not in the model's vocab.txt (case-sensitive); WNUT-16 test = "
         f"`{context['tagged_test']}`, entity tokens = tag other than O."),
        (f"- WNUT-16 test tokens tagged O: {_pct(context.get('tagged_test_o_share'))}, the token accuracy of "
         "tagging everything O: the probes' token accuracy sits near it, so span F1 is what tells models apart."),
    ]
    return "\n".join(lines) + "\n"


def describe_text(path: Path) -> dict[str, Any]:
    text = path.read_bytes()
    lines = [line for line in text.decode("utf-8").splitlines() if line.strip()]
    return {"path": str(path), "sentences": len(lines), "tokens": sum(len(line.split()) for line in lines),
            "sha256": hashlib.sha256(text).hexdigest()}


def measure(models: list[Path], seeds: int, tasks: list[ProbeTask], heldout: Path, tagged_test: Path,
            log: Callable[[str], None] = lambda m: print(m, file=sys.stderr)) -> tuple[dict[str, Any], str]:
    """All models' figures (JSON-ready) and the markdown table."""
    prepare_data(tasks, log)
    tags = [t for _, sentence_tags in read_tagged(tagged_test) for t in sentence_tags]
    context = {"heldout": describe_text(heldout), "seeds": list(range(seeds)), "tagged_test": str(tagged_test),
               "tagged_test_o_share": sum(t == "O" for t in tags) / max(len(tags), 1)}
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="model_quality_") as tmp:
        parts = heldout_parts(heldout, Path(tmp) / "heldout")
        context["heldout_parts"] = {label: {"sources": p["sources"]} | describe_text(p["path"]) for label, p in parts.items()}
        results = [evaluate_model(m, context["seeds"], tasks, heldout, tagged_test, Path(tmp) / f"model{i}", parts, log)
                   for i, m in enumerate(models)]
    context["seconds"] = round(time.perf_counter() - start, 1)
    return {"context": context, "models": results}, render_table(results, tasks, context)


def load_earlier(path: Path, seeds: int, heldout: Path) -> dict[str, Any]:
    """An earlier run's JSON, checked to be measured the same way (held-out text, seeds)."""
    from elmo_tasks.errors import UserError

    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        context = data["context"]
        same_text = context["heldout"]["sha256"] == describe_text(heldout)["sha256"]
        same_seeds = context["seeds"] == list(range(seeds))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise UserError(f"--include {path}: not a model_quality.py --json file ({exc})") from None
    if not same_text or not same_seeds:
        raise UserError(f"--include {path}: measured on another held-out text or other seeds "
                        f"(seeds {context['seeds']}); run its models again with this command")
    return data


def main(argv: list[str] | None = None) -> int:
    from elmo_tasks.atomic import write_text_atomic
    from elmo_tasks.errors import UserError, run_script

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", action="append", required=True, metavar="DIR", help="a model folder (repeat for more)")
    parser.add_argument("--seeds", type=int, default=3, help="probe seeds 0..N-1 (default 3)")
    parser.add_argument("--heldout", type=Path, default=cache_root() / "corpus" / "heldout.txt",
                        help="perplexity text (default: the corpus held-out split of `elmo-tasks data corpus`)")
    parser.add_argument("--include", type=Path, action="append", default=[], metavar="JSON",
                        help="also show the models of an earlier run's --json (same held-out text and seeds), "
                        "left of the new ones, e.g. benchmarks/results/model_quality/old_default.json")
    parser.add_argument("--json", type=Path, help="write every figure (per seed too) here")
    parser.add_argument("--md", type=Path, help="write the printed table here")
    args = parser.parse_args(argv)

    def body() -> int:
        models = [Path(m) for m in args.model]
        for m in models:
            if not (m / "options.json").is_file() or not (m / "weights.hdf5").is_file():
                raise UserError(f"--model {m}: not a model folder (it needs options.json and weights.hdf5)")
        if args.seeds < 1:
            raise UserError(f"--seeds must be at least 1, got {args.seeds}")
        if not args.heldout.is_file():
            raise UserError(f"--heldout {args.heldout}: not found (build it with `elmo-tasks data corpus`)")
        import torch

        torch.set_num_threads(1)
        os.nice(max(0, NICENESS - os.nice(0)))  # to 10, not 10 more: children inherit it
        tasks = default_tasks()
        earlier = [load_earlier(path, args.seeds, args.heldout) for path in args.include]
        data, _ = measure(models, args.seeds, tasks, args.heldout, cache_root() / "datasets" / "wnut16" / "test.jsonl")
        data["models"] = [m for e in earlier for m in e["models"]] + data["models"]
        data["included"] = [str(path) for path in args.include]
        table = render_table(data["models"], tasks, data["context"])
        data["command"] = "python benchmarks/model_quality.py " + " ".join(sys.argv[1:] if argv is None else argv)
        table += f"- Wall time: {data['context']['seconds'] / 60:.1f} min for {len(models)} model(s), one thread, nice 10.\n"
        print(table)
        if args.json:
            write_text_atomic(args.json, json.dumps(data, indent=1) + "\n")
        if args.md:
            write_text_atomic(args.md, table)
        return 0

    run_script(body, "model_quality.py")
    return 0


if __name__ == "__main__":
    sys.exit(main())
