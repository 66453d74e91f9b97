"""The comparison tables: per task GloVe vs GloVe + ELMo (mean ± std over seeds of the test score),
their difference and the relative error reduction; per task and biLM layer the probe scores; per
task the learned layer weights. Built with pandas from :class:`~elmo_tasks.comparison.runs.RunRecord`
s, written as CSV (fractions, full precision) and markdown (percentages, 2 decimals).

Relative error reduction = (err_GloVe - err_ELMo) / err_GloVe with err = 1 - mean test score: the
share of the baseline's errors that adding ELMo removes (the paper's Table 1 column). ``p`` is the
paired bootstrap over test items and seeds of :mod:`~elmo_tasks.comparison.significance`; the
verdict names only differences with p < 0.05, and is not given for a task with fewer than
``MIN_SEEDS`` seeds in an arm, with a run whose dev metric never left 0 (flagged §), or whose arms
had unequal budgets (refused unless ``allow_unequal``, then flagged ‡; :mod:`.budget`). Where a suite
gave grids, each arm's point is picked on dev first (:mod:`~elmo_tasks.comparison.selection`) and
only the picked runs are tabulated; ``runs.csv`` keeps every run with its ``picked`` flag. Folders
are written relative to the report's folder, never as absolute machine paths.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from elmo_tasks.atomic import write_text_atomic
from elmo_tasks.comparison.budget import check_budgets
from elmo_tasks.comparison.notes import cut_off_note, flag_notes, shown_path
from elmo_tasks.comparison.runs import (
    GLOVE,
    GLOVE_ELMO,
    PROBE,
    SETTING_TITLES,
    RunRecord,
)
from elmo_tasks.comparison.selection import (
    check_equal_grids,
    describe_values,
    has_grid,
    select_on_dev,
)
from elmo_tasks.comparison.significance import LEVEL, MIN_SEEDS, RESAMPLES, task_bootstrap
from elmo_tasks.errors import UserError

RUN_COLUMNS = ["task", "setting", "layer", "grid_point", "grid_values", "seed", "metric", "dev", "test", "picked",
               "best_epoch", "epochs_run", "epochs_cap", "cut_off", "dev_never_scored", "train_seconds",
               "total_seconds", "config_name", "run_dir"]


def runs_frame(records: Sequence[RunRecord], picked: Sequence[RunRecord] | None = None,
               base: str | Path | None = None) -> pd.DataFrame:
    """One row per run: task, setting (glove / glove_elmo / probe), probe layer, grid point and its
    values, seed, metric, dev and test score (fractions), whether its grid point was picked on dev,
    best epoch of its cap (``cut_off``: in the last fifth), whether its dev metric stayed 0, seconds,
    folder (relative to ``base``)."""
    chosen = {id(r) for r in (records if picked is None else picked)}
    rows = []
    for r in records:
        row = {c: getattr(r, c) for c in RUN_COLUMNS if hasattr(r, c)}
        row.update(grid_values=describe_values(r.grid_values) if r.grid_point else "", picked=id(r) in chosen,
                   cut_off=r.cut_off, run_dir=shown_path(r.run_dir, base if base is not None else "."))
        rows.append(row)
    return pd.DataFrame(rows, columns=RUN_COLUMNS)


def check_records(records: Sequence[RunRecord]) -> None:
    """One config per (task, setting, layer, grid point), each seed once: else the means would mix
    experiments; both arms of a task with as many grid points."""
    configs: dict[tuple[str, str, str, str], dict[str, str]] = {}
    seeds: dict[tuple[str, str, str, str, int], str] = {}
    check_equal_grids(records)
    for r in records:
        cell = (r.task, r.setting, r.layer, r.grid_point)
        keys = configs.setdefault(cell, {})
        keys.setdefault(r.config_key, r.run_dir)
        if len(keys) > 1:
            first, second = list(keys.values())[:2]
            what = f"{r.task} {SETTING_TITLES[r.setting]}" + (f" layer {r.layer}" if r.layer else "")
            raise UserError(f"{what}: runs of two different configs ({first} and {second}); "
                            "compare the runs of one config per task and setting")
        other = seeds.setdefault((*cell, r.seed), r.run_dir)
        if other != r.run_dir:
            raise UserError(f"{other} and {r.run_dir} are both seed {r.seed} of {r.task} {SETTING_TITLES[r.setting]}"
                            f"{' layer ' + r.layer if r.layer else ''}; give one of them")


def _ordered(tasks: list[str], order: Sequence[str] | None) -> list[str]:
    order = list(order or [])
    return [t for t in order if t in tasks] + sorted(t for t in tasks if t not in order)


def _stats(frame: pd.DataFrame) -> tuple[float, float, int, float]:
    """(mean, sample std or nan for one seed, seeds, dev mean) of the test scores of one cell."""
    if frame.empty:
        return math.nan, math.nan, 0, math.nan
    test = frame["test"].astype(float)
    return float(test.mean()), float(test.std(ddof=1)) if len(test) > 1 else math.nan, len(test), \
        float(frame["dev"].astype(float).mean())


def _no_verdict_reason(arms: list[list[RunRecord]], unequal: str) -> str:
    """Why a task gets no significance figure, or "" when it may have one."""
    counts = [len(a) for a in arms]
    if unequal:
        return f"unequal budgets ({unequal})"
    if min(counts) < MIN_SEEDS:
        return (f"{counts[0]} / {counts[1]} seeds; a significance figure needs at least {MIN_SEEDS} seeds per arm "
                "(with fewer, one lucky seed can decide it)")
    stuck = sum(r.dev_never_scored for a in arms for r in a)
    if stuck:
        return f"{stuck} run(s) whose dev metric never left 0"
    return ""


def comparison_table(records: Sequence[RunRecord], order: Sequence[str] | None = None,
                     resamples: int = RESAMPLES, unequal: dict[str, str] | None = None) -> pd.DataFrame:
    """One row per task that has GloVe or GloVe + ELMo runs (numbers are fractions), from the runs
    given (pass the picked ones: :func:`~elmo_tasks.comparison.selection.select_on_dev`).
    ``resamples=0`` leaves out the bootstrap (p is nan); so do the reasons of :func:`_no_verdict_reason`.
    ``unequal``: task -> the budget keys its arms differ in (``--allow-unequal``)."""
    unequal = unequal or {}
    runs = runs_frame(records)
    runs = runs[runs["setting"].isin([GLOVE, GLOVE_ELMO])]
    rows = []
    for task in _ordered(runs["task"].unique().tolist(), order):
        mine = runs[runs["task"] == task]
        metrics = mine["metric"].unique().tolist()
        if len(metrics) > 1:
            raise UserError(f"{task}: runs score different main metrics ({', '.join(metrics)}); "
                            "GloVe and GloVe + ELMo runs of a task must read the same data")
        g_mean, g_std, g_n, g_dev = _stats(mine[mine["setting"] == GLOVE])
        e_mean, e_std, e_n, e_dev = _stats(mine[mine["setting"] == GLOVE_ELMO])
        err_glove, err_elmo = 1.0 - g_mean, 1.0 - e_mean
        arms = [[r for r in records if r.task == task and r.setting == s] for s in (GLOVE, GLOVE_ELMO)]
        reason = _no_verdict_reason(arms, unequal.get(task, "")) if all(arms) else "an arm has no runs"
        boot = reason or (task_bootstrap(metrics[0], *arms, resamples=resamples) if resamples else "no bootstrap")
        mfs = [r.mfs_test for r in arms[0] + arms[1] if r.mfs_test is not None]
        rows.append({
            "task": task, "metric": metrics[0],
            "glove_mean": g_mean, "glove_std": g_std, "glove_seeds": g_n,
            "glove_elmo_mean": e_mean, "glove_elmo_std": e_std, "glove_elmo_seeds": e_n,
            "difference": e_mean - g_mean,
            "relative_error_reduction": (err_glove - err_elmo) / err_glove if err_glove > 0 else math.nan,
            "p_value": math.nan if isinstance(boot, str) else boot.p_value,
            "ci_low": math.nan if isinstance(boot, str) else boot.low,
            "ci_high": math.nan if isinstance(boot, str) else boot.high,
            "significant": False if isinstance(boot, str) else boot.significant,
            "p_note": boot if isinstance(boot, str) else f"paired bootstrap, {boot.resamples} resamples",
            "mfs_baseline": sum(mfs) / len(mfs) if mfs else math.nan,
            "glove_cut_off": sum(r.cut_off for r in arms[0]), "glove_elmo_cut_off": sum(r.cut_off for r in arms[1]),
            "glove_dev_mean": g_dev, "glove_elmo_dev_mean": e_dev,
            "glove_picked": _picked(arms[0]), "glove_elmo_picked": _picked(arms[1]),
            "glove_dev_never_scored": sum(r.dev_never_scored for r in arms[0]),
            "glove_elmo_dev_never_scored": sum(r.dev_never_scored for r in arms[1]),
            "unequal_budget": unequal.get(task, ""),
        })
    return pd.DataFrame(rows, columns=COMPARISON_COLUMNS)


COMPARISON_COLUMNS = ["task", "metric", "glove_mean", "glove_std", "glove_seeds", "glove_elmo_mean", "glove_elmo_std",
                      "glove_elmo_seeds", "difference", "relative_error_reduction", "p_value", "ci_low", "ci_high",
                      "significant", "p_note", "mfs_baseline", "glove_cut_off", "glove_elmo_cut_off",
                      "glove_dev_mean", "glove_elmo_dev_mean", "glove_picked", "glove_elmo_picked",
                      "glove_dev_never_scored", "glove_elmo_dev_never_scored", "unequal_budget"]


def _picked(runs: Sequence[RunRecord]) -> str:
    return describe_values(runs[0].grid_values) if runs and runs[0].grid_point else ""


def _layer_order(layer: str) -> tuple[int, str]:
    return (int(layer), "") if layer.isdigit() else (1_000, layer)


def probe_table(records: Sequence[RunRecord], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per (task, biLM layer) of probe runs: test score mean ± std over seeds."""
    runs = runs_frame(records)
    runs = runs[runs["setting"] == PROBE]
    rows = []
    for task in _ordered(runs["task"].unique().tolist(), order):
        mine = runs[runs["task"] == task]
        for layer in sorted(mine["layer"].unique().tolist(), key=_layer_order):
            cell = mine[mine["layer"] == layer]
            mean, std, n, dev = _stats(cell)
            rows.append({"task": task, "layer": layer, "metric": cell["metric"].iloc[0], "mean": mean, "std": std,
                         "seeds": n, "dev_mean": dev, "cut_off": int(cell["cut_off"].sum()),
                         "dev_never_scored": int(cell["dev_never_scored"].sum())})
    return pd.DataFrame(rows, columns=["task", "layer", "metric", "mean", "std", "seeds", "dev_mean", "cut_off",
                                       "dev_never_scored"])


