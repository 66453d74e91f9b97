"""docs/own-data.md runs as written: the data files and configs it shows are written to an empty
folder and the commands it shows are run there (the real CLI, the shipped default biLM); the reader
options it lists are exactly the readers' options. CI does not install the 76 MB GloVe package, so the
configs' `glove: {source: package}` is pointed at the suite's GloVe table (real glove.6B.50d rows)."""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from pathlib import Path

import pytest

from elmo_tasks.cli import main
from elmo_tasks.data.readers import FILE_FORMATS

PAGE = Path(__file__).parents[1] / "docs" / "own-data.md"
GLOVE = Path(__file__).parent / "fixtures" / "tasks" / "glove.fixture.50d.txt"
BLOCK = re.compile(r"^```(\w+)(?: (\S+))?\n(.*?)^```$", re.S | re.M)


def blocks() -> tuple[dict[str, str], list[list[str]]]:
    """The page's files (a fenced block whose info string names a path) and its commands (bash blocks)."""
    files, commands = {}, []
    for language, path, body in BLOCK.findall(PAGE.read_text(encoding="utf-8")):
        if path:
            files[path] = body
        elif language == "bash":
            commands += [shlex.split(line) for line in body.splitlines() if line.strip() and not line.startswith("#")]
    return files, commands


def test_the_page_shows_a_conll_a_csv_and_a_jsonl_set():
    files, commands = blocks()
    assert {"ner.yaml", "reviews_glove.yaml", "questions.yaml"} <= set(files), sorted(files)
    assert all(command[0] == "elmo-tasks" for command in commands)
    assert any("format: conll" in t for t in files.values()) and any("format: csv" in t for t in files.values())
    assert any("format: jsonl" in t for t in files.values())


def test_every_reader_option_is_on_the_page():
    text = PAGE.read_text(encoding="utf-8")
    for format, (_, options) in FILE_FORMATS.items():
        assert f"`{format}`" in text, format
        for field in dataclasses.fields(options):
            assert f"| `{field.name}` |" in text, f"{format}: option {field.name} is not documented"


@pytest.fixture(scope="module")
def worked(tmp_path_factory):
    """The page's files written out and its commands run in a fresh folder."""
    root = tmp_path_factory.mktemp("own-data")
    files, commands = blocks()
    for path, body in files.items():
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        (root / path).write_text(body.replace("source: package", f"source: {GLOVE}"), encoding="utf-8")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        patch.setenv("ELMO_TASKS_CACHE", str(root / ".cache"))
        for command in commands:
            assert main(command[1:]) == 0, command
    return root


def test_the_examples_train_and_compare(worked, capsys):
    for run, task, metric in (("ner", "my-ner", "span_f1"), ("reviews_glove", "my-reviews", "accuracy"),
                              ("reviews_elmo", "my-reviews", "accuracy"), ("questions", "my-questions", "accuracy")):
        metrics = json.loads((worked / "runs" / run / "seed0" / "metrics.json").read_text())
        assert metrics["main_metric"] == metric and 0 <= metrics["test"][metric] <= 1
        assert metrics["dataset"] == task
    table = (worked / "runs" / "reviews_compare" / "comparison.md").read_text()
    assert "| my-reviews | accuracy |" in table
    assert "No significance figure for my-reviews: 1 / 1 seeds" in table
    assert str(worked) not in table


def test_csv_text_is_split_by_ptb_and_jsonl_text_too(worked):
    """The CSV's raw text went through the PTB tokenizer (the default for table text), JSONL "text" too."""
    from elmo_tasks.experiment import load_config
    from elmo_tasks.training.splits import load_splits

    reviews = load_splits(load_config(worked / "reviews_glove.yaml").dataset)
    assert reviews["train"][0]["tokens"] == ["Loved", "it", ",", "really", "."]
    questions = load_splits(load_config(worked / "questions.yaml").dataset)
    assert questions["train"][5]["tokens"] == ["Where", "'s", "the", "nearest", "bank", "?"]
