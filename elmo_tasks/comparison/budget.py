"""Equal budgets: the arms of a task must have been trained the same way, ELMo being the only difference.

A run's budget is its ``trainer`` settings (seed, threads and device aside) and its ``head`` settings,
from the resolved ``config.yaml`` (``RunRecord.budget``, ``runs.run_budget``). Two arms of one task
(GloVe and GloVe + ELMo, or the probes of different biLM layers) whose budgets differ compare more
than ELMo: ``compare`` refuses them with one line naming the keys, unless ``--allow-unequal``, and
then marks the rows. Keys a bench grid varied are left out: each arm's value was picked on dev from
as many points (:mod:`elmo_tasks.comparison.selection`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from elmo_tasks.comparison.runs import GLOVE, GLOVE_ELMO, PROBE, SETTING_TITLES, RunRecord
from elmo_tasks.errors import UserError


def _arm_name(record: RunRecord) -> str:
    return SETTING_TITLES[record.setting] + (f" layer {record.layer}" if record.setting == PROBE else "")


def budget_differences(records: Sequence[RunRecord]) -> dict[str, str]:
    """Task -> what differs between its arms (``trainer.epochs: GloVe 3, GloVe + ELMo 15``); tasks
    whose arms share their budget are left out. Compared: GloVe with GloVe + ELMo, and the probe layers
    with each other; keys that a grid varied in the task are not."""
    by_task: dict[str, dict[str, list[RunRecord]]] = {}
    for r in records:
        group = "probe" if r.setting == PROBE else "arms"
        by_task.setdefault(r.task, {}).setdefault(group, []).append(r)
    out: dict[str, str] = {}
    for task, groups in by_task.items():
        parts = []
        for group, runs in groups.items():
            varied = {k for r in runs for k in r.grid_values}
            arms: dict[str, dict[str, Any]] = {}
            for r in runs:
                arms.setdefault(_arm_name(r), {k: v for k, v in r.budget.items() if k not in varied})
            if group == "arms" and not {SETTING_TITLES[GLOVE], SETTING_TITLES[GLOVE_ELMO]} <= set(arms):
                continue  # one arm alone: nothing to compare it with
            keys = sorted({k for budget in arms.values() for k in budget})
            for key in keys:
                values = {name: budget.get(key) for name, budget in arms.items()}
                if len({repr(v) for v in values.values()}) > 1:
                    parts.append(f"{key}: " + ", ".join(f"{name} {value}" for name, value in values.items()))
        if parts:
            out[task] = "; ".join(parts)
    return out


def check_budgets(records: Sequence[RunRecord], allow_unequal: bool = False) -> dict[str, str]:
    """The tasks with unequal budgets (see :func:`budget_differences`): a UserError naming them and the
    keys, unless ``allow_unequal``, when they are returned for the table to mark."""
    unequal = budget_differences(records)
    if unequal and not allow_unequal:
        listed = "; ".join(f"{task}: {what}" for task, what in unequal.items())
        raise UserError(f"the arms were trained with different budgets ({listed}); compare runs of the same "
                        "trainer and head settings, or pass --allow-unequal to tabulate them anyway (marked)")
    return unequal
