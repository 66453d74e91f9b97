"""YAML bombs: the one YAML reader (config.parse_yaml) bounds alias expansion and refuses recursive
aliases and absurd nesting, naming the file and line; run under a 2 GB address-space limit."""

from __future__ import annotations

import pytest
from cli_util import assert_user_error, run_cli
from tasks_util import TASK_FIXTURES

from elmo_tasks.schema import MAX_YAML_VALUES, ConfigError, parse_yaml

LETTERS = "abcdefghij"


def laughs(levels: int = 9, mapping: bool = True) -> str:
    """A "billion laughs" document: level k holds 10 aliases of level k - 1 (10**levels values in all)."""
    lines = ["l0: &l0 {" + ", ".join(f"{c}: lol" for c in LETTERS) + "}" if mapping else "l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for k in range(1, levels + 1):
        if mapping:
            lines.append(f"l{k}: &l{k} {{" + ", ".join(f"{c}: *l{k - 1}" for c in LETTERS) + "}")
        else:
            lines.append(f"l{k}: &l{k} [" + ", ".join(f"*l{k - 1}" for _ in LETTERS) + "]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize("mapping", [True, False])
def test_billion_laughs_is_refused_with_file_and_line(tmp_path, mapping):
    path = tmp_path / "bomb.yaml"
    path.write_text(laughs(mapping=mapping), encoding="utf-8")
    with pytest.raises(ConfigError, match=rf"bomb\.yaml, line \d+: aliases expand to more than {MAX_YAML_VALUES:,}"):
        parse_yaml(path, ConfigError)


def test_billion_laughs_through_every_command_under_2gb(tmp_path):
    bomb = tmp_path / "bomb.yaml"
    bomb.write_text(laughs(), encoding="utf-8")
    for args in (["run", bomb], ["cache", bomb], ["bench", bomb], ["pretrain", bomb, "--out", tmp_path / "p"]):
        assert_user_error(run_cli(*args, timeout=120), f"{bomb}, line", "aliases expand")


@pytest.mark.parametrize("text, line", [("a: &a [1, *a]\n", 1), ("x: 1\nb: &b {c: *b}\n", 2),
                                         ("x: 1\ny: &y\n  - 1\n  - *y\n", 2)])
def test_recursive_alias_is_one_line(tmp_path, text, line):
    path = tmp_path / "c.yaml"
    path.write_text(text, encoding="utf-8")
    assert_user_error(run_cli("run", path), f"{path}, line {line}: an alias refers to the value that contains it")


def test_deep_nesting_is_one_line(tmp_path):
    path = tmp_path / "deep.yaml"
    path.write_text("a: " + "[" * 200_000 + "]" * 200_000 + "\n", encoding="utf-8")
    assert_user_error(run_cli("run", path), f"{path}", "nested too deeply")


def test_ordinary_anchors_still_work(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text(f"extends: {TASK_FIXTURES / 'glosses_glove.yaml'}\n"
                    "common: &common {max_examples: 20}\n", encoding="utf-8")
    data = parse_yaml(path, ConfigError)
    assert data["common"] == {"max_examples": 20}
    shared = tmp_path / "shared.yaml"
    shared.write_text("base: &b {x: 1, y: [1, 2]}\nother:\n  <<: *b\n  z: 3\nlist: [*b, *b]\n", encoding="utf-8")
    assert parse_yaml(shared, ConfigError) == {"base": {"x": 1, "y": [1, 2]}, "other": {"x": 1, "y": [1, 2], "z": 3},
                                               "list": [{"x": 1, "y": [1, 2]}] * 2}
