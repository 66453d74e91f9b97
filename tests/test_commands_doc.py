"""docs/commands.md is current (generated from the parsers) and the command-line convention holds."""

from __future__ import annotations

from pathlib import Path

from elmo_tasks.cli import build_parser
from elmo_tasks.commands.reference import commands, markdown

PAGE = Path(__file__).parents[1] / "docs" / "commands.md"
REGENERATE = ("python -c \"from elmo_tasks.cli import build_parser; from elmo_tasks.commands.reference import markdown; "
              "print(markdown(build_parser()), end='')\" > docs/commands.md")


def test_the_page_is_current():
    assert PAGE.read_text(encoding="utf-8") == markdown(build_parser()), f"docs/commands.md is stale: {REGENERATE}"


def test_every_command_that_runs_a_model_has_the_shared_options():
    options = {name.removeprefix("elmo-tasks "): {o for a in parser._actions for o in a.option_strings}
               for name, parser in commands(build_parser())}
    for name in ("embed-file", "run", "cache", "pretrain", "perplexity", "bench"):
        assert {"--device", "--threads", "--quiet", "--verbose"} <= options[name], name
    assert {"--device", "--threads"} <= options["embed"]
    for name in ("data corpus", "data prepare"):
        assert {"--quiet", "--verbose"} <= options[name], name
    threads_help = {a.help for _, p in commands(build_parser()) for a in p._actions if "--threads" in a.option_strings}
    assert len(threads_help) == 1  # one default, said one way
