"""compare and bench: real runs of the real heads on the vendored WNUT-16 sample (GloVe fixture
vectors, the tiny fixture biLM), then the tables checked against the runs' metrics.json."""

from __future__ import annotations

import json
import os
import shutil
import statistics
from pathlib import Path

import pandas as pd
import pytest
import yaml

from elmo_tasks import cli
from elmo_tasks.comparison.bench import run_suite
from elmo_tasks.comparison.runs import find_runs
from elmo_tasks.comparison.suite import load_suite
from elmo_tasks.comparison.table import check_records
from elmo_tasks.errors import UserError

TASKS = Path(__file__).parent / "fixtures" / "tasks"
SEEDS = [0, 1]
SMALL = {"dataset": {"max_examples": 48}, "trainer": {"epochs": 2, "patience": 1, "batch_size": 16, "threads": 1}}


def write_yaml(path: Path, data: dict) -> Path:
    path.write_text(yaml.safe_dump(data), encoding="utf-8")
    return path


def small_configs(folder: Path, cache: Path) -> dict[str, Path]:
    """Shortened copies of the fixture configs: 48 sentences per split, 2 epochs, a small LSTM."""
    folder.mkdir(parents=True, exist_ok=True)
    head = {"head": {"name": "tagger", "hidden": 8}}
    configs = {
        "glove": write_yaml(folder / "wnut16_glove.yaml",
                            {"extends": str(TASKS / "wnut16_glove.yaml"), **SMALL, **head}),
        "glove_elmo": write_yaml(folder / "wnut16_glove_elmo.yaml",
                                 {"extends": str(TASKS / "wnut16_elmo.yaml"), **SMALL, **head,
                                  "features": {"elmo": {"cache_dir": str(cache)}}}),
    }
    for layer in (0, 1, 2):
        configs[f"probe{layer}"] = write_yaml(folder / f"wnut16_probe_layer{layer}.yaml", {
            "extends": str(TASKS / "wnut16_probe.yaml"), **SMALL,
            "features": {"elmo": {"fixed": f"layer{layer}", "cache_dir": str(cache)}}})
    return configs


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    """One bench of a one-task suite (+ probes of layers 0-2), 2 seeds: 10 real runs."""
    root = tmp_path_factory.mktemp("bench")
    small_configs(root / "configs", root / "cache")  # writes the configs the suite names
    suite_path = write_yaml(root / "suite.yaml", {
        "name": "tiny", "output": str(root / "out"),
        "tasks": [{"name": "wnut16", "glove": "configs/wnut16_glove.yaml", "glove_elmo": "configs/wnut16_glove_elmo.yaml"}],
        "probes": [{"name": "wnut16", "layers": {k: f"configs/wnut16_probe_layer{k}.yaml" for k in (0, 1, 2)}}],
    })
    suite = load_suite(suite_path)
    result = run_suite(suite, SEEDS, root / "out", log=lambda message: None)
    return root, suite, result


def metrics_of(out: Path, folder: str) -> list[dict]:
    return [json.loads((out / "runs" / "wnut16" / folder / f"seed{s}" / "metrics.json").read_text()) for s in SEEDS]


