"""bench with per-arm grids: real runs on the vendored WNUT-16 sample (GloVe fixture vectors, the
tiny fixture biLM). Each arm's point is picked on dev; poisoned test labels change the test
scores but never the choice. Also the smoke-test suite, missing data sets and grid errors."""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pandas as pd
import pytest
import yaml

from elmo_tasks import cli
from elmo_tasks.comparison.bench import run_suite
from elmo_tasks.comparison.runs import RunRecord
from elmo_tasks.comparison.selection import select_on_dev
from elmo_tasks.comparison.suite import load_suite
from elmo_tasks.errors import UserError

TASKS = Path(__file__).parent / "fixtures" / "tasks"
SMALL = {"dataset": {"max_examples": 40}, "trainer": {"epochs": 2, "patience": 1, "batch_size": 16, "threads": 1}}
GRID = {"both": {"trainer.lr": [0.003, 0.03]}, "glove": {"head.dropout": [0.0, 0.5]},
        "glove_elmo": {"features.elmo.l2": [0.0, 0.1]}}


def write_yaml(path: Path, data: dict) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(data, sort_keys=False), encoding="utf-8")
    return path


def copy_data(folder: Path, poison: bool) -> None:
    """The WNUT-16 sample; with ``poison`` the test tags are shuffled across the test tokens (the
    same tag inventory, wrong labels everywhere)."""
    shutil.copytree(TASKS / "wnut16", folder)
    if poison:
        lines = (folder / "test.conll").read_text(encoding="utf-8").splitlines()
        tags = [line.split("\t")[1] for line in lines if line.strip()]
        random.Random(7).shuffle(tags)
        shuffled = iter(tags)
        out = [f"{line.split(chr(9))[0]}\t{next(shuffled)}" if line.strip() else line for line in lines]
        (folder / "test.conll").write_text("\n".join(out) + "\n", encoding="utf-8")


def grid_suite(root: Path, poison: bool, **extra) -> Path:
    copy_data(root / "data" / "wnut16", poison)
    files = {s: str(root / "data" / "wnut16" / f"{s}.conll") for s in ("train", "dev", "test")}
    data = {"dataset": {**SMALL["dataset"], "files": files}, "trainer": SMALL["trainer"]}
    head = {"head": {"name": "tagger", "hidden": 8}}
    write_yaml(root / "glove.yaml", {"extends": str(TASKS / "wnut16_glove.yaml"), **data, **head})
    write_yaml(root / "elmo.yaml", {"extends": str(TASKS / "wnut16_elmo.yaml"), **data, **head,
                                    "features": {"elmo": {"cache_dir": str(root.parent / "cache")}}})
    return write_yaml(root / "suite.yaml", {"name": "grid", "seeds": 2, **extra, "tasks": [
        {"name": "wnut16", "glove": "glove.yaml", "glove_elmo": "elmo.yaml", "grid": GRID}]})


@pytest.fixture(scope="module")
def benches(tmp_path_factory):
    """The same grid suite on clean and on poisoned test labels: 2 arms x 4 points x 2 seeds each."""
    root = tmp_path_factory.mktemp("grid")
    out = {}
    for name, poison in (("clean", False), ("poisoned", True)):
        suite = load_suite(grid_suite(root / name, poison))
        out[name] = (suite, run_suite(suite, [0, 1], root / name / "out", log=lambda m: None))
    return root, out


def test_grid_runs_every_point_for_both_arms_and_picks_on_dev(benches):
    root, results = benches
    _suite, result = results["clean"]
    assert result.trained == 16
    out = root / "clean" / "out"
    runs = pd.read_csv(out / "runs.csv")
    assert sorted(runs["grid_point"].unique()) == ["p0", "p1", "p2", "p3"]
    assert (runs.groupby("setting").size() == 8).all()
    point = json.loads((out / "runs" / "wnut16" / "glove_elmo" / "p3" / "seed1" / "grid_point.json").read_text())
    assert point == {"point": "p3", "values": {"trainer.lr": 0.03, "features.elmo.l2": 0.1}}
    grid = pd.read_csv(out / "grid.csv")
    for setting in ("glove", "glove_elmo"):
        mine = runs[runs["setting"] == setting]
        dev = mine.groupby("grid_point")["dev"].mean()
        best = dev.idxmax()
        assert set(mine[mine["picked"]]["grid_point"]) == {best}
        chosen = grid[(grid["setting"] == setting) & grid["picked"]]
        assert chosen["grid_point"].tolist() == [best]
        # the table reports test only for the picked point, with its values
        row = pd.read_csv(out / "comparison.csv").iloc[0]
        assert row[f"{setting}_mean"] == pytest.approx(mine[mine["grid_point"] == best]["test"].mean(), abs=1e-7)
        assert row[f"{setting}_picked"] == chosen["values"].iloc[0]
    markdown = (out / "comparison.md").read_text()
    assert "Settings picked on dev" in markdown and "elmo.l2=" in markdown and "head.dropout=" in markdown


