"""What AllenNLP 0.9's ELMo tests import, as ``benchmarks/allennlp09_tests.py`` hands it to them.

The runner rewrites every ``from allennlp.X import A, B`` of the copied tests into
``A, B = shim("allennlp.X", "A", "B")``. Each name comes from one of three places:

* **the compat** (``elmo_tasks.compat.allennlp``): the surface under test. A name the compat lacks
  becomes a placeholder that raises ``MissingInCompat`` when used, so one missing name fails only
  the tests that use it.
* **the harness**: the test base class (a ``unittest.TestCase`` with ``FIXTURES_ROOT`` pointing at
  the project's vendored fixtures), the ``allennlp`` command line (``main``: ``allennlp elmo ARGS``
  run as ``elmo-tasks embed-file`` with the flags translated), and an empty ``Vocabulary()``,
  which AllenNLP's ELMo indexer receives and ignores (any use of it raises ``NeedsFramework``).
* **AllenNLP's framework** (data fields, instances, batches, iterators, vocabularies, ``Params``,
  training): placeholders that raise ``NeedsFramework`` naming what was needed. With
  ``ALLENNLP09_DATA_STANDINS=1`` the data pipeline the ELMo tests build their inputs with
  (``Token`` lists in ``TextField``s, ``Instance``, ``Batch``, ``Vocabulary.from_instances``,
  ``SingleIdTokenIndexer``, ``BasicIterator``) is given small stand-ins written here instead,
  so that the ELMo checks behind them run; they are the harness's, not part of the toolkit.

``ALLENNLP09_STATEFUL_DEFAULT=1`` also gives the compat's classes ``stateful=True`` by default, as
AllenNLP's are: the check that the tests failing on the stateless default pass with states carried.
"""

from __future__ import annotations

import os
import sys
import tempfile
import unittest
from collections import Counter
from pathlib import Path

import torch

FIXTURES = Path(__file__).resolve().parents[1] / "tests" / "fixtures"
DATA_STANDINS = os.environ.get("ALLENNLP09_DATA_STANDINS") == "1"
STATEFUL_DEFAULT = os.environ.get("ALLENNLP09_STATEFUL_DEFAULT") == "1"


class NeedsFramework(Exception):
    """The test needs a part of AllenNLP's framework that the compat does not offer."""


class MissingInCompat(Exception):
    """The test needs a name that ``elmo_tasks.compat.allennlp`` does not (yet) define."""


class _Placeholder:
    def __init__(self, error: type[Exception], name: str) -> None:
        self._error, self._name = error, name

    def __call__(self, *args, **kwargs):
        raise self._error(self._name)

    def __getattr__(self, attribute: str):
        raise self._error(f"{self._name}.{attribute}")


class AllenNlpTestCase(unittest.TestCase):
    """The fields AllenNLP's test base gives its tests: a fixtures root and a fresh temporary folder."""

    FIXTURES_ROOT = FIXTURES

    def setUp(self) -> None:
        self.TEST_DIR = Path(tempfile.mkdtemp(prefix="allennlp09_"))


class ModelTestCase(AllenNlpTestCase):
    """AllenNLP's model test base trains and archives models: framework."""

    def setUp(self) -> None:
        raise NeedsFramework("ModelTestCase (model training from a config)")


class EmptyVocabulary:
    """``Vocabulary()``: AllenNLP's ELMo indexer takes one and never reads it."""

    def __init__(self, *args, **kwargs) -> None:
        if args or kwargs:
            raise NeedsFramework("Vocabulary(...) with contents")

    @classmethod
    def from_instances(cls, instances):
        raise NeedsFramework("Vocabulary.from_instances")

    def __getattr__(self, attribute: str):
        raise NeedsFramework(f"Vocabulary.{attribute}")


def allennlp_main() -> None:
    """``allennlp elmo ARGS`` from ``sys.argv``, run as ``elmo-tasks embed-file`` (errors raise, as in AllenNLP)."""
    from elmo_tasks.cli import build_parser

    argv = sys.argv[1:]
    if not argv or argv[0] != "elmo":
        raise NeedsFramework(f"allennlp {' '.join(argv[:1])} (only the elmo command maps onto elmo-tasks)")
    args = build_parser().parse_args(["embed-file", *translate_elmo_arguments(argv[1:]), "--quiet"])
    args._run(args)


# AllenNLP's `allennlp elmo` flags -> `elmo-tasks embed-file` flags (docs/allennlp-compat.md lists them)
FLAG_MAP = {"--all": ["--layers", "all"], "--top": ["--layers", "top"], "--average": ["--layers", "average"],
            "--options-file": ["--options"], "--weight-file": ["--weights"]}


def translate_elmo_arguments(args: list[str]) -> list[str]:
    out: list[str] = []
    items = iter(args)
    for arg in items:
        if arg == "--cuda-device":
            device = int(next(items))
            out += ["--device", "cpu" if device < 0 else f"cuda:{device}"]
        elif arg == "--include-package":
            raise NeedsFramework("--include-package")
        else:
            out += FLAG_MAP.get(arg, [arg])
    return out


# -- stand-ins for AllenNLP's data pipeline (only with ALLENNLP09_DATA_STANDINS=1) -----------------------