def test_table_numbers_are_the_runs_metrics(bench):
    root, _, result = bench
    out = root / "out"
    assert result.trained == 10 and result.reused == 0
    row = pd.read_csv(out / "comparison.csv").set_index("task").loc["wnut16"]
    glove = [m["test"]["span_f1"] for m in metrics_of(out, "glove")]
    elmo = [m["test"]["span_f1"] for m in metrics_of(out, "glove_elmo")]
    assert row["metric"] == "span_f1"
    assert row["glove_seeds"] == 2 and row["glove_elmo_seeds"] == 2
    assert row["glove_mean"] == pytest.approx(statistics.mean(glove), abs=1e-7)
    assert row["glove_std"] == pytest.approx(statistics.stdev(glove), abs=1e-7)
    assert row["glove_elmo_mean"] == pytest.approx(statistics.mean(elmo), abs=1e-7)
    assert row["glove_elmo_std"] == pytest.approx(statistics.stdev(elmo), abs=1e-7)
    difference = statistics.mean(elmo) - statistics.mean(glove)
    assert row["difference"] == pytest.approx(difference, abs=1e-7)
    err_glove, err_elmo = 1 - statistics.mean(glove), 1 - statistics.mean(elmo)
    assert row["relative_error_reduction"] == pytest.approx((err_glove - err_elmo) / err_glove, abs=1e-7)
    assert row["glove_dev_mean"] == pytest.approx(statistics.mean(m["dev"]["span_f1"] for m in metrics_of(out, "glove")), abs=1e-7)

    markdown = (out / "comparison.md").read_text()
    # § marks an arm with a run whose dev F1 stayed 0 every epoch (these tiny runs often learn nothing)
    stuck = {s: sum(all(h["dev"]["span_f1"] == 0 for h in m["history"]) for m in metrics_of(out, s))
             for s in ("glove", "glove_elmo")}
    assert (row["glove_dev_never_scored"], row["glove_elmo_dev_never_scored"]) == (stuck["glove"], stuck["glove_elmo"])
    marks = {s: (" †" if row[f"{s}_cut_off"] else "") + (" §" if stuck[s] else "") for s in ("glove", "glove_elmo")}
    expected = (f"| wnut16 | span_f1 | {100 * statistics.mean(glove):.2f} ± {100 * statistics.stdev(glove):.2f}{marks['glove']} | "
                f"{100 * statistics.mean(elmo):.2f} ± {100 * statistics.stdev(elmo):.2f}{marks['glove_elmo']} | "
                f"{100 * difference:+.2f} | {100 * (err_glove - err_elmo) / err_glove:.1f}% | — | 2 |")
    assert expected in markdown
    # two seeds per arm: no p and no verdict, and the table says why
    assert pd.isna(row["p_value"]) and "No verdict: no task has a significance figure" in markdown
    assert "No significance figure for wnut16: 2 / 2 seeds; a significance figure needs at least 3 seeds per arm" in markdown
    assert ("§ Dev metric 0 in every epoch" in markdown) == bool(stuck["glove"] or stuck["glove_elmo"])
    assert "elmo-tasks bench" in markdown and "ELMo model: fixture." in markdown  # the command and the biLM used
    assert "fixture is the tiny test model, not a trained model" in markdown
    assert str(root) not in markdown and str(root) not in (out / "runs.csv").read_text()  # no absolute machine paths

    runs = pd.read_csv(out / "runs.csv")
    assert len(runs) == 10 and set(runs["setting"]) == {"glove", "glove_elmo", "probe"}
    assert runs["picked"].all() and runs["grid_point"].isna().all()  # no grid: every run is the one setting
    assert (runs["cut_off"] == (runs["best_epoch"] > 0.8 * runs["epochs_cap"])).all()
    assert (runs["epochs_cap"] == 2).all()
    assert ("† Best epoch in the last fifth" in markdown) == bool(runs["cut_off"].any())


def test_probe_rows_per_layer(bench):
    root, _, _ = bench
    out = root / "out"
    probes = pd.read_csv(out / "probes.csv", dtype={"layer": str})
    assert probes["layer"].tolist() == ["0", "1", "2"]
    for row in probes.itertuples():
        scores = [m["test"]["span_f1"] for m in metrics_of(out, f"probe_layer{row.layer}")]
        assert row.metric == "span_f1" and row.seeds == 2
        assert row.mean == pytest.approx(statistics.mean(scores), abs=1e-7)
        assert row.std == pytest.approx(statistics.stdev(scores), abs=1e-7)
        mixes = [m["mix"][0] for m in metrics_of(out, f"probe_layer{row.layer}")]
        assert all(mix["weights"][int(row.layer)] == pytest.approx(1.0) and not mix["trainable"] for mix in mixes)
    assert "| wnut16 | 1 | span_f1 |" in (out / "comparison.md").read_text()


def test_layer_weights_table_and_plot(bench):
    root, _, _ = bench
    out = root / "out"
    weights = pd.read_csv(out / "layer_weights.csv").set_index("task").loc["wnut16"]
    mixes = [m["mix"][0] for m in metrics_of(out, "glove_elmo")]
    assert weights["learned"] and weights["seeds"] == 2
    for j in range(3):
        assert weights[f"s{j}_mean"] == pytest.approx(statistics.mean(x["weights"][j] for x in mixes), abs=1e-7)
    assert weights["gamma_mean"] == pytest.approx(statistics.mean(x["gamma"] for x in mixes), abs=1e-7)
    # the mix was trained: its weights moved away from the uniform start
    assert max(abs(x["weights"][j] - 1 / 3) for x in mixes for j in range(3)) > 1e-4
    png = (out / "layer_weights.png").read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 5_000
    summary = json.loads((out / "bench.json").read_text())
    assert summary["seeds"] == SEEDS and len(summary["runs"]) == 10 and summary["trained"] == 10


