"""``elmo-tasks predict MODEL INPUT``: a trained task model (run folder or archive) on new text.

Input formats: ``text`` (one raw sentence a line, blank lines skipped), ``tokens`` (whitespace-split),
``jsonl`` (objects with ``text`` or ``tokens``, ``target`` for senses, gold labels optional), and
the data readers' ``conll``, ``word_tag``, ``table`` (read with the training config's options).
"""

from __future__ import annotations

import argparse
import json
import sys

from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime
from elmo_tasks.errors import UserError

HELP = "predict with a trained task model (run folder or archive) on a file of sentences"
FORMATS = ("text", "tokens", "jsonl", "conll", "word_tag", "table")


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("model", metavar="MODEL", help="a run folder or a .tar.gz of elmo-tasks package")
    parser.add_argument("input", metavar="INPUT", help="input file ('-' reads standard input)")
    parser.add_argument("--out", metavar="FILE", help="write the results here (atomically) instead of stdout")
    parser.add_argument("--format", choices=FORMATS, default="text", help="input format (default text)")
    parser.add_argument("--output-format", choices=("jsonl", "conll", "tsv"), default="jsonl",
                        help="jsonl (default; one object per input), conll (taggers), tsv (classifiers, taggers)")
    parser.add_argument("--evaluate", action="store_true", help="score against the input's gold labels: the last "
                        "stdout line is one JSON object with the keys of metrics.json's test section")
    parser.add_argument("--batch-size", type=int, default=64, metavar="N", help="sentences per batch (default 64)")
    parser.add_argument("--tokenize", choices=("ptb", "whitespace"), help="how raw text is split (default: as the "
                        "training data was, PTB unless its config said otherwise)")
    add_runtime_arguments(parser)


def read_items(path: str, fmt: str, options: dict) -> list:
    """The input's items (strings, token lists or objects with gold labels)."""
    from pathlib import Path

    from elmo_tasks.data import readers
    from elmo_tasks.embedder import _read_lines

    if fmt in ("text", "tokens"):
        lines = [text for _, text in _read_lines(Path(path)) if text.strip()]
        return lines if fmt == "text" else [line.split() for line in lines]
    if fmt == "jsonl":
        items = []
        for number, text in _read_lines(Path(path)):
            if not text.strip():
                continue
            try:
                items.append(json.loads(text))
            except (ValueError, RecursionError):
                raise UserError(f"{path}, line {number + 1}: not valid JSON") from None
        return items
    if path == "-":
        raise UserError(f"--format {fmt} reads a file, not standard input")
    if not Path(path).read_bytes().strip():
        return []
    reader = getattr(readers, f"read_{fmt}")
    try:
        data = reader(path, **(options if isinstance(options, dict) else {}))
    except TypeError as exc:
        raise UserError(f"--format {fmt}: the training config's dataset.options do not suit this reader ({exc})") from None
    return [dict(row) for row in data]


def write_results(results: list, fmt: str, kind: str, handle) -> None:
    if fmt == "jsonl":
        for result in results:
            handle.write(json.dumps(result, ensure_ascii=False) + "\n")
        return
    if kind == "wsd":
        raise UserError(f"--output-format {fmt} is for taggers and classifiers; use jsonl for word senses")
    for result in results:
        if kind == "classification":
            handle.write(f"{result['label']}\t{result['probabilities'][result['label']]}\n")
        elif fmt == "conll":
            handle.writelines(f"{t}\t{g}\n" for t, g in zip(result["tokens"], result["tags"]))
            handle.write("\n")
        else:
            handle.write(" ".join(result["tokens"]) + "\t" + " ".join(result["tags"]) + "\n")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from elmo_tasks.paths import check_input_file, check_output_file

    if args.batch_size < 1:
        raise UserError(f"--batch-size must be at least 1, got {args.batch_size}")
    if args.input != "-":
        check_input_file(args.input, "input file")
    if not (Path(args.model).is_dir() or Path(args.model).is_file()):
        raise UserError(f"task model not found: {args.model} (give a run folder or a .tar.gz of elmo-tasks package)")
    if args.out:
        check_output_file(args.out, "--out", inputs=[p for p in (args.input, args.model) if p != "-"])
    runtime = apply_runtime(args)
    from elmo_tasks.atomic import atomic_path
    from elmo_tasks.task_model import TaskModel

    model = TaskModel.load(args.model, device=runtime.device)
    if args.output_format != "jsonl" and model.task == "wsd":
        raise UserError(f"--output-format {args.output_format} is for taggers and classifiers; use jsonl for word senses")
    if args.output_format == "conll" and model.task != "tagging":
        raise UserError(f"--output-format conll is for taggers; use tsv or jsonl for a {model.task} model")
    options = (model.parts.config.get("dataset") or {}).get("options") or {}
    items = read_items(args.input, args.format, options)
    examples = model.examples(items, tokenize=args.tokenize)
    if args.evaluate and not examples:
        raise UserError("--evaluate: the input has no examples to score")
    if args.evaluate:  # before the model runs: a missing gold label fails at once
        model.check_gold(examples)
    results = model.predict_examples(examples, args.batch_size, progress=runtime.progress)
    if args.out:
        with atomic_path(args.out) as tmp, open(tmp, "w", encoding="utf-8") as handle:
            write_results(results, args.output_format, model.task, handle)
        runtime.result(f"wrote {len(results)} results to {args.out}")
    else:
        write_results(results, args.output_format, model.task, sys.stdout)
    if args.evaluate:
        print(json.dumps(model.evaluate(examples, results)))
    return 0
