"""The notes under the comparison tables: the command that made them, the ELMo model used (by name, never
by an absolute path), and what the table's marks († § ‡) mean for the rows they mark."""

from __future__ import annotations

import os
import shlex
from pathlib import Path

import pandas as pd

from elmo_tasks.comparison.runs import SETTING_TITLES, RunRecord
from elmo_tasks.model_folder import DEFAULT_MODEL_DIR, ModelFolder


def model_name(folder: str) -> str:
    """How outputs name an ELMo model: ``default``, ``fixture``, or its folder's name (not its path)."""
    if not folder:
        return ""
    path = Path(folder)
    if ModelFolder(path).is_fixture:
        return "fixture"
    if path.resolve() == DEFAULT_MODEL_DIR.resolve():
        return "default"
    return path.name or str(folder)


def models_note(records: list[RunRecord]) -> str:
    """The " ELMo model: NAME." of the notes under the tables, with a warning for the tiny test fixture."""
    models = sorted({model_name(r.elmo_model) for r in records if r.elmo_model})
    if not models:
        return ""
    warning = (" WARNING: fixture is the tiny test model, not a trained model; its ELMo scores say "
               "nothing about ELMo." if "fixture" in models else "")
    return f" ELMo model: {', '.join(models)}.{warning}"


def shown_path(path: str | Path, base: str | Path | None = None) -> str:
    """A path as an output records it: relative to ``base`` (the report's folder; None: the working
    folder) when it is absolute, as given otherwise; never an absolute machine path."""
    if not os.path.isabs(path) and base is None:
        return str(path)
    return os.path.relpath(os.path.abspath(path), os.path.abspath(base if base is not None else "."))


def command_line(argv: list[str], paths: tuple[int, ...] = (), base: str | Path | None = None) -> str:
    """The command as a user would type it (for the table's note); the arguments at the indices
    ``paths`` are shown relative to ``base`` (see :func:`shown_path`)."""
    shown = [shown_path(a, base) if i in paths else a for i, a in enumerate(argv)]
    return "elmo-tasks " + " ".join(shlex.quote(a) for a in shown)


def cut_off_note(runs: pd.DataFrame) -> str:
    """The warning for tabulated (picked) runs whose best epoch is in the last fifth of their cap."""
    picked = runs[runs["picked"]]
    parts = []
    for (task, setting, layer), cell in picked.groupby(["task", "setting", "layer"], sort=False):
        count = int(cell["cut_off"].sum())
        if count:
            caps = ", ".join(str(c) for c in sorted(set(cell["epochs_cap"])))
            parts.append(f"{task} {SETTING_TITLES[setting]}{f' layer {layer}' if layer else ''} "
                         f"({count} of {len(cell)} runs, cap {caps} epochs)")
    if not parts:
        return ""
    return ("† Best epoch in the last fifth of the epoch cap: " + "; ".join(parts) + ". These runs may still be "
            "improving: raise trainer.epochs and trainer.patience (for both arms of a task).")


def flag_notes(runs: pd.DataFrame, table: pd.DataFrame) -> list[str]:
    """The notes for § (runs whose dev metric stayed 0) and ‡ (unequal budgets, --allow-unequal)."""
    notes = []
    picked = runs[runs["picked"]]
    stuck = []
    for (task, setting, layer), cell in picked.groupby(["task", "setting", "layer"], sort=False):
        count = int(cell["dev_never_scored"].sum())
        if count:
            stuck.append(f"{task} {SETTING_TITLES[setting]}{f' layer {layer}' if layer else ''} ({count} of {len(cell)} "
                         f"runs, dev {cell['metric'].iloc[0]})")
    if stuck:
        notes.append("§ Dev metric 0 in every epoch: " + "; ".join(stuck) + ". These runs learned nothing (check the "
                     "labels, the data and trainer.lr); their task gets no verdict.")
    unequal = table[table["unequal_budget"].astype(str) != ""] if not table.empty else table
    if not unequal.empty:
        notes.append("‡ Unequal budgets, tabulated with --allow-unequal: " + "; ".join(
            f"{r.task}: {r.unequal_budget}" for r in unequal.itertuples()) + ". These rows compare more than ELMo; "
            "they get no verdict.")
    return notes
