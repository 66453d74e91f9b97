"""benchmarks/model_quality.py's core: perplexity, the watch example, OOV rates and the table on the
tiny fixture model and the shipped default model (fast); real probe runs per layer on the WNUT-16
sample, one seed (about a minute of subprocess runs: marked benchmark)."""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path

import pytest
from cli_util import load_benchmark

from elmo_tasks.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
TASKS = ROOT / "tests" / "fixtures" / "tasks"


def load_script():
    return load_benchmark("model_quality")


def test_perplexity_watch_oov_and_table(tmp_path):
    mq = load_script()
    fixture, default = ROOT / "elmo_tasks" / "models" / "tiny_fixture", ROOT / "elmo_tasks" / "models" / "default"
    heldout = ROOT / "tests" / "fixtures" / "pretrain" / "heldout.txt"
    test_file = TASKS / "wnut16" / "test.conll"
    data, table = mq.measure([fixture, default], 1, [], heldout, test_file, log=lambda m: None)

    small, shipped = data["models"]
    assert small["perplexity"]["average"] is None and small["oov"]["vocab_size"] is None  # no softmax, no vocab
    ppl = shipped["perplexity"]
    assert shipped["oov"]["vocab_size"] == 40000
    for direction in ("forward", "backward", "average"):
        assert 5.0 < ppl[direction] < 40000  # a trained LM: far below a uniform guess over its vocabulary
    assert math.isclose(ppl["average"], math.sqrt(ppl["forward"] * ppl["backward"]), rel_tol=0.05)
    assert 0.0 < shipped["oov"]["heldout"] < 0.5
    assert 0.0 < shipped["oov"]["test_tokens"] < shipped["oov"]["test_entity_tokens"] <= 1.0  # names are rarer
    for result in data["models"]:
        assert abs(result["watch"][0] - 1.0) < 1e-5  # layer 0 is context-free
        assert all(-1.0 <= c < 0.9999 for c in result["watch"][1:])  # the LSTM layers see the context
    assert data["context"]["heldout"]["sentences"] == 10

    lines = table.splitlines()
    assert lines[0] == "| | tiny_fixture | default |" and lines[1] == "| --- | ---: | ---: |"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| |")]
    assert all(line.count("|") == 4 for line in rows)
    cells = {line.split(" | ")[0][2:]: line.strip("| ").split(" | ")[1:] for line in rows}
    assert cells["held-out perplexity, average"][0] == "n/a"
    assert float(cells["held-out perplexity, average"][1]) == round(ppl["average"], 1)
    assert cells["softmax vocabulary"] == ["none", "40000"]
    assert [f"'watch' cosine (TV vs wrist), layer {k}" in cells for k in (0, 1, 2)] == [True] * 3
    assert "comparable only roughly" in table
    assert 0.5 < data["context"]["tagged_test_o_share"] < 1.0

    # an earlier run's JSON joins the table only when measured the same way
    saved = tmp_path / "earlier.json"
    saved.write_text(json.dumps(data), encoding="utf-8")
    assert mq.load_earlier(saved, 1, heldout)["models"][1]["perplexity"] == ppl
    for seeds, text in ((3, heldout), (1, test_file)):
        with pytest.raises(UserError, match="another held-out text or other seeds"):
            mq.load_earlier(saved, seeds, text)