def test_jobs_run_in_parallel_processes_with_the_same_results(benches):
    # --jobs 2: the same runs in two worker processes give the same scores and tables as one process
    root, results = benches
    suite, _ = results["clean"]
    parallel = run_suite(suite, [0, 1], root / "clean" / "parallel", log=lambda m: None, jobs=2, threads=1)
    assert (parallel.trained, parallel.reused) == (16, 0)
    one, two = (pd.read_csv(root / "clean" / name / "runs.csv") for name in ("out", "parallel"))
    assert one[["setting", "grid_point", "seed", "dev", "test"]].equals(two[["setting", "grid_point", "seed", "dev", "test"]])
    assert json.loads((root / "clean" / "parallel" / "bench.json").read_text())["jobs"] == 2
    again = run_suite(suite, [0, 1], root / "clean" / "parallel", log=lambda m: None, jobs=2, threads=1)
    assert (again.trained, again.reused) == (0, 16)


def test_poisoned_test_labels_do_not_change_the_choice(benches):
    root, _ = benches
    grids = {name: pd.read_csv(root / name / "out" / "grid.csv") for name in ("clean", "poisoned")}
    runs = {name: pd.read_csv(root / name / "out" / "runs.csv") for name in ("clean", "poisoned")}
    assert grids["clean"].equals(grids["poisoned"])  # the same dev means and the same picks
    assert runs["clean"]["dev"].tolist() == runs["poisoned"]["dev"].tolist()
    assert runs["clean"]["test"].tolist() != runs["poisoned"]["test"].tolist()  # the poison reached test


def test_selection_reads_dev_only():
    """Unit form of the poison test: any test scores, the same picks; ties go to the earlier point."""
    def record(point: str, seed: int, dev: float, test: float) -> RunRecord:
        return RunRecord(run_dir=f"{point}/{seed}", task="t", setting="glove", seed=seed, metric="accuracy",
                         test=test, dev=dev, grid_point=point, grid_values={"trainer.lr": point})

    devs = {"p0": [0.70, 0.72], "p1": [0.75, 0.69], "p2": [0.71, 0.73]}  # means 0.71, 0.72, 0.72
    picks = []
    for tests in ([0.1, 0.9, 0.5], [0.9, 0.1, 0.2], [0.0, 0.0, 1.0]):
        records = [record(p, s, devs[p][s], tests[i]) for i, p in enumerate(devs) for s in (0, 1)]
        picked, frame = select_on_dev(records)
        picks.append(({r.grid_point for r in picked}, frame["picked"].tolist()))
    assert picks[0] == picks[1] == picks[2] == ({"p1"}, [False, True, False])


def test_smoke_suite_gives_no_verdict(benches, tmp_path):
    root, results = benches
    suite, _ = results["clean"]
    text = (root / "clean" / "suite.yaml").read_text()
    smoke = root / "clean" / "smoke.yaml"
    smoke.write_text(text.replace("name: grid", "name: grid\nsmoke: true"), encoding="utf-8")
    again = run_suite(load_suite(smoke), [0, 1], root / "clean" / "out", log=lambda m: None)
    assert again.reused == 16 and again.trained == 0
    markdown = (root / "clean" / "out" / "comparison.md").read_text()
    assert markdown.startswith("SMOKE TEST") and "Verdict" not in markdown and "| p |" not in markdown
    assert pd.isna(pd.read_csv(root / "clean" / "out" / "comparison.csv")["p_value"].iloc[0])
    run_suite(suite, [0, 1], root / "clean" / "out", log=lambda m: None)  # restore the full report


def test_cut_off_runs_are_flagged(benches, tmp_path):
    """One epoch of a cap of one: the best epoch is the last, so every run is flagged."""
    suite_path = grid_suite(tmp_path / "short", poison=False, overrides={"trainer.epochs": 1})
    result = run_suite(load_suite(suite_path), [0], tmp_path / "short" / "out", log=lambda m: None)
    assert all(r.cut_off for r in result.records)
    markdown = (tmp_path / "short" / "out" / "comparison.md").read_text()
    assert "† Best epoch in the last fifth of the epoch cap: wnut16 GloVe (1 of 1 runs, cap 1 epochs)" in markdown
    assert "GloVe + ELMo (1 of 1 runs" in markdown


