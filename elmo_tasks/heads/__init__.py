"""Task heads: the name a config's ``head.name`` uses -> the class. One file per head.

Adding a head: write ``elmo_tasks/heads/NAME.py`` (copy ``probe.py``; see ``base.py`` for the
interface) and add one line here.
"""

from elmo_tasks.heads.classifier import Classifier
from elmo_tasks.heads.probe import Probe
from elmo_tasks.heads.tagger import Tagger
from elmo_tasks.heads.wsd import Wsd

HEADS = {
    "tagger": Tagger,
    "classifier": Classifier,
    "wsd": Wsd,
    "probe": Probe,
}