@pytest.mark.benchmark
def test_model_quality_on_the_fixture_model(tmp_path):
    mq = load_script()
    model = ROOT / "elmo_tasks" / "models" / "tiny_fixture"
    vocab_model = tmp_path / "with_vocab"  # the fixture model with a small vocabulary, for the OOV rates
    vocab_model.mkdir()
    for name in ("options.json", "weights.hdf5"):
        (vocab_model / name).write_bytes((model / name).read_bytes())
    (vocab_model / "vocab.txt").write_text("<S>\n</S>\n<UNK>\n.\n,\nthe\nI\n@\n", encoding="utf-8")
    task = mq.ProbeTask("sample", "WNUT-16 sample probe", {k: TASKS / "wnut16_probe.yaml" for k in (0, 1, 2)},
                        ("accuracy", "span_f1"), overrides={"trainer.epochs": 1, "dataset.max_examples": 60})
    heldout = ROOT / "tests" / "fixtures" / "pretrain" / "heldout.txt"
    test_file = TASKS / "wnut16" / "test.conll"
    data, table = mq.measure([model, vocab_model], 1, [task], heldout, test_file, log=lambda m: None)

    first, second = data["models"]
    for result in data["models"]:
        assert result["perplexity"]["average"] is None  # no softmax in either folder
        for k in ("0", "1", "2"):
            probe = result["probes"]["sample"][k]
            assert [r["seed"] for r in probe["runs"]] == [0]
            assert 0.0 < probe["test"]["accuracy"]["mean"] <= 1.0
            assert 0.0 <= probe["test"]["span_f1"]["mean"] <= 1.0 and probe["test"]["accuracy"]["std"] is None
        assert abs(result["watch"][0] - 1.0) < 1e-5  # layer 0 is context-free
        assert all(-1.0 <= c < 0.9999 for c in result["watch"][1:])  # the LSTM layers see the context
    # the same weights and seed give the same probe
    assert first["probes"]["sample"]["1"]["test"] == second["probes"]["sample"]["1"]["test"]
    assert first["oov"]["heldout"] is None and first["oov"]["vocab_size"] is None
    oov = second["oov"]
    assert oov["vocab_size"] == 8 and 0.5 < oov["test_tokens"] < 1.0 and oov["test_entity_tokens"] == 1.0
    assert 0.0 < oov["heldout"] < 1.0

    lines = table.splitlines()
    assert lines[0] == "| | tiny_fixture | with_vocab |" and lines[1] == "| --- | ---: | ---: |"
    rows = [line for line in lines if line.startswith("| ") and not line.startswith("| |")]
    assert all(line.count("|") == 4 for line in rows)
    labels = [line.split(" | ")[0][2:] for line in rows]
    for k in (0, 1, 2):
        assert f"WNUT-16 sample probe, layer {k}: test span F1" in labels
        assert f"'watch' cosine (TV vs wrist), layer {k}" in labels
    assert "held-out perplexity, average" in labels and "WNUT-16 test entity tokens OOV" in labels
    assert "comparable only roughly" in table


def test_bad_model_folder_is_one_line_error(tmp_path):
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "model_quality.py"), "--model", str(tmp_path)],
                          check=False, capture_output=True, text=True, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr.strip() == (f"model_quality.py: error: --model {tmp_path}: not a model folder "
                                   "(it needs options.json and weights.hdf5)")


def test_heldout_cut_by_source_with_the_manifest(tmp_path):
    mq = load_script()
    lines = ["a gcide line .", "another gcide line .", "a kjv verse .", "a python doc line .", "a linux doc line ."]
    (tmp_path / "heldout.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    sources = {"gcide": {"heldout_sentences": 2}, "python-doc": {"heldout_sentences": 1},
               "kjv": {"heldout_sentences": 0}, "linux-doc": {"heldout_sentences": 1}}
    (tmp_path / "manifest.json").write_text(json.dumps({"sources": sources}), encoding="utf-8")
    assert mq.heldout_parts(tmp_path / "heldout.txt", tmp_path / "parts") == {}  # 4 counted, 5 lines: no cut
    sources["kjv"]["heldout_sentences"] = 1
    sources = {"gcide": sources["gcide"], "kjv": sources["kjv"], "python-doc": sources["python-doc"],
               "linux-doc": sources["linux-doc"]}
    (tmp_path / "manifest.json").write_text(json.dumps({"sources": sources}), encoding="utf-8")
    parts = mq.heldout_parts(tmp_path / "heldout.txt", tmp_path / "parts")
    assert parts["old-corpus sources"]["sources"] == ["gcide", "kjv"]
    assert parts["old-corpus sources"]["path"].read_text().splitlines() == lines[:3]
    assert parts["other sources"]["path"].read_text().splitlines() == lines[3:]
