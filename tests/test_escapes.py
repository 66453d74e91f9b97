"""Escapes and modes: run folders stay under runs/ unless asked, outputs get the umask's mode, a
byte-order mark does not end up in the first token; failed runs are marked and kept out of tables."""

from __future__ import annotations

import json
import os
import stat

import h5py
import numpy as np
import pytest
import yaml
from tasks_util import TASK_FIXTURES

from elmo_tasks.cli import main
from elmo_tasks.embedder import FIXTURE_MODEL_DIR, Embedder


@pytest.fixture(scope="module")
def embedder():
    return Embedder.from_dir(FIXTURE_MODEL_DIR)


def test_a_bom_is_stripped_from_embed_file_input(tmp_path, embedder):
    plain, bom = tmp_path / "plain.txt", tmp_path / "bom.txt"
    plain.write_text("Hello world .\nsecond line\n", encoding="utf-8")
    bom.write_bytes("\ufeff".encode("utf-8") + plain.read_bytes())
    for source in (plain, bom):
        embedder.embed_file(source, source.with_suffix(".hdf5"))
    with h5py.File(tmp_path / "plain.hdf5", "r") as a, h5py.File(tmp_path / "bom.hdf5", "r") as b:
        assert np.array_equal(a["0"][()], b["0"][()])
        assert json.loads(b["sentence_to_index"][0]) == {"Hello world .": "0", "second line": "1"}


@pytest.mark.parametrize("mask", [0o022, 0o027])
def test_embed_file_output_gets_the_umask_mode(tmp_path, embedder, mask):
    source = tmp_path / "in.txt"
    source.write_text("a b c\n", encoding="utf-8")
    old = os.umask(mask)
    try:
        embedder.embed_file(source, tmp_path / "out.hdf5")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "out.hdf5").stat().st_mode) == 0o666 & ~mask


def config(tmp_path, **extra):
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump({"extends": str(TASK_FIXTURES / "glosses_glove.yaml"),
                                    "dataset": {"max_examples": 20}, "trainer": {"epochs": 1}, **extra}))
    return path


def test_a_name_inside_runs_is_fine_and_one_leaving_it_is_refused(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    assert main(["run", str(config(tmp_path, name="group/exp")), "--quiet"]) == 0
    assert (tmp_path / "runs" / "group" / "exp" / "seed0" / "metrics.json").is_file()
    capsys.readouterr()
    assert main(["run", str(config(tmp_path, name="../../x"))]) == 2
    assert "outside runs/" in capsys.readouterr().err and not (tmp_path.parent / "x").exists()
    # an explicit output folder or --out is the user's choice
    assert main(["run", str(config(tmp_path, name="../../x")), "--out", str(tmp_path / "mine"), "--quiet"]) == 0


def test_a_failed_run_is_marked_and_left_out_of_compare(tmp_path, capsys):
    good = tmp_path / "runs" / "good"
    assert main(["run", str(config(tmp_path)), "--out", str(good), "--quiet"]) == 0
    broken_dev = tmp_path / "dev.jsonl"
    broken_dev.write_text('{"tokens": ["a"], "label": "person"}\n{"tokens": 1}\n', encoding="utf-8")
    bad = tmp_path / "runs" / "bad"
    assert main(["run", str(config(tmp_path, dataset={"files": {"dev": str(broken_dev)}})), "--out", str(bad),
                 "--quiet"]) == 2
    failed = json.loads((bad / "failed.json").read_text())
    assert "dev.jsonl, line 2" in failed["error"] and not (bad / "metrics.json").exists()
    capsys.readouterr()
    assert main(["compare", str(tmp_path / "runs")]) == 0
    captured = capsys.readouterr()
    assert "left out 1 failed run(s)" in captured.err and str(bad) in captured.err
    assert str(bad) not in captured.out
