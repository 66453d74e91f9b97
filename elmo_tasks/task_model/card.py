"""MODEL_CARD.md of a task-model archive: what the model does, on what data, how well, with what."""

from __future__ import annotations

import json
from typing import Any

from elmo_tasks.task_model.parts import ModelParts


def model_card(parts: ModelParts, bilm: dict[str, Any] | None) -> str:
    """Markdown: task, data, labels, dev/test scores, the biLM, training settings, versions, licences."""
    m, config = parts.metrics, parts.config
    labels = parts.task.labels
    shown = ", ".join(labels[:40]) + (f", ... ({len(labels)} in all)" if len(labels) > 40 else "")
    lines = [f"# {m.get('name', 'task model')}", "",
             f"- **Task**: {parts.task.kind} ({m.get('head')} head), main metric {m.get('main_metric')}",
             f"- **Data**: {parts.provenance.get('data', m.get('dataset'))}; sentences {m.get('sizes')}",
             f"- **Labels** ({len(labels)}): {shown}",
             f"- **Dev**: {json.dumps(m.get('dev'))}", f"- **Test**: {json.dumps(m.get('test'))}",
             f"- **Features**: {', '.join(m.get('features') or [])}"]
    if bilm is not None:
        where = "bundled in this archive" if bilm.get("bundled") else f"not bundled: the receiver's '{bilm.get('name')}'"
        lines.append(f"- **biLM**: {bilm.get('name') or 'a model folder'} (sha256 content digest {bilm.get('digest')}), {where}")
    lines += [f"- **Training**: {json.dumps(config.get('trainer'))}; best epoch {m.get('best_epoch')} of "
              f"{m.get('epochs_run')}; precision {m.get('precision')}; {m.get('parameters')} trained parameters",
              f"- **Head settings**: {json.dumps(config.get('head'))}",
              f"- **Versions**: {json.dumps(m.get('versions'))}",
              f"- **Licences as recorded**: data: {parts.provenance.get('data_licence', 'not recorded')}; vectors: "
              f"{parts.provenance.get('vectors', 'no GloVe')}", "",
              "Load it with `TaskModel.load(PATH)` or `elmo-tasks predict PATH INPUT` (docs/task-models.md).", ""]
    return "\n".join(lines)
