"""Task sets from the dataset hub (``datasets.load_dataset``), mapped onto the task schema; a failed
download becomes a one-line error."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from elmo_tasks.data.readers.common import get_tokenizer
from elmo_tasks.errors import UserError

if TYPE_CHECKING:
    from datasets import DatasetDict


# hub name -> how its columns map onto the task schema (only used for names listed here)
HUB_PRESETS: dict[str, dict[str, Any]] = {
    "conll2003": {"tokens_column": "tokens", "tags_column": "ner_tags"},
    "eriktks/conll2003": {"tokens_column": "tokens", "tags_column": "ner_tags"},
    "conll2000": {"tokens_column": "tokens", "tags_column": "chunk_tags"},
    "eriktks/conll2000": {"tokens_column": "tokens", "tags_column": "chunk_tags"},
    "sst2": {"text_column": "sentence", "label_column": "label"},
    "stanfordnlp/sst2": {"text_column": "sentence", "label_column": "label"},
    "trec": {"text_column": "text", "label_column": "coarse_label"},
    "CogComp/trec": {"text_column": "text", "label_column": "coarse_label"},
}

_SPLIT_NAMES = {"validation": "dev", "valid": "dev", "val": "dev", "development": "dev"}


def offline() -> bool:
    return os.environ.get("HF_DATASETS_OFFLINE", "").strip().lower() in ("1", "true", "yes", "on")


def load_hub(name: str, *, tokens_column: str | None = None, tags_column: str | None = None,
             text_column: str | None = None, label_column: str | None = None,
             tokenize: str | Callable[[str], list[str]] = "ptb", **kwargs: Any) -> "DatasetDict":
    """A hub dataset (``datasets.load_dataset(name, **kwargs)``) in the task schema.

    Splits named ``validation`` become ``dev``. Column mapping: for the names in
    :data:`HUB_PRESETS` (``conll2003``, ``conll2000``, ``sst2``, ``trec``) it is known; otherwise
    pass ``tokens_column`` + ``tags_column`` (tagging) or ``text_column``/``tokens_column`` +
    ``label_column`` (classification). Integer class labels are turned into their names. Without
    a mapping the splits are returned as loaded (only renamed).

    Without internet (after ``datasets``' retries, or at once when ``HF_DATASETS_OFFLINE=1`` and the
    set is not in the local ``datasets`` cache) this raises a one-line ``UserError`` that says the
    data needs internet or a local copy.
    """
    import datasets

    try:
        loaded = datasets.load_dataset(name, **kwargs)
    except (ConnectionError, TimeoutError) as exc:
        raise UserError(_no_hub_message(name, exc)) from None
    except Exception as exc:  # huggingface_hub / requests errors that are not ConnectionError
        text = f"{type(exc).__name__}: {exc}"
        if any(word in text for word in ("Offline", "offline", "Connection", "resolve", "Max retries",
                                         "Temporary failure", "Network", "timed out")):
            raise UserError(_no_hub_message(name, exc)) from None
        raise
    if not isinstance(loaded, datasets.DatasetDict):
        loaded = datasets.DatasetDict({kwargs.get("split") or "train": loaded})
    mapping = dict(HUB_PRESETS.get(name, {}))
    given = {"tokens_column": tokens_column, "tags_column": tags_column,
             "text_column": text_column, "label_column": label_column}
    mapping.update({k: v for k, v in given.items() if v is not None})
    return normalize_splits(loaded, tokenize=tokenize, **mapping)


def _no_hub_message(name: str, exc: BaseException) -> str:
    reason = "HF_DATASETS_OFFLINE is set" if offline() else "the hub could not be reached"
    return (f"the dataset {name!r} needs internet or a local copy ({reason}: "
            f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); "
            f"on a machine without internet use a local file (read_conll/read_table/read_jsonl) "
            f"or a prepared set (elmo-tasks data prepare --list)")


def normalize_splits(splits: "DatasetDict", *, tokens_column: str | None = None,
                     tags_column: str | None = None, text_column: str | None = None,
                     label_column: str | None = None,
                     tokenize: str | Callable[[str], list[str]] = "ptb") -> "DatasetDict":
    """Rename ``validation`` to ``dev`` and map hub columns onto ``tokens``/``tags``/``label``."""
    import datasets

    out = {}
    for split, data in splits.items():
        split = _SPLIT_NAMES.get(split, split)
        features = data.features
        if tags_column is not None:
            tokens_from = tokens_column or "tokens"
            names = _class_names(features[tags_column])

            def tagging(row: dict[str, Any], names: list[str] | None = names, tokens_from: str = tokens_from) -> dict[str, Any]:
                tags = row[tags_column]
                return {"tokens": list(row[tokens_from]),
                        "tags": [names[t] if names is not None else str(t) for t in tags]}

            data = datasets.Dataset.from_list([tagging(row) for row in data])
        elif label_column is not None:
            names = _class_names(features[label_column])
            tok = get_tokenizer(tokenize)
            source = text_column or tokens_column or "tokens"

            def classification(row: dict[str, Any], names: list[str] | None = names, source: str = source,
                               tok=tok) -> dict[str, Any]:
                value = row[source]
                label = row[label_column]
                return {"tokens": tok(value) if isinstance(value, str) else list(value),
                        "label": names[label] if names is not None else str(label)}

            data = datasets.Dataset.from_list([classification(row) for row in data])
        out[split] = data
    return datasets.DatasetDict(out)


def _class_names(feature: Any) -> list[str] | None:
    """The class names of a ClassLabel feature, or of a sequence of them; ``None`` otherwise."""
    import datasets

    inner = getattr(feature, "feature", feature)  # List/Sequence wrap the item feature
    if isinstance(inner, datasets.ClassLabel):
        return list(inner.names)
    return None