def test_bench_again_reuses_and_resumes(bench, tmp_path):
    root, suite, _ = bench
    out = root / "out"
    before = (out / "comparison.csv").read_text()
    again = run_suite(suite, SEEDS, out, log=lambda message: None)
    assert again.trained == 0 and again.reused == 10
    assert (out / "comparison.csv").read_text() == before
    # a killed bench: one run folder lost its result; only that run is trained again, with the same result
    killed = out / "runs" / "wnut16" / "glove_elmo" / "seed1"
    old = json.loads((killed / "metrics.json").read_text())
    (killed / "metrics.json").unlink()
    resumed = run_suite(suite, SEEDS, out, log=lambda message: None)
    assert resumed.trained == 1 and resumed.reused == 9
    assert json.loads((killed / "metrics.json").read_text())["test"] == old["test"]
    assert (out / "comparison.csv").read_text() == before


def test_compare_command_matches_bench(bench, tmp_path, capsys):
    root, _, _ = bench
    out = root / "out"
    assert cli.main(["compare", str(out / "runs"), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    table = pd.read_csv(tmp_path / "cmp" / "comparison.csv")
    bench_table = pd.read_csv(out / "comparison.csv")
    # compare names the task after its data (the training file's folder, first 48 examples)
    assert table["task"].tolist() == ["wnut16 (first 48)"]
    numbers = [c for c in bench_table.columns if c not in ("task", "metric")]
    assert table[numbers].to_numpy() == pytest.approx(bench_table[numbers].to_numpy(), abs=1e-9, nan_ok=True)
    assert "| wnut16 (first 48) | span_f1 |" in printed
    assert (tmp_path / "cmp" / "layer_weights.png").is_file()
    # one run folder works too
    assert cli.main(["compare", str(out / "runs" / "wnut16" / "glove" / "seed0")]) == 0
    assert "| wnut16 (first 48) | span_f1 |" in capsys.readouterr().out


def test_compare_refuses_two_configs_in_one_cell(bench, tmp_path):
    root, _, _ = bench
    other = write_yaml(tmp_path / "wider.yaml", {"extends": str(root / "configs" / "wnut16_glove.yaml"),
                                                 "head": {"name": "tagger", "hidden": 6}, "trainer": {"epochs": 1}})
    assert cli.main(["run", str(other), "--out", str(tmp_path / "wider" / "seed0"), "--quiet"]) == 0
    records = find_runs([root / "out" / "runs" / "wnut16" / "glove", tmp_path / "wider"])
    with pytest.raises(UserError, match="two different configs"):
        check_records(records)


def test_two_data_sets_with_one_name_get_separate_rows(bench, tmp_path):
    """Runs whose data sets share a task name but differ get a row each, told apart by a digest of their data."""
    root, _, _ = bench
    original = root / "out" / "runs" / "wnut16" / "glove" / "seed0"
    copy = tmp_path / "elsewhere" / "seed0"
    shutil.copytree(original, copy)
    config = yaml.safe_load((copy / "config.yaml").read_text(encoding="utf-8"))
    other_train = tmp_path / "other" / Path(config["dataset"]["files"]["train"]).parent.name / "train.conll"
    config["dataset"]["files"]["train"] = str(other_train)
    (copy / "config.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")
    records = find_runs([original, copy])
    assert records[1].task.startswith("wnut16 (first 48) (data ") and records[0].task.startswith("wnut16 (first 48) (data ")
    assert records[0].task != records[1].task and str(tmp_path) not in records[1].task


def test_compare_errors(tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    assert cli.main(["compare", str(tmp_path / "empty")]) == 2
    assert "no run folders" in capsys.readouterr().err
    assert cli.main(["compare", str(tmp_path / "missing")]) == 2
    assert "no such run folder" in capsys.readouterr().err


BAD_SUITES = [
    ("tasks: [{name: a, glove: g.yaml, glove_elmo: e.yaml, seed: 1}]", "tasks[0].seed: unknown key"),
    ("tasks: [{name: a, glove: g.yaml}]", "tasks[0].glove_elmo: missing"),
    ("tasks: [{name: a, glove: nowhere.yaml, glove_elmo: e.yaml}]", "tasks[0].glove: config file not found"),
    ("tasks: [{name: a, glove: e.yaml, glove_elmo: e.yaml}]", "e.yaml sets features.elmo"),
    ("tasks: [{name: a, glove: g.yaml, glove_elmo: g.yaml}]", "g.yaml has no features.elmo"),
    ("tasks: [{name: a/b, glove: g.yaml, glove_elmo: e.yaml}]", "tasks[0].name: must be a name"),
    ("tasks: [{name: a, glove: g.yaml, glove_elmo: e.yaml}, {name: a, glove: g.yaml, glove_elmo: e.yaml}]",
     "tasks[1].name: 'a' is used twice"),
    ("tasks: []\nprobes: [{name: a, layers: {2: p1.yaml}}]", "p1.yaml probes features.elmo.fixed: layer1, not layer2"),
    ("tasks: []\nprobes: [{name: a, layers: {1: g.yaml}}]", "probes[0].layers.1: "),
    ("tasks: []", "tasks: is empty"),
    ("tasks: []\nprobes: [{name: a, layers: {one: p1.yaml}}]", "probes[0].layers.one: layer numbers"),
    ("seeds: 0\ntasks: [{name: a, glove: g.yaml, glove_elmo: e.yaml}]", "seeds: must be a whole number"),
    ("tasks: {name: a}", "tasks: must be a list"),
    ("name: x", "tasks: missing"),
    ("overrides: {trainer.seed: 3}\ntasks: [{name: a, glove: g.yaml, glove_elmo: e.yaml}]", "overrides.trainer.seed: seeds come"),
    ("overrides: [1]\ntasks: [{name: a, glove: g.yaml, glove_elmo: e.yaml}]", "overrides: must be a mapping"),
    ("overrides: {trainer.epoch: 3}\ntasks: [{name: a, glove: g.yaml, glove_elmo: e.yaml}]", "trainer.epoch: unknown key"),
    ("outputs: here\ntasks: []", "outputs: unknown key"),
    ("tasks: [{name: a, glove: bad.yaml, glove_elmo: e.yaml}]", "head.hiden: unknown key"),
    ("tasks: [\n  {name: a", "line "),
]


@pytest.mark.parametrize("text, message", BAD_SUITES)
def test_bad_suite_is_a_one_line_error_naming_file_and_key(tmp_path, capsys, text, message):
    configs = small_configs(tmp_path / "c", tmp_path / "cache")
    for name, source in (("g.yaml", "glove"), ("e.yaml", "glove_elmo"), ("p1.yaml", "probe1")):
        shutil.copy(configs[source], tmp_path / name)
    write_yaml(tmp_path / "bad.yaml", {"extends": str(configs["glove"]), "head": {"name": "tagger", "hiden": 3}})
    suite = tmp_path / "suite.yaml"
    suite.write_text(text, encoding="utf-8")
    assert cli.main(["bench", str(suite), "--seeds", "1", "--out", str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith(f"elmo-tasks: error: {suite}")
    assert message in err
    assert not (tmp_path / "out").exists()  # nothing ran


def test_a_config_error_inside_a_suite_names_both_files(tmp_path):
    configs = small_configs(tmp_path / "c", tmp_path / "cache")
    bad = write_yaml(tmp_path / "bad.yaml", {"extends": str(configs["glove"]), "head": {"name": "tagger", "hiden": 3}})
    suite = write_yaml(tmp_path / "suite.yaml", {"tasks": [{"name": "a", "glove": "bad.yaml", "glove_elmo": str(configs["glove_elmo"])}]})
    with pytest.raises(UserError) as caught:
        load_suite(suite)
    assert str(caught.value).startswith(f"{suite}: tasks[0].glove: {bad}") and "head.hiden: unknown key" in str(caught.value)


def test_shipped_suites_load():
    """configs/suites/*.yaml and every config they name are valid (no data is read); the quick
    suite runs the offline suite's configs."""
    root = Path(__file__).parent.parent / "configs" / "suites"
    suites = {path.stem: load_suite(path) for path in sorted(root.glob("*.yaml")) if path.stem != "paper"}
    offline = suites["offline"]
    assert [t.name for t in offline.tasks] == ["wsj-pos", "wnut16", "polarity", "uncertainty", "wordnet-wsd",
                                                 "wordnet-wsd-seen", "brown-pos"]
    assert [p.name for p in offline.probes] == ["wsj-pos", "brown-pos"]
    assert list(offline.probes[0].layers) == [0, 1, 2] and offline.seeds == 5 and not offline.overrides
    quick = suites["quick"]
    def pairs(suite):
        return [(t.name, t.glove, t.glove_elmo) for t in suite.tasks]

    assert pairs(quick) == pairs(offline)
    assert quick.probes == offline.probes and quick.smoke and not offline.smoke
    # grids: each arm tries as many settings
    assert all(len(t.points("glove")) == len(t.points("glove_elmo")) for t in offline.tasks)
    assert offline.tasks[0].points("glove_elmo") == [{"head.dropout": 0.2}, {"head.dropout": 0.5}]
    assert offline.tasks[4].points("glove_elmo") == [{"features.elmo.fixed": "layer1"}, {"features.elmo.fixed": "layer2"}]
    assert "extra" in suites
    # paper.yaml needs the user's own PTB files: the error says which file is missing
    with pytest.raises(UserError, match=r"paper.yaml: tasks\[2\].glove: .*ptb-pos_glove.yaml: dataset.files.train: file not found"):
        load_suite(root / "paper.yaml")


@pytest.fixture(scope="module")
def glosses(tmp_path_factory):
    """Supersense classification of WordNet glosses, 3 seeds per arm (p needs 3), plus an ELMo arm of
    another epoch budget: 7 real runs of a few seconds."""
    root = tmp_path_factory.mktemp("glosses")
    base = {"extends": str(TASKS / "glosses_glove.yaml"), "dataset": {"max_examples": 80},
            "trainer": {"epochs": 3, "threads": 1}}
    glove = write_yaml(root / "g.yaml", base)
    elmo = write_yaml(root / "e.yaml", {**base, "features": {"elmo": {"model": "fixture", "cache_dir": str(root / "cache")}}})
    for seed in range(3):
        for arm, config in (("glove", glove), ("glove_elmo", elmo)):
            assert cli.main(["run", str(config), "--seed", str(seed), "--out", str(root / "runs" / arm / f"seed{seed}"),
                             "--quiet"]) == 0
    assert cli.main(["run", str(elmo), "--set", "trainer.epochs=1", "--out", str(root / "short" / "seed0"), "--quiet"]) == 0
    return root


def test_compare_gives_p_and_a_verdict_from_three_seeds(glosses, tmp_path, capsys):
    assert cli.main(["compare", str(glosses / "runs"), "--out", str(tmp_path / "cmp")]) == 0
    printed = capsys.readouterr().out
    row = pd.read_csv(tmp_path / "cmp" / "comparison.csv").set_index("task").loc["glosses (first 80)"]
    assert row["glove_seeds"] == row["glove_elmo_seeds"] == 3
    assert 0 < row["p_value"] <= 1 and row["ci_low"] <= row["difference"] <= row["ci_high"]
    assert row["glove_dev_never_scored"] == row["glove_elmo_dev_never_scored"] == 0
    verdict = next(line for line in printed.splitlines() if line.startswith("Verdict"))
    assert ("glosses" in verdict) == (row["p_value"] < 0.05)
    # the note records the command with the run folders relative to the report's folder, not absolute
    runs = os.path.relpath(glosses / "runs", tmp_path / "cmp")
    assert f"Made by `elmo-tasks compare {runs} --out .` (run folders relative to this folder)" in printed
    assert str(glosses) not in (tmp_path / "cmp" / "comparison.md").read_text()
    assert str(glosses) not in (tmp_path / "cmp" / "runs.csv").read_text()


def test_compare_refuses_unequal_budgets_unless_allowed(glosses, capsys):
    assert cli.main(["compare", str(glosses / "runs" / "glove"), str(glosses / "short")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "different budgets" in err and "trainer.epochs: GloVe 3, GloVe + ELMo 1" in err
    assert "--allow-unequal" in err
    assert cli.main(["compare", str(glosses / "runs" / "glove"), str(glosses / "short"), "--allow-unequal"]) == 0
    printed = capsys.readouterr().out
    assert "| glosses (first 80) ‡ | accuracy |" in printed
    assert "‡ Unequal budgets, tabulated with --allow-unequal: glosses (first 80): trainer.epochs: GloVe 3, GloVe + ELMo 1" in printed
    assert "No significance figure for glosses (first 80): unequal budgets" in printed