class Vocabulary:
    """Token -> index per namespace: 0 padding, 1 unknown, then by count (ties in first-seen order)."""

    PADDING, OOV = "@@PADDING@@", "@@UNKNOWN@@"

    def __init__(self) -> None:
        self._index: dict[str, dict[str, int]] = {}

    @classmethod
    def from_instances(cls, instances) -> "Vocabulary":
        counts: dict[str, Counter] = {}
        for instance in instances:
            for field in instance.fields.values():
                for indexer in field.token_indexers.values():
                    if isinstance(indexer, SingleIdTokenIndexer):
                        counts.setdefault(indexer.namespace, Counter()).update(t.text for t in field.tokens)
        vocab = cls()
        for namespace, counter in counts.items():
            words = [cls.PADDING, cls.OOV] + [w for w, _ in sorted(counter.items(), key=lambda x: x[1], reverse=True)]
            vocab._index[namespace] = {w: i for i, w in enumerate(words)}
        return vocab

    def get_token_to_index_vocabulary(self, namespace: str = "tokens") -> dict[str, int]:
        return dict(self._index.get(namespace, {}))

    def get_token_index(self, token: str, namespace: str = "tokens") -> int:
        index = self._index.get(namespace, {})
        return index.get(token, index.get(self.OOV, 1))


class SingleIdTokenIndexer:
    def __init__(self, namespace: str = "tokens") -> None:
        self.namespace = namespace

    def tokens_to_indices(self, tokens, vocabulary, index_name):
        return {index_name: [vocabulary.get_token_index(t.text, self.namespace) for t in tokens]}

    def as_padded_tensor(self, tokens, desired_num_tokens, padding_lengths):
        return {k: torch.LongTensor(v + [0] * (desired_num_tokens[k] - len(v))) for k, v in tokens.items()}


class TextField:
    def __init__(self, tokens, token_indexers) -> None:
        self.tokens, self.token_indexers = list(tokens), token_indexers
        self.indexed: dict[str, dict] = {}

    def index(self, vocab) -> None:
        self.indexed = {name: indexer.tokens_to_indices(self.tokens, vocab, name)
                        for name, indexer in self.token_indexers.items()}

    def as_tensor(self, num_tokens: int) -> dict[str, torch.Tensor]:
        out = {}
        for name, indexer in self.token_indexers.items():
            out.update(indexer.as_padded_tensor(self.indexed[name], {name: num_tokens}, {}))
        return out


class Instance:
    def __init__(self, fields) -> None:
        self.fields = dict(fields)


class Batch:
    def __init__(self, instances) -> None:
        self.instances = list(instances)

    def index_instances(self, vocab) -> None:
        for instance in self.instances:
            for field in instance.fields.values():
                field.index(vocab)

    def as_tensor_dict(self) -> dict[str, dict[str, torch.Tensor]]:
        out: dict[str, dict[str, torch.Tensor]] = {}
        for name in self.instances[0].fields:
            width = max(len(i.fields[name].tokens) for i in self.instances)
            rows = [i.fields[name].as_tensor(width) for i in self.instances]
            out[name] = {key: torch.stack([row[key] for row in rows]) for key in rows[0]}
        return out


class BasicIterator:
    def __init__(self, batch_size: int = 32) -> None:
        self.batch_size, self.vocab = batch_size, None

    def index_with(self, vocab) -> None:
        self.vocab = vocab

    def __call__(self, instances, num_epochs=None, shuffle=True):
        if shuffle or num_epochs != 1:
            raise NeedsFramework("BasicIterator with shuffling or several epochs")
        instances = list(instances)
        for start in range(0, len(instances), self.batch_size):
            batch = Batch(instances[start : start + self.batch_size])
            batch.index_instances(self.vocab)
            yield batch.as_tensor_dict()


# -- where each imported name comes from ------------------------------------------------------------------

COMPAT_NAMES = {"Elmo", "_ElmoBiLm", "_ElmoCharacterEncoder", "batch_to_ids", "ElmoTokenEmbedder", "ElmoEmbedder",
                "ELMoTokenCharactersIndexer", "ELMoCharacterMapper", "Token", "remove_sentence_boundaries",
                "add_sentence_boundary_token_ids", "ConfigurationError"}
HARNESS = {("allennlp.common.testing", "AllenNlpTestCase"): AllenNlpTestCase,
           ("allennlp.common.testing", "ModelTestCase"): ModelTestCase,
           ("allennlp.commands", "main"): allennlp_main}
STANDINS = {"Vocabulary": Vocabulary, "SingleIdTokenIndexer": SingleIdTokenIndexer, "TextField": TextField,
            "Instance": Instance, "Batch": Batch, "BasicIterator": BasicIterator}


def _stateful_by_default(cls: type) -> type:
    """``cls`` with ``stateful=True`` unless the caller says otherwise."""

    def __init__(self, *args, stateful: bool = True, **kwargs) -> None:
        cls.__init__(self, *args, stateful=stateful, **kwargs)

    return type(cls.__name__, (cls,), {"__init__": __init__})


def _resolve(module: str, name: str):
    if (module, name) in HARNESS:
        return HARNESS[(module, name)]
    if name in COMPAT_NAMES:
        from elmo_tasks.compat import allennlp as compat

        if hasattr(compat, name):
            value = getattr(compat, name)
            if STATEFUL_DEFAULT and name in ("Elmo", "_ElmoBiLm", "ElmoEmbedder", "ElmoTokenEmbedder"):
                return _stateful_by_default(value)
            return value
        if name == "ConfigurationError":  # the compat raises this toolkit's UserError
            from elmo_tasks.errors import UserError

            return UserError
        return _Placeholder(MissingInCompat, name)
    if DATA_STANDINS and name in STANDINS:
        return STANDINS[name]
    if name == "Vocabulary":
        return EmptyVocabulary
    return _Placeholder(NeedsFramework, f"{module}.{name}")


def shim(module: str, *names: str):
    """The objects ``from MODULE import NAMES`` gives the copied tests (a tuple, or one object)."""
    values = tuple(_resolve(module, name) for name in names)
    return values if len(values) > 1 else values[0]
