"""AllenNLP 0.9's own ELMo tests, run against ``elmo_tasks.compat.allennlp``: pass counts and why the rest fail.

    python benchmarks/allennlp09_tests.py                      # this checkout (fetches the wheel once)
    python benchmarks/allennlp09_tests.py --repo /work/main    # another checkout's compat (the "before")
    python benchmarks/allennlp09_tests.py --wheel allennlp-0.9.0-py3-none-any.whl --tier strict

The AllenNLP wheel (7.6 MB, PyPI) is downloaded with ``pip download --no-deps allennlp==0.9.0``
into ``$ELMO_TASKS_CACHE/allennlp09`` (not installed: it pins an old torch) unless ``--wheel``
names it. Its ELMo test files are copied into a temporary folder with every ``allennlp`` import
rewritten to ``benchmarks/allennlp09_shims.py`` (which says where each name comes from) and run
with pytest, on the project's vendored fixtures (``tests/fixtures/elmo``). Nothing from the
wheel is kept or committed. Needs the network the first time, so it is a benchmark script, not
part of the test suite.

Three tiers: ``strict`` gives the tests only the compat and the harness's test base; ``data`` also
gives them the shims' stand-ins for AllenNLP's data pipeline (``TextField``, ``Instance``,
``Batch``, ``Vocabulary``...), so that the ELMo checks behind those inputs run; ``stateful`` is
``data`` with the compat's classes stateful by default, as AllenNLP's (it checks that the tests
classified "stateless default" are about nothing else). Every test that
does not pass is classified: it needs AllenNLP's framework (the placeholder it hit is named), a
name is missing from the compat, a documented design choice (``DESIGN_CHOICES``), or
UNEXPECTED; the exit status is 1 if any is unexpected.
"""

from __future__ import annotations

import argparse
import ast
import os
import re
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path
from xml.etree import ElementTree

ROOT = Path(__file__).resolve().parents[1]
BENCHMARKS = Path(__file__).resolve().parent
VERSION = "0.9.0"

# the wheel's test files -> module names in the temporary folder
TEST_FILES = {
    "allennlp/tests/modules/elmo_test.py": "modules_elmo_test",
    "allennlp/tests/commands/elmo_test.py": "commands_elmo_test",
    "allennlp/tests/data/token_indexers/elmo_indexer_test.py": "elmo_indexer_test",
    "allennlp/tests/modules/token_embedders/elmo_token_embedder_test.py": "elmo_token_embedder_test",
}
# the brief's three files (allennlp.modules.elmo, allennlp.commands.elmo, the indexer); the token embedder's is extra
CORE_MODULES = {"modules_elmo_test", "commands_elmo_test", "elmo_indexer_test"}

# tests that fail by a documented choice of this toolkit (docs/allennlp-compat.md, "Differences")
DESIGN_CHOICES = {
    "commands_elmo_test.TestElmoEmbedder.test_embeddings_are_as_expected":
        "stateless default: AllenNLP's golden vectors come from states carried batch to batch "
        "(ElmoEmbedder(stateful=True) reproduces them)",
    "modules_elmo_test.TestElmoBiLm.test_elmo_bilm":
        "stateless default: AllenNLP's golden vectors come from states carried batch to batch "
        "(_ElmoBiLm(stateful=True) reproduces them)",
    "commands_elmo_test.TestElmoEmbedder.test_embed_batch_is_empty_sentence":
        "an empty sentence's width: (3, 0, 2P) of the model, where AllenNLP hard-codes (3, 0, 1024)",
    "commands_elmo_test.TestElmoCommand.test_empty_sentences_raise_errors":
        "embed-file keeps a blank line as an empty dataset so that keys stay line numbers "
        "(ElmoEmbedder.embed_file raises on blank lines, as AllenNLP)",
}


def fetch_wheel(cache: Path) -> Path:
    cache.mkdir(parents=True, exist_ok=True)
    found = sorted(cache.glob(f"allennlp-{VERSION}-*.whl"))
    if not found:
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", f"allennlp=={VERSION}", "-d", str(cache)],
                       check=True)
        found = sorted(cache.glob(f"allennlp-{VERSION}-*.whl"))
    return found[0]


