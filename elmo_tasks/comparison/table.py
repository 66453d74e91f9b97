"""The comparison tables: per task GloVe vs GloVe + ELMo (mean ± std over seeds of the test score),
their difference and the relative error reduction; per task and biLM layer the probe scores; per
task the learned layer weights. Built with pandas from :class:`~elmo_tasks.comparison.runs.RunRecord`
s, written as CSV (fractions, full precision) and markdown (percentages, 2 decimals).

Relative error reduction = (err_GloVe - err_ELMo) / err_GloVe with err = 1 - mean test score: the
share of the baseline's errors that adding ELMo removes (the paper's Table 1 column).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from elmo_tasks.atomic import write_text_atomic
from elmo_tasks.comparison.runs import GLOVE, GLOVE_ELMO, PROBE, SETTING_TITLES, RunRecord
from elmo_tasks.errors import UserError


def runs_frame(records: Sequence[RunRecord]) -> pd.DataFrame:
    """One row per run: task, setting, layer, seed, metric, dev, test, epochs and seconds, folder."""
    columns = ["task", "setting", "layer", "seed", "metric", "dev", "test", "best_epoch", "epochs_run",
               "train_seconds", "total_seconds", "config_name", "run_dir"]
    return pd.DataFrame([{c: getattr(r, c) for c in columns} for r in records], columns=columns)


def check_records(records: Sequence[RunRecord]) -> None:
    """One config per (task, setting, layer), each seed once: else the means would mix experiments."""
    configs: dict[tuple[str, str, str], dict[str, str]] = {}
    seeds: dict[tuple[str, str, str, int], str] = {}
    for r in records:
        cell = (r.task, r.setting, r.layer)
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


def comparison_table(records: Sequence[RunRecord], order: Sequence[str] | None = None) -> pd.DataFrame:
    """One row per task that has GloVe or GloVe + ELMo runs (numbers are fractions)."""
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
        rows.append({
            "task": task, "metric": metrics[0],
            "glove_mean": g_mean, "glove_std": g_std, "glove_seeds": g_n,
            "glove_elmo_mean": e_mean, "glove_elmo_std": e_std, "glove_elmo_seeds": e_n,
            "difference": e_mean - g_mean,
            "relative_error_reduction": (err_glove - err_elmo) / err_glove if err_glove > 0 else math.nan,
            "glove_dev_mean": g_dev, "glove_elmo_dev_mean": e_dev,
        })
    return pd.DataFrame(rows, columns=["task", "metric", "glove_mean", "glove_std", "glove_seeds", "glove_elmo_mean",
                                       "glove_elmo_std", "glove_elmo_seeds", "difference", "relative_error_reduction",
                                       "glove_dev_mean", "glove_elmo_dev_mean"])


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
                         "seeds": n, "dev_mean": dev})
    return pd.DataFrame(rows, columns=["task", "layer", "metric", "mean", "std", "seeds", "dev_mean"])


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


def comparison_markdown(table: pd.DataFrame) -> str:
    rows = [[r.task, r.metric, _mean_std(r.glove_mean, r.glove_std), _mean_std(r.glove_elmo_mean, r.glove_elmo_std),
             "—" if pd.isna(r.difference) else f"{100 * r.difference:+.2f}",
             "—" if pd.isna(r.relative_error_reduction) else f"{100 * r.relative_error_reduction:.1f}%",
             _seeds(r.glove_seeds, r.glove_elmo_seeds)]
            for r in table.itertuples()]
    return markdown_table(["Task", "Metric", "GloVe", "GloVe + ELMo", "Difference", "Rel. error reduction", "Seeds"],
                          rows, right={2, 3, 4, 5, 6})


def probe_markdown(table: pd.DataFrame) -> str:
    rows = [[r.task, r.layer, r.metric, _mean_std(r.mean, r.std), str(r.seeds)] for r in table.itertuples()]
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


def report_markdown(records: Sequence[RunRecord], order: Sequence[str] | None = None, note: str = "") -> str:
    """The whole comparison as markdown: the task table, the probe table and the layer weights."""
    parts = []
    if note:
        parts.append(note)
    table = comparison_table(records, order)
    if not table.empty:
        parts.append("Test scores (%; mean ± sample std over seeds, best dev epoch of each run):\n\n"
                     + comparison_markdown(table))
        worse = table[~(table["difference"] > 0) & table["difference"].notna()]
        if not worse.empty:
            parts.append("GloVe + ELMo does not beat GloVe on mean test score for: "
                         + ", ".join(worse["task"]) + ".")
    probes = probe_table(records, order)
    if not probes.empty:
        parts.append("Linear probes of single biLM layers (ELMo alone, fixed mix, no other feature):\n\n"
                     + probe_markdown(probes))
    weights = layer_weights_table(records, order)
    if not weights.empty:
        parts.append("Layer weights of the GloVe + ELMo runs (softmax-normalised s_j and gamma, mean over seeds):\n\n"
                     + weights_markdown(weights))
    return "\n\n".join(parts) + "\n"


# -- files ------------------------------------------------------------------------------------------


def write_report(records: Sequence[RunRecord], out_dir: str | Path, order: Sequence[str] | None = None,
                 note: str = "", plot: bool = True) -> dict[str, Path]:
    """Write comparison.md, comparison.csv, probes.csv, layer_weights.csv, runs.csv and
    layer_weights.png (when some run learned a mix) into ``out_dir``; returns what was written."""
    # matplotlib (through plot) is imported only when a report is written: it is slow to load
    from elmo_tasks.comparison.plot import plot_layer_weights

    check_records(records)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = {}
    frames = {
        "comparison.csv": comparison_table(records, order),
        "probes.csv": probe_table(records, order),
        "layer_weights.csv": layer_weights_table(records, order),
        "runs.csv": runs_frame(records),
    }
    for name, frame in frames.items():
        write_text_atomic(out / name, frame.to_csv(index=False, float_format="%.8g"))
        written[name] = out / name
    write_text_atomic(out / "comparison.md", report_markdown(records, order, note))
    written["comparison.md"] = out / "comparison.md"
    if plot and plot_layer_weights(frames["layer_weights.csv"], out / "layer_weights.png"):
        written["layer_weights.png"] = out / "layer_weights.png"
    return written
