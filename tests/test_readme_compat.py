"""The README's "Coming from TF-Hub or AllenNLP" programs run as written, on the fixture models."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

ROOT = Path(__file__).parents[1]
TF = ROOT / "tests" / "fixtures" / "tf"
ELMO = ROOT / "tests" / "fixtures" / "elmo"


def section_programs() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Coming from TF-Hub or AllenNLP", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def run(tmp_path: Path, code: str, replacements: dict[str, Path], capsys) -> str:
    for old, new in replacements.items():
        assert f'"{old}"' in code
        code = code.replace(f'"{old}"', repr(str(new)))
    script = tmp_path / "program.py"
    script.write_text(code)
    runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out


def test_readme_has_both_programs():
    programs = section_programs()
    assert len(programs) == 2
    assert "compat import tfhub" in programs[0] and "compat.allennlp import" in programs[1]


def test_tfhub_watch_program(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))
    out = run(tmp_path, section_programs()[0], {"elmo_3.tar.gz": TF / "hub_module.tar.gz"}, capsys)
    cosine = float(re.search(r"cosine similarity (-?[0-9.]+)", out).group(1))
    assert -1.0 <= cosine < 0.9999  # two contexts, two different vectors
    assert "elmo (2, 6, 32) default (2, 32) sequence_len [5 6]" in out


def test_allennlp_program(tmp_path, capsys):
    out = run(tmp_path, section_programs()[1], {"elmo_2x4096_512_2048cnn_2xhighway_options.json": ELMO / "options.json",
                                                "elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5": ELMO / "lm_weights.hdf5"},
              capsys)
    assert out.strip() == "[(2, 3, 32), (2, 3, 32)] (2, 3)"
