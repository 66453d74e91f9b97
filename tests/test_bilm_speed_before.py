"""``bilm_speed.py --before TREE``: another checkout timed in a child process with that tree first on
its path (here this very tree, on the tiny fixture model), and a folder that is no checkout refused."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_util import load_benchmark

from elmo_tasks.errors import UserError

ROOT = Path(__file__).resolve().parents[1]


def load_script():
    return load_benchmark("bilm_speed")


def test_before_runs_the_tree_in_a_child_and_refuses_a_folder_that_is_no_checkout(tmp_path):
    script = load_script()
    sentences = [["The", "cat", "sat", "."], ["Hello", "world"], ["a"]]
    for precision in ("float32", "bfloat16"):
        rate = script.run_before(ROOT, ROOT / "elmo_tasks" / "models" / "tiny_fixture", sentences, sentences[:1],
                                 2, precision, 1)
        assert rate > 0
    with pytest.raises(UserError, match="not an elmo-tasks checkout"):
        script.main(["--before", str(tmp_path), "--models", "original"])
