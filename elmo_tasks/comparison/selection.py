"""Per-arm selection on dev: of a task's grid points, each arm keeps the one with the best mean dev score.

A suite may give a task a grid (``elmo_tasks.comparison.suite``); bench runs every point of it for
every seed, and writes each point's name and values into its run folders (``grid_point.json``).
Here, for each (task, setting, probe layer), the points are ranked by their mean dev score over
seeds; the best one is kept (ties: the earlier point) and only its runs reach the comparison
table. Test scores are never read: the choice is the same whatever the test labels say.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd

from elmo_tasks.comparison.runs import GLOVE, GLOVE_ELMO, SETTING_TITLES, RunRecord
from elmo_tasks.errors import UserError


def describe_values(values: dict) -> str:
    """``key=value`` pairs of a grid point, shortest readable form (``features.`` dropped)."""
    return ", ".join(f"{k.removeprefix('features.')}={v}" for k, v in values.items()) or "as configured"


def _point_order(point: str) -> tuple[int, str]:
    digits = point.lstrip("p")
    return (int(digits), point) if digits.isdigit() else (-1, point)


def select_on_dev(records: Sequence[RunRecord]) -> tuple[list[RunRecord], pd.DataFrame]:
    """(the records of each cell's picked grid point, one row per grid point with its mean dev score).

    Only ``dev`` is read. A cell without a grid has one point ("") that is picked.
    """
    cells: dict[tuple[str, str, str], dict[str, list[RunRecord]]] = {}
    for r in records:
        cells.setdefault((r.task, r.setting, r.layer), {}).setdefault(r.grid_point, []).append(r)
    picked: list[RunRecord] = []
    rows = []
    for (task, setting, layer), points in cells.items():
        ranked = sorted(points, key=_point_order)
        means = {p: sum(r.dev for r in points[p]) / len(points[p]) for p in ranked}
        best = max(ranked, key=lambda p: (means[p], -ranked.index(p)))
        chosen = {id(r) for r in points[best]}
        picked.extend(r for r in records if id(r) in chosen)
        for p in ranked:
            rows.append({"task": task, "setting": setting, "layer": layer, "grid_point": p,
                         "values": describe_values(points[p][0].grid_values), "seeds": len(points[p]),
                         "dev_mean": means[p], "picked": p == best})
    picked_ids = {id(r) for r in picked}
    picked = [r for r in records if id(r) in picked_ids]  # the input's order
    frame = pd.DataFrame(rows, columns=["task", "setting", "layer", "grid_point", "values", "seeds", "dev_mean",
                                        "picked"])
    return picked, frame


def check_equal_grids(records: Sequence[RunRecord]) -> None:
    """Both arms of a task must have tried the same number of grid points (the same selection budget)."""
    counts: dict[str, dict[str, set[str]]] = {}
    for r in records:
        if r.setting in (GLOVE, GLOVE_ELMO):
            counts.setdefault(r.task, {}).setdefault(r.setting, set()).add(r.grid_point)
    for task, arms in counts.items():
        if len(arms) == 2 and len(arms[GLOVE]) != len(arms[GLOVE_ELMO]):
            raise UserError(f"{task}: {len(arms[GLOVE])} grid point(s) for {SETTING_TITLES[GLOVE]} but "
                            f"{len(arms[GLOVE_ELMO])} for {SETTING_TITLES[GLOVE_ELMO]}; selection on dev is fair "
                            "only when both arms try as many settings")


def has_grid(frame: pd.DataFrame) -> bool:
    """Whether some cell chose among more than one grid point."""
    return not frame.empty and bool((frame.groupby(["task", "setting", "layer"]).size() > 1).any())
