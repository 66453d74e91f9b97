"""Task heads: the name a config's ``head.name`` uses -> the class. One file per head.

Adding a head: write ``elmo_tasks/heads/NAME.py`` (copy ``probe.py``; see ``base.py`` for the
interface) and add one line here.
"""

from __future__ import annotations

from typing import Any

from elmo_tasks.heads.base import Head
from elmo_tasks.heads.classifier import Classifier
from elmo_tasks.heads.probe import Probe
from elmo_tasks.heads.tagger import Tagger
from elmo_tasks.heads.wsd import Wsd
from elmo_tasks.schema import ConfigError, Source, build

HEADS: dict[str, type[Head]] = {
    "tagger": Tagger,
    "classifier": Classifier,
    "wsd": Wsd,
    "probe": Probe,
}


def head_options(data: dict[str, Any], source: Source) -> tuple[str, Any]:
    """(name, the head's ``Options``) from a config's ``head:`` mapping, checked like any section."""
    data = dict(data)
    name = data.pop("name", None)
    if name is None:
        raise source.error("head.name", f"missing (one of: {', '.join(HEADS)})")
    if name not in HEADS:
        raise source.error("head.name", f"unknown head {name!r} (known: {', '.join(HEADS)})")
    return name, build(HEADS[name].Options, data, source, "head.")


def check_head(config: Any, source: Source) -> None:
    """The head's own checks of the whole config (``Head.check_config``), errors naming the file."""
    try:
        HEADS[config.head.name].check_config(config)
    except ConfigError as exc:
        raise source.locate(exc) from None