def layer_weights_table(records: Sequence[RunRecord], order: Sequence[str] | None = None) -> pd.DataFrame:
    """Per task (and mix: input/output) of the GloVe + ELMo runs: softmax weights s_j and gamma,
    mean and std over seeds; ``learned`` is false for fixed mixes (e.g. the nearest-sense WSD head)."""
    rows = []
    for r in records:
        if r.setting != GLOVE_ELMO or not r.mix:
            continue
        for mix in r.mix:
            row = {"task": r.task, "where": mix.get("where", "input"), "seed": r.seed,
                   "learned": bool(mix.get("trainable", True)), "gamma": float(mix["gamma"])}
            row.update({f"s{j}": float(w) for j, w in enumerate(mix["weights"])})
            rows.append(row)
    if not rows:
        return pd.DataFrame(columns=["task", "where", "learned", "seeds", "gamma_mean", "gamma_std"])
    frame = pd.DataFrame(rows)
    layers = sorted((c for c in frame.columns if c.startswith("s") and c[1:].isdigit()), key=lambda c: int(c[1:]))
    out = []
    for task in _ordered(frame["task"].unique().tolist(), order):
        for where in ("input", "output"):
            cell = frame[(frame["task"] == task) & (frame["where"] == where)]
            if cell.empty:
                continue
            row = {"task": task, "where": where, "learned": bool(cell["learned"].all()), "seeds": len(cell)}
            for column in layers + ["gamma"]:
                values = cell[column].dropna().astype(float)
                row[f"{column}_mean"] = float(values.mean()) if len(values) else math.nan
                row[f"{column}_std"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
            out.append(row)
    return pd.DataFrame(out)


# -- markdown ---------------------------------------------------------------------------------------


def _pct(value: float) -> str:
    return "—" if pd.isna(value) else f"{100 * value:.2f}"


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "—"
    return _pct(mean) if pd.isna(std) else f"{100 * mean:.2f} ± {100 * std:.2f}"


def _seeds(a: int, b: int) -> str:
    return str(a) if a == b else f"{a} / {b}"


def markdown_table(header: list[str], rows: list[list[str]], right: set[int] = frozenset()) -> str:
    """A GitHub pipe table; columns whose index is in ``right`` are right-aligned."""
    def line(cells: list[str]) -> str:
        return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"

    rule = ["---:" if i in right else "---" for i in range(len(header))]
    return "\n".join([line(header), "|" + "|".join(rule) + "|"] + [line(r) for r in rows])


def _p(value: float) -> str:
    return "—" if pd.isna(value) else "<0.001" if value < 0.001 else f"{value:.3f}"


def comparison_markdown(table: pd.DataFrame, smoke: bool = False) -> str:
    """The task table; † marks an arm with a run cut off by its epoch cap, § one with a run whose dev
    metric never left 0, ‡ a task whose arms had unequal budgets."""
    with_mfs = table["mfs_baseline"].notna().any()
    rows = []
    for r in table.itertuples():
        row = [r.task + (" ‡" if r.unequal_budget else ""), r.metric,
               _mean_std(r.glove_mean, r.glove_std) + (" †" if r.glove_cut_off else "")
               + (" §" if r.glove_dev_never_scored else ""),
               _mean_std(r.glove_elmo_mean, r.glove_elmo_std) + (" †" if r.glove_elmo_cut_off else "")
               + (" §" if r.glove_elmo_dev_never_scored else ""),
               "—" if pd.isna(r.difference) else f"{100 * r.difference:+.2f}",
               "—" if pd.isna(r.relative_error_reduction) else f"{100 * r.relative_error_reduction:.1f}%"]
        if not smoke:
            row.append(_p(r.p_value))
        if with_mfs:
            row.append(_pct(r.mfs_baseline))
        rows.append(row + [_seeds(r.glove_seeds, r.glove_elmo_seeds)])
    header = ["Task", "Metric", "GloVe", "GloVe + ELMo", "Difference", "Rel. error reduction"] \
        + ([] if smoke else ["p"]) + (["MFS baseline"] if with_mfs else []) + ["Seeds"]
    return markdown_table(header, rows, right=set(range(2, len(header))))


def verdict_lines(table: pd.DataFrame) -> list[str]:
    """The verdict (only differences significant at LEVEL), then the tasks without a significant one."""
    tested = table[table["p_value"].notna()]
    significant = tested[tested["p_value"] < LEVEL]

    def named(frame: pd.DataFrame) -> str:
        return ", ".join(f"{r.task} ({100 * r.difference:+.2f}, p {_p(r.p_value)})" for r in frame.itertuples())

    ahead, behind = significant[significant["difference"] > 0], significant[significant["difference"] < 0]
    parts = []
    if not ahead.empty:
        parts.append(f"GloVe + ELMo is significantly ahead of GloVe on {named(ahead)}")
    if not behind.empty:
        parts.append(f"significantly behind on {named(behind)}")
    if tested.empty:
        lines = ["No verdict: no task has a significance figure (why, below)."]
    else:
        lines = [f"Verdict (p < {LEVEL}, paired bootstrap over test items and seeds): " + ("; ".join(parts) + "."
                 if parts else "no difference between GloVe and GloVe + ELMo is significant.")]
    rest = tested[~(tested["p_value"] < LEVEL)]
    if not rest.empty:
        lines.append("Not significant at 0.05 (no verdict): " + ", ".join(rest["task"]) + ".")
    for r in table[table["p_value"].isna()].itertuples():
        lines.append(f"No significance figure for {r.task}: {r.p_note}.")
    return lines


def grid_markdown(grid: pd.DataFrame) -> str:
    rows = [[r.task, SETTING_TITLES[r.setting] + (f" layer {r.layer}" if r.layer else ""), r.grid_point, r.values,
             _pct(r.dev_mean), str(r.seeds), "picked" if r.picked else ""] for r in grid.itertuples()]
    return markdown_table(["Task", "Arm", "Point", "Settings", "Dev (mean)", "Seeds", ""], rows, right={4, 5})


def probe_markdown(table: pd.DataFrame) -> str:
    rows = [[r.task, r.layer, r.metric, _mean_std(r.mean, r.std) + (" †" if r.cut_off else "")
             + (" §" if r.dev_never_scored else ""), str(r.seeds)] for r in table.itertuples()]
    return markdown_table(["Task", "biLM layer", "Metric", "Linear probe", "Seeds"], rows, right={3, 4})


def weights_markdown(table: pd.DataFrame) -> str:
    layers = sorted((c[:-5] for c in table.columns if c.startswith("s") and c.endswith("_mean")),
                    key=lambda c: int(c[1:]))
    rows = []
    for r in table.to_dict("records"):
        cells = [f"{r[f'{c}_mean']:.3f}" if not pd.isna(r[f"{c}_mean"]) else "—" for c in layers + ["gamma"]]
        rows.append([r["task"] + ("" if r["where"] == "input" else f" ({r['where']})"),
                     "learned" if r["learned"] else "fixed", *cells, str(r["seeds"])])
    header = ["Task", "Mix"] + [f"s{c[1:]} (layer {c[1:]})" for c in layers] + ["gamma", "Seeds"]
    return markdown_table(header, rows, right=set(range(2, len(header))))


SMOKE_NOTE = ("SMOKE TEST: tiny data and few epochs, to check that every run works end to end. These scores "
              "compare nothing; no significance figures and no verdict are given.")


def report_frames(records: Sequence[RunRecord], order: Sequence[str] | None = None, smoke: bool = False,
                  resamples: int = RESAMPLES, allow_unequal: bool = False,
                  base: str | Path | None = None) -> dict[str, pd.DataFrame]:
    """Every table of the report: comparison, probes, layer_weights, runs, grid (selection on dev first).
    Arms with unequal budgets are an error unless ``allow_unequal``; folders are relative to ``base``."""
    check_records(records)
    picked, grid = select_on_dev(records)
    unequal = check_budgets(picked, allow_unequal)
    return {
        "comparison": comparison_table(picked, order, resamples=0 if smoke else resamples, unequal=unequal),
        "probes": probe_table(picked, order),
        "layer_weights": layer_weights_table(picked, order),
        "runs": runs_frame(records, picked, base),
        "grid": grid,
    }


def report_markdown(records: Sequence[RunRecord], order: Sequence[str] | None = None, note: str = "",
                    smoke: bool = False, frames: dict[str, pd.DataFrame] | None = None,
                    allow_unequal: bool = False) -> str:
    """The whole comparison as markdown: the task table and verdict, the settings picked on dev,
    the probe table and the layer weights."""
    frames = frames or report_frames(records, order, smoke, allow_unequal=allow_unequal)
    parts = [SMOKE_NOTE] if smoke else []
    if note:
        parts.append(note)
    table = frames["comparison"]
    if not table.empty:
        parts.append("Test scores (%; mean ± sample std over seeds, best dev epoch of each run"
                     + ("" if smoke else "; p: paired bootstrap over test items and seeds, two-sided") + "):\n\n"
                     + comparison_markdown(table, smoke))
        if not smoke:
            parts.append("\n".join(verdict_lines(table)))
    if has_grid(frames["grid"]):
        parts.append("Settings picked on dev (each arm's grid point with the best mean dev score over seeds; "
                     "test scores are not consulted):\n\n" + grid_markdown(frames["grid"]))
    probes = frames["probes"]
    if not probes.empty:
        parts.append("Linear probes of single biLM layers (ELMo alone, fixed mix, no other feature):\n\n"
                     + probe_markdown(probes))
    cut = cut_off_note(frames["runs"])
    if cut:
        parts.append(cut)
    parts.extend(flag_notes(frames["runs"], table))
    weights = frames["layer_weights"]
    if not weights.empty:
        parts.append("Layer weights of the GloVe + ELMo runs (softmax-normalised s_j and gamma, mean over seeds):\n\n"
                     + weights_markdown(weights))
    return "\n\n".join(parts) + "\n"


# -- files ------------------------------------------------------------------------------------------


def write_report(records: Sequence[RunRecord], out_dir: str | Path, order: Sequence[str] | None = None,
                 note: str = "", plot: bool = True, smoke: bool = False, allow_unequal: bool = False) -> dict[str, Path]:
    """Write comparison.md, comparison.csv, probes.csv, layer_weights.csv, runs.csv, grid.csv (when
    a grid was searched) and layer_weights.png (when some run learned a mix) into ``out_dir``."""
    # matplotlib (through plot) is imported only when a report is written: it is slow to load
    from elmo_tasks.comparison.plot import plot_layer_weights

    frames = report_frames(records, order, smoke, allow_unequal=allow_unequal, base=out_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    files = {"comparison.csv": "comparison", "probes.csv": "probes", "layer_weights.csv": "layer_weights",
             "runs.csv": "runs"}
    if has_grid(frames["grid"]):
        files["grid.csv"] = "grid"
    for name, key in files.items():
        write_text_atomic(out / name, frames[key].to_csv(index=False, float_format="%.8g"))
        written[name] = out / name
    write_text_atomic(out / "comparison.md", report_markdown(records, order, note, smoke, frames))
    written["comparison.md"] = out / "comparison.md"
    if plot and plot_layer_weights(frames["layer_weights"], out / "layer_weights.png"):
        written["layer_weights.png"] = out / "layer_weights.png"
    return written
