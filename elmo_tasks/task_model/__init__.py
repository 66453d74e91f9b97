"""Trained task models in use: load a run folder or an archive, predict on new text, package it.

``model.py`` (:class:`TaskModel`), ``inputs.py`` (what it reads), ``outputs.py`` (what it
returns), ``parts.py`` (what it is made of), ``archive.py`` (the .tar.gz), ``card.py`` (its MODEL_CARD).
"""

from elmo_tasks.task_model.model import TaskModel

__all__ = ["TaskModel"]
