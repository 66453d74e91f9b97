"""Read labelled task data from local files (CoNLL, word/TAG, CSV/TSV, JSON lines) or the dataset hub.

Every reader returns a ``datasets.Dataset`` in one of the task schemas:

* tagging: ``tokens`` (list[str]) and ``tags`` (list[str], BIO for NER);
* classification: ``tokens`` (list[str]) and ``label`` (str);
* word sense: ``tokens``, ``target`` (int), ``lemma``, ``pos`` (n/v/a/r), ``sense`` (a WordNet sense
  key), as written by the ``wordnet-wsd`` recipe and read back with :func:`read_jsonl`.

Malformed input (an empty file, a wrong column count, a token without a tag, a missing label,
bytes that are not valid UTF-8, bad JSON) raises :class:`~elmo_tasks.errors.UserError` whose
message names the file and the 1-based line number. :func:`load_hub` passes hub names
(``conll2003``, ``sst2``, ...) to ``datasets.load_dataset`` and turns a failed download into a
one-line ``UserError``.

One module per input kind: :mod:`.tagging` (CoNLL columns, word/TAG), :mod:`.tables` (CSV/TSV),
:mod:`.jsonl`, :mod:`.hub`; shared line reading and tokenisers in :mod:`.common`.
"""

from elmo_tasks.data.readers.common import fallback_tokenize, get_tokenizer, lines, ptb_tokenizer_name
from elmo_tasks.data.readers.hub import HUB_PRESETS, load_hub, normalize_splits, offline
from elmo_tasks.data.readers.jsonl import read_jsonl
from elmo_tasks.data.readers.tables import read_table
from elmo_tasks.data.readers.tagging import CLOSING_TAGS, SENTENCE_END_TAGS, read_conll, read_word_tag

__all__ = ["CLOSING_TAGS", "HUB_PRESETS", "SENTENCE_END_TAGS", "fallback_tokenize", "get_tokenizer", "lines",
           "load_hub", "normalize_splits", "offline", "ptb_tokenizer_name", "read_conll", "read_jsonl",
           "read_table", "read_word_tag"]