def test_missing_data_sets_are_named_together(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "empty-cache"))
    configs = Path(__file__).parent.parent / "configs" / "benchmarks"
    suite = write_yaml(tmp_path / "suite.yaml", {"tasks": [
        {"name": "wnut16", "glove": str(configs / "wnut16_glove.yaml"), "glove_elmo": str(configs / "wnut16_glove_elmo.yaml")},
        {"name": "polarity", "glove": str(configs / "polarity_glove.yaml"),
         "glove_elmo": str(configs / "polarity_glove_elmo.yaml")}]})
    assert cli.main(["bench", str(suite), "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "2 data set(s) not prepared" in err
    assert "elmo-tasks data prepare wnut16 polarity" in err and "--prepare" in err
    assert not (tmp_path / "out").exists()


BAD_GRIDS = [
    ({"glove": {"head.dropout": [0.1, 0.2]}}, "tasks[0].grid: 2 point(s) for glove but 1 for glove_elmo"),
    ({"glove": {"features.elmo.l2": [0.1]}}, "tasks[0].grid.glove.features.elmo.l2: ELMo settings belong"),
    ({"both": {"dataset.max_examples": [5]}}, "tasks[0].grid.both.dataset.max_examples: seeds and data sets"),
    ({"both": {"trainer.seed": [5]}}, "tasks[0].grid.both.trainer.seed: seeds and data sets"),
    ({"glove": {"trainer.epochs": [5]}, "glove_elmo": {"trainer.epochs": [5]}},
     "tasks[0].grid.glove.trainer.epochs: the epoch budget"),
    ({"both": {"trainer.lr": 0.1}}, "tasks[0].grid.both.trainer.lr: must be a non-empty list"),
    ({"both": {"trainer.lr": []}}, "tasks[0].grid.both.trainer.lr: must be a non-empty list"),
    ({"neither": {}}, "tasks[0].grid.neither: unknown key"),
    ({"both": {"Trainer": [1]}}, "tasks[0].grid.both.Trainer: must be a dotted config key"),
    ([1], "tasks[0].grid: must be a mapping"),
    ({"both": {"trainer.lr": [0.1]}, "glove": {"trainer.lr": [0.2]}}, "tasks[0].grid.glove.trainer.lr: set twice"),
    ({"glove_elmo": {"features.elmo.l2": ["much"]}},
     "tasks[0].grid.glove_elmo: features.elmo.l2: must be a number, got 'much'"),
    ({"glove": {"head.hidden": [0.5]}}, "tasks[0].grid.glove: head.hidden: must be an integer, got 0.5"),
]


@pytest.mark.parametrize("grid, message", BAD_GRIDS)
def test_bad_grid_is_a_one_line_error_naming_file_and_key(tmp_path, capsys, grid, message):
    grid_suite(tmp_path, poison=False)
    suite = write_yaml(tmp_path / "bad.yaml", {"tasks": [
        {"name": "a", "glove": "glove.yaml", "glove_elmo": "elmo.yaml", "grid": grid}]})
    assert cli.main(["bench", str(suite), "--seeds", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"elmo-tasks: error: {suite}: ")
    assert message in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("change, message", [
    ({"trainer": {"epochs": 9}}, "tasks[0]: trainer.epochs is 2 for glove but 9 for glove_elmo; both arms get the same"),
    ({"trainer": {"lr": 0.5}}, "tasks[0]: trainer.lr is 0.01 for glove but 0.5 for glove_elmo"),
    ({"head": {"dropout": 0.5}}, "tasks[0]: head.dropout is 0.2 for glove but 0.5 for glove_elmo; both arms use the same head"),
])
def test_unequal_budgets_are_refused(tmp_path, change, message):
    grid_suite(tmp_path, poison=False)
    elmo = yaml.safe_load((tmp_path / "elmo.yaml").read_text())
    for section, values in change.items():
        elmo[section] = {**elmo[section], **values}
    write_yaml(tmp_path / "elmo.yaml", elmo)
    with pytest.raises(UserError, match=message.replace("[", r"\[").replace("]", r"\]")):
        load_suite(tmp_path / "suite.yaml")


def test_smoke_key_must_be_a_boolean(tmp_path):
    grid_suite(tmp_path, poison=False, smoke="yes please")
    with pytest.raises(UserError, match=r"suite.yaml: smoke: must be true or false"):
        load_suite(tmp_path / "suite.yaml")


def test_compare_selects_like_bench(benches, tmp_path):
    """compare on a bench's run folders reads each run's grid point and picks as bench did."""
    root, _ = benches
    out = root / "clean" / "out"
    assert cli.main(["compare", str(out / "runs"), "--out", str(tmp_path / "cmp")]) == 0
    assert pd.read_csv(tmp_path / "cmp" / "grid.csv").drop(columns="task").equals(
        pd.read_csv(out / "grid.csv").drop(columns="task"))
    mine, bench = pd.read_csv(tmp_path / "cmp" / "comparison.csv"), pd.read_csv(out / "comparison.csv")
    numbers = ["glove_mean", "glove_elmo_mean", "difference", "p_value", "mfs_baseline"]
    assert mine[numbers].to_numpy() == pytest.approx(bench[numbers].to_numpy(), nan_ok=True)
