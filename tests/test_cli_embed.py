"""The ``embed`` and ``embed-file`` commands: output formats, the fixture through the command line,
and user errors (one line, exit 2, no half-written output)."""

import json
import shutil
import subprocess
import sys

import h5py
import numpy as np
import pytest

from elmo_tasks.cli import main


def model_args(elmo_fixtures):
    return ["--options", str(elmo_fixtures / "options.json"), "--weights", str(elmo_fixtures / "lm_weights.hdf5")]


def model_dir(tmp_path, elmo_fixtures):
    directory = tmp_path / "model"
    directory.mkdir(exist_ok=True)
    shutil.copy(elmo_fixtures / "options.json", directory / "options.json")
    shutil.copy(elmo_fixtures / "lm_weights.hdf5", directory / "weights.hdf5")
    return str(directory)


def test_embed_shows_two_different_vectors_for_watch(capsys, tmp_path, elmo_fixtures):
    code = main(["embed", "I love to watch TV", "I am wearing a wrist watch", "--word", "watch",
                 "--model", model_dir(tmp_path, elmo_fixtures)])
    out = capsys.readouterr().out
    assert code == 0
    assert "sentence 1: 5 tokens" in out and "layers: (3, 5, 32)" in out and "layers: (3, 6, 32)" in out
    vectors = [line.split(":", 1)[1] for line in out.splitlines() if line.strip().startswith("layer 2:")]
    assert len(vectors) == 2 and vectors[0] != vectors[1]
    row = [line for line in out.splitlines() if "1 vs 2" in line][0].split()
    cosines = [float(v) for v in row[3:]]
    assert cosines[0] == pytest.approx(1.0) and max(cosines[1:]) < 0.999


def test_embed_defaults_to_the_shipped_model(capsys):
    assert main(["embed", "hello world"]) == 0
    assert "sentence 1: 2 tokens" in capsys.readouterr().out


def test_embed_unknown_word_is_a_one_line_error(capsys):
    assert main(["embed", "hello world", "--word", "watch"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1].startswith("elmo-tasks: error: --word 'watch' does not occur")


def fixture_lines_in_batch_order(fixture_sentences):
    """Batch i of the reference test = sentence i of each of the 3 lists, in order."""
    return [fixture_sentences[k][i] for i in range(10) for k in range(3)]


def test_embed_file_reproduces_the_fixture_statefully(tmp_path, elmo_fixtures, fixture_sentences, expected_top_layers):
    lines = fixture_lines_in_batch_order(fixture_sentences)
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    output = tmp_path / "out.hdf5"
    code = main(["embed-file", str(source), str(output), *model_args(elmo_fixtures), "--stateful",
                 "--batch-size", "3", "--layers", "top", "--quiet"])
    assert code == 0
    with h5py.File(output, "r") as handle:
        for index in range(30):
            i, k = divmod(index, 3)
            got = handle[str(index)][...]
            assert got.shape == (len(lines[index].split()), 32) and got.dtype == np.float32
            assert np.allclose(got, expected_top_layers[k][i], atol=1e-6)
        assert handle["sentence_to_index"].shape == (1,)  # AllenNLP's layout
        mapping = json.loads(handle["sentence_to_index"][0])
        assert mapping[lines[4]] == "4"


def test_embed_file_layers_formats_and_empty_lines(tmp_path, elmo_fixtures):
    source = tmp_path / "in.txt"
    source.write_text("the cat sat\n\nDogs bark loudly today .\n")
    shapes = {"all": (3, 3, 32), "top": (3, 32), "average": (3, 32)}
    results = {}
    for layers, shape in shapes.items():
        output = tmp_path / f"{layers}.hdf5"
        assert main(["embed-file", str(source), str(output), "--model", model_dir(tmp_path, elmo_fixtures),
                     "--layers", layers, "--quiet"]) == 0
        with h5py.File(output, "r") as handle:
            assert handle["0"].shape == shape
            assert handle["1"].shape == ((3, 0, 32) if layers == "all" else (0, 32))
            assert handle["2"].shape[-2:] == (5, 32)
            results[layers] = handle["0"][...]
    assert np.allclose(results["top"], results["all"][2])
    assert np.allclose(results["average"], results["all"].mean(axis=0), atol=1e-6)


def test_embed_file_is_batch_invariant_by_default(tmp_path, elmo_fixtures, fixture_sentences):
    source = tmp_path / "in.txt"
    source.write_text("\n".join(fixture_sentences[0]) + "\n")
    arrays = []
    for batch_size in ("1", "4", "64"):
        output = tmp_path / f"b{batch_size}.hdf5"
        assert main(["embed-file", str(source), str(output), *model_args(elmo_fixtures), "--batch-size", batch_size,
                     "--quiet"]) == 0
        with h5py.File(output, "r") as handle:
            arrays.append([handle[str(i)][...] for i in range(10)])
    for i in range(10):
        assert np.allclose(arrays[0][i], arrays[1][i], atol=1e-6) and np.allclose(arrays[0][i], arrays[2][i], atol=1e-6)


def test_embed_file_errors_leave_no_output(tmp_path, elmo_fixtures, capsys):
    output = tmp_path / "out.hdf5"
    assert main(["embed-file", str(tmp_path / "missing.txt"), str(output), "--quiet"]) == 2
    assert "input file not found" in capsys.readouterr().err
    bad = tmp_path / "bad.txt"
    bad.write_bytes(b"fine line\nanother fine line\nbroken \xff\xfe line\n")
    assert main(["embed-file", str(bad), str(output), *model_args(elmo_fixtures), "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("elmo-tasks: error:") and "line 3: not valid UTF-8" in err
    assert list(tmp_path.glob("out.hdf5*")) == []  # neither the output nor its temporary file
    assert main(["embed-file", str(bad), str(output), "--model", str(tmp_path / "nomodel"), "--quiet"]) == 2
    assert "model folder not found" in capsys.readouterr().err
    assert main(["embed-file", str(bad), str(output), "--options", "x.json", "--quiet"]) == 2
    assert "--options and --weights go together" in capsys.readouterr().err


def test_console_entry_point_runs(tmp_path, elmo_fixtures):
    """The installed command, as a user runs it: a user error is one line on stderr, exit 2."""
    result = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "embed-file", str(tmp_path / "none.txt"),
                             str(tmp_path / "o.hdf5")], capture_output=True, text=True)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == f"elmo-tasks: error: input file not found: {tmp_path / 'none.txt'}"
    assert "Traceback" not in result.stderr
