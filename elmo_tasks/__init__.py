"""elmo-tasks: frozen ELMo features for downstream NLP tasks.

``from elmo_tasks import TaskModel`` loads a trained model (imported on first use, so that
``import elmo_tasks`` stays light).
"""

from typing import Any


def __getattr__(name: str) -> Any:  # PEP 562: the one heavy public name, imported when asked for
    if name == "TaskModel":
        from elmo_tasks.task_model import TaskModel

        return TaskModel
    raise AttributeError(f"module 'elmo_tasks' has no attribute {name!r}")
