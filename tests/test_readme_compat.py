"""The README's "Coming from TF-Hub or AllenNLP" programs run as written, with their original URL lines,
through a mirror on 127.0.0.1 serving the fixture models (tests/http_util.py); and give the same
output with those lines pointed at the local files."""

from __future__ import annotations

import re
import runpy
from pathlib import Path

import numpy as np
import pytest
from http_util import FileServer

ROOT = Path(__file__).parents[1]
TF = ROOT / "tests" / "fixtures" / "tf"
ELMO = ROOT / "tests" / "fixtures" / "elmo"
ALLENNLP = "https://allennlp.s3.amazonaws.com/models/elmo/2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway"
TFHUB = "https://tfhub.dev/google/elmo/3"


def section_programs() -> list[str]:
    text = (ROOT / "README.md").read_text(encoding="utf-8")
    section = text.split("## Coming from TF-Hub or AllenNLP", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)


def run(tmp_path: Path, code: str, replacements: dict[str, Path], capsys) -> tuple[str, dict]:
    """The program's output and its variables once it ran."""
    for old, new in replacements.items():
        assert f'"{old}"' in code
        code = code.replace(f'"{old}"', repr(str(new)))
    script = tmp_path / "program.py"
    script.write_text(code)
    variables = runpy.run_path(str(script), run_name="__main__")
    return capsys.readouterr().out, variables


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))
    monkeypatch.delenv("ELMO_TASKS_OFFLINE", raising=False)
    with FileServer() as server:
        server.add("/google/elmo/3", TF / "hub_module.tar.gz")
        server.add("/models/elmo/2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway_options.json",
                   ELMO / "options.json")
        server.add("/models/elmo/2x4096_512_2048cnn_2xhighway/elmo_2x4096_512_2048cnn_2xhighway_weights.hdf5",
                   ELMO / "lm_weights.hdf5")
        # the README writes AllenNLP's allennlp.s3.amazonaws.com form; its canonical form keeps /allennlp/ in the path
        for path in list(server.files):
            if path.startswith("/models/"):
                server.files["/allennlp" + path] = server.files.pop(path)
        monkeypatch.setenv("ELMO_TASKS_MODEL_MIRROR", server.url)
        yield server


def test_readme_has_both_programs():
    programs = section_programs()
    assert len(programs) == 2
    assert "compat import tfhub" in programs[0] and "compat.allennlp import" in programs[1]
    assert f'hub.Module("{TFHUB}"' in programs[0] and f'"{ALLENNLP}_options.json"' in programs[1]


def test_tfhub_watch_program(tmp_path, mirror, capsys):
    out, program = run(tmp_path, section_programs()[0], {}, capsys)
    assert [r["query"] for r in mirror.requests("/google/elmo/3")] == ["tf-hub-format=compressed"]
    cosine = float(re.search(r"cosine similarity (-?[0-9.]+)", out).group(1))
    assert -1.0 <= cosine < 0.9999  # two contexts, two different vectors
    assert "elmo (2, 6, 32) default (2, 32) sequence_len [5 6]" in out
    local_out, local = run(tmp_path, section_programs()[0], {TFHUB: TF / "hub_module.tar.gz"}, capsys)
    assert local_out == out
    np.testing.assert_array_equal(program["vectors"], local["vectors"])  # the same numbers as from the local file


def test_allennlp_program(tmp_path, mirror, capsys):
    out, program = run(tmp_path, section_programs()[1], {}, capsys)
    assert len(mirror.log) == 2 and all(r["status"] == 200 for r in mirror.log)
    assert out.strip() == "[(2, 3, 32), (2, 3, 32)] (2, 3)"
    local = {f"{ALLENNLP}_options.json": ELMO / "options.json", f"{ALLENNLP}_weights.hdf5": ELMO / "lm_weights.hdf5"}
    local_out, local_program = run(tmp_path, section_programs()[1], local, capsys)
    assert local_out == out
    for remote, here in zip(program["embeddings"]["elmo_representations"], local_program["embeddings"]["elmo_representations"]):
        np.testing.assert_array_equal(remote.detach().numpy(), here.detach().numpy())