def rewrite(source: str) -> str:
    """Every ``from allennlp... import`` becomes a ``shim(...)`` call (the test modules import each other locally)."""
    tree = ast.parse(source)
    lines = source.splitlines(keepends=True)
    for node in sorted((n for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)), key=lambda n: -n.lineno):
        if not (node.module or "").startswith("allennlp"):
            continue
        indent = re.match(r"\s*", lines[node.lineno - 1]).group(0)
        names = [(a.name, a.asname or a.name) for a in node.names]
        local = TEST_FILES.get(node.module.replace(".", "/") + ".py")
        if local:
            text = f"{indent}from {local} import {', '.join(n for n, _ in names)}\n"
        else:
            targets = ", ".join(alias for _, alias in names)
            text = f"{indent}{targets} = shim({node.module!r}, {', '.join(repr(n) for n, _ in names)})\n"
        lines[node.lineno - 1 : node.end_lineno] = [text]
    return "from allennlp09_shims import shim  # rewritten by benchmarks/allennlp09_tests.py\n" + "".join(lines)


def prepare(wheel: Path, folder: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        for member, module in TEST_FILES.items():
            (folder / f"{module}.py").write_text(rewrite(archive.read(member).decode("utf-8")), encoding="utf-8")


def run_tier(folder: Path, repo: Path, tier: str) -> list[tuple[str, str, str]]:
    """(test id, outcome, message) for every test of the copied files."""
    report = folder / f"{tier}.xml"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(repo), str(BENCHMARKS), str(folder)]),
           "ALLENNLP09_DATA_STANDINS": "1" if tier != "strict" else "0",
           "ALLENNLP09_STATEFUL_DEFAULT": "1" if tier == "stateful" else "0", "HF_DATASETS_OFFLINE": "1",
           "ELMO_TASKS_CACHE": str(folder / "cache")}
    subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "--rootdir", str(folder),
                    "-o", "addopts=", "--continue-on-collection-errors", f"--junitxml={report}",
                    *[f"{m}.py" for m in TEST_FILES.values()]],
                   cwd=folder, env=env, stdout=subprocess.DEVNULL, check=False)
    results = []
    for case in ElementTree.parse(report).iter("testcase"):
        test_id = f"{case.get('classname')}.{case.get('name')}"
        problem = case.find("failure") if case.find("failure") is not None else case.find("error")
        if problem is not None:
            results.append((test_id, "fail", (problem.get("message") or "").splitlines()[0][:160]))
        elif case.find("skipped") is not None:
            results.append((test_id, "skip", case.find("skipped").get("message") or ""))
        else:
            results.append((test_id, "pass", ""))
    return results


def classify(test_id: str, outcome: str, message: str, tier: str) -> str:
    if outcome == "pass":
        return "pass"
    if tier == "stateful" and DESIGN_CHOICES.get(test_id, "").startswith("stateless default"):
        return f"UNEXPECTED: fails even when stateful: {message}"
    for kind, label in (("NeedsFramework", "framework"), ("MissingInCompat", "missing from the compat")):
        if kind in message:
            return f"{label}: {message.split(kind + ':', 1)[-1].strip()}"
    if test_id in DESIGN_CHOICES:
        return f"design choice: {DESIGN_CHOICES[test_id]} [it failed with: {message[:90]}]"
    return f"UNEXPECTED: {message}"


def summarise(tier: str, results: list[tuple[str, str, str]]) -> bool:
    """Print the tier's table; True when nothing failed unexpectedly."""
    classified = [(t, classify(t, o, m, tier)) for t, o, m in results]
    core = [c for t, c in classified if t.split(".")[0] in CORE_MODULES]
    print(f"\n== tier {tier}: {sum(c == 'pass' for _, c in classified)} of {len(classified)} pass "
          f"({sum(c == 'pass' for c in core)} of {len(core)} in the three ELMo test files)")
    for test_id, label in classified:
        print(f"  {label.split(':')[0]:<24} {test_id}" + (f"  -- {label.split(':', 1)[1].strip()}" if ":" in label else ""))
    return not any(label.startswith("UNEXPECTED") for _, label in classified)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, default=ROOT, help="checkout whose elmo_tasks is tested (default: this one)")
    parser.add_argument("--wheel", type=Path, help="allennlp-0.9.0 wheel (default: download it into the cache)")
    parser.add_argument("--tier", choices=["strict", "data", "stateful", "all"], default="all")
    args = parser.parse_args()
    cache = Path(os.environ.get("ELMO_TASKS_CACHE", Path.home() / ".cache" / "elmo-tasks")) / "allennlp09"
    wheel = args.wheel or fetch_wheel(cache)
    print(f"AllenNLP {VERSION} ELMo tests from {wheel.name} against {args.repo.resolve()}/elmo_tasks")
    ok = True
    with tempfile.TemporaryDirectory(prefix="allennlp09_tests_") as tmp:
        folder = Path(tmp)
        prepare(wheel, folder)
        for tier in (["strict", "data", "stateful"] if args.tier == "all" else [args.tier]):
            ok = summarise(tier, run_tier(folder, args.repo.resolve(), tier)) and ok
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
