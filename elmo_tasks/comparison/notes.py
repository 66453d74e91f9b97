"""The notes under the comparison tables: the command that made them and the ELMo model used."""

from __future__ import annotations

import shlex
from pathlib import Path

from elmo_tasks.comparison.runs import RunRecord
from elmo_tasks.model_folder import ModelFolder


def models_note(records: list[RunRecord]) -> str:
    """The " ELMo model: DIR." of the notes under the tables, with a warning for the tiny test fixture."""
    models = sorted({r.elmo_model for r in records if r.elmo_model})
    if not models:
        return ""
    fixture = [m for m in models if ModelFolder(Path(m)).is_fixture]
    warning = (f" WARNING: {fixture[0]} is the tiny test fixture, not a trained model; its ELMo scores say "
               "nothing about ELMo." if fixture else "")
    return f" ELMo model: {', '.join(models)}.{warning}"


def command_line(argv: list[str]) -> str:
    """The command as a user would type it (for the table's note)."""
    return "elmo-tasks " + " ".join(shlex.quote(a) for a in argv)
