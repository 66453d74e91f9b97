"""Comparing finished runs: GloVe alone vs GloVe + ELMo per task, layer probes, learned layer weights.

* :mod:`~elmo_tasks.comparison.runs` reads run folders (``metrics.json`` + ``config.yaml``) into
  :class:`~elmo_tasks.comparison.runs.RunRecord` s and tells what each run is (task, setting, seed);
* :mod:`~elmo_tasks.comparison.selection` picks each arm's grid point on dev (never on test);
* :mod:`~elmo_tasks.comparison.significance` is the paired bootstrap over test items and seeds;
* :mod:`~elmo_tasks.comparison.table` turns records into the comparison tables (pandas; written as
  markdown and CSV) with the significance figure and the verdict;
* :mod:`~elmo_tasks.comparison.plot` draws the learned layer weights (a PNG, matplotlib);
* :mod:`~elmo_tasks.comparison.suite` is the benchmark suite file (``configs/suites/*.yaml``);
* :mod:`~elmo_tasks.comparison.bench` runs a suite for N seeds, reusing finished runs.

The commands are ``elmo-tasks compare RUN_DIRS...`` and ``elmo-tasks bench SUITE.yaml --seeds 5``.
"""
