"""The ELMo layer cache: same values as the biLM, reuse, invalidation, atomic writes."""

from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from tasks_util import (
    TASK_FIXTURES,
    one_thread,  # noqa: F401  (autouse: one torch thread)
)

from elmo_tasks.cli import main
from elmo_tasks.embedder import FIXTURE_MODEL_DIR, Embedder
from elmo_tasks.features.cache import LayerCache

SENTENCES = [["The", "cat", "sat", "."], ["Hello"], [], ["A", "much", "longer", "sentence", "than", "the", "others", "here"]]


def expected_layers(sentences):
    embedder = Embedder.from_dir(FIXTURE_MODEL_DIR)
    return [a.transpose(1, 0, 2) for a in embedder.embed_batch(sentences)]  # (n, L, D) each


@pytest.mark.parametrize("dtype, atol", [("float32", 1e-6), ("float16", 2e-3)])
def test_cached_layers_equal_the_biLM(tmp_path, dtype, atol):
    cache = LayerCache(FIXTURE_MODEL_DIR, tmp_path, dtype)
    found = cache.get(SENTENCES, progress=False)
    assert found.layers.dtype == getattr(torch, dtype)
    assert list(found.offsets) == [0, 4, 5, 5, 13]
    for row, expected in enumerate(expected_layers(SENTENCES)):
        got = found.layers[found.offsets[row]:found.offsets[row + 1]].float().numpy()
        np.testing.assert_allclose(got, expected, atol=atol, rtol=1e-3)
    layers, mask = found.batch([3, 0, 2])
    assert layers.shape == (3, 3, 8, 32) and mask.sum(1).tolist() == [8, 4, 0]
    assert torch.equal(layers[1, :, 4:], torch.zeros(3, 4, 32, dtype=layers.dtype))


def test_reuse_and_invalidation(tmp_path, monkeypatch):
    cache = LayerCache(FIXTURE_MODEL_DIR, tmp_path)
    first = cache.get(SENTENCES, progress=False)
    monkeypatch.setattr(LayerCache, "build", lambda *a, **k: pytest.fail("rebuilt a valid cache"))
    again = LayerCache(FIXTURE_MODEL_DIR, tmp_path).get(SENTENCES, progress=False)
    assert again.path == first.path
    monkeypatch.undo()
    # other sentences, another dtype or another model: another cache
    changed = [s[:] for s in SENTENCES]
    changed[0][1] = "dog"
    assert cache.path_for(changed) != first.path
    assert LayerCache(FIXTURE_MODEL_DIR, tmp_path, "float32").path_for(SENTENCES) != first.path
    model = tmp_path / "model"
    shutil.copytree(FIXTURE_MODEL_DIR, model)
    with h5py.File(model / "weights.hdf5", "r+") as handle:
        handle["CNN_proj/b_proj"][0] += 0.5
    other = LayerCache(model, tmp_path)
    assert other.path_for(SENTENCES).parent != first.path.parent
    assert other.lookup(SENTENCES) is None
    built = other.get(SENTENCES, progress=False)
    assert not torch.equal(built.layers, first.layers)


def test_a_killed_build_leaves_nothing_trusted(tmp_path, monkeypatch):
    cache = LayerCache(FIXTURE_MODEL_DIR, tmp_path)
    calls = []

    def dying(self, sentences):
        for array in original(self, sentences):
            calls.append(1)
            if len(calls) == 2:
                raise KeyboardInterrupt
            yield array

    original = Embedder.embed_sentences
    monkeypatch.setattr(Embedder, "embed_sentences", dying)
    with pytest.raises(KeyboardInterrupt):
        cache.build(SENTENCES, progress=False)
    monkeypatch.undo()
    target = cache.path_for(SENTENCES)
    assert not target.exists() and list(target.parent.iterdir()) == []
    assert cache.lookup(SENTENCES) is None
    # a folder without meta.json (killed between files) or with damaged arrays is not trusted
    cache.build(SENTENCES, progress=False)
    (target / "meta.json").unlink()
    assert cache.lookup(SENTENCES) is None
    cache.build(SENTENCES, progress=False)  # replaces the untrusted folder
    assert cache.lookup(SENTENCES) is not None
    np.save(target / "offsets.npy", np.array([0, 4, 5, 5, 12]))
    assert cache.lookup(SENTENCES) is None


def test_cache_command_builds_then_reuses(tmp_path, capsys):
    config = tmp_path / "wsd.yaml"
    config.write_text(f"extends: {TASK_FIXTURES / 'wsd_elmo.yaml'}\n"
                      f"features: {{elmo: {{cache_dir: {tmp_path / 'cache'}}}}}\n", encoding="utf-8")
    assert main(["cache", str(config), "--quiet"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert [line.split(":")[1].split(",")[0].strip() for line in out] == ["built"] * 3
    assert out[0].startswith("wsd train: built, 680 sentences")
    assert main(["cache", str(config), "--quiet"]) == 0
    assert [line.split(":")[1].split(",")[0].strip() for line in capsys.readouterr().out.splitlines()] == ["cached"] * 3
    meta = json.loads(next((tmp_path / "cache").rglob("meta.json")).read_text())
    assert meta["dtype"] == "float16" and meta["num_layers"] == 3 and meta["dim"] == 32


def test_cache_command_needs_elmo(capsys):
    assert main(["cache", str(TASK_FIXTURES / "wnut16_glove.yaml")]) == 2
    assert "features.elmo is not set" in capsys.readouterr().err


def test_torchrun_two_processes_build_the_single_process_cache(tmp_path):
    """``torchrun --nproc_per_node 2 ... cache``: each rank fills its block of rows of one cache, which
    equals the cache one process builds (same folder name, offsets and layers)."""
    import os
    import subprocess
    import sys

    caches = {}
    for name, launcher in [("one", []), ("two", ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2"])]:
        config = tmp_path / f"{name}.yaml"
        config.write_text(f"extends: {TASK_FIXTURES / 'wsd_elmo.yaml'}\n"
                          f"features: {{elmo: {{cache_dir: {tmp_path / name}, cache_dtype: float32}}}}\n", encoding="utf-8")
        command = [sys.executable, *(launcher or []), "-m", "elmo_tasks.cli", "cache", str(config), "--quiet"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "OMP_NUM_THREADS": "1"})
        assert done.returncode == 0, done.stderr
        assert [line.split(":")[1].split(",")[0].strip() for line in done.stdout.splitlines()] == ["built"] * 3
        caches[name] = sorted(p.relative_to(tmp_path / name) for p in (tmp_path / name).rglob("meta.json"))
        if launcher:
            assert "rank 1 of 2: done" in done.stderr
    assert caches["one"] == caches["two"] and len(caches["one"]) == 3  # same keys, no temporary folder left
    for meta_path in caches["one"]:
        one, two = (tmp_path / name / meta_path.parent for name in ("one", "two"))
        assert sorted(p.name for p in two.iterdir()) == ["layers.npy", "meta.json", "offsets.npy"]
        assert json.loads((two / "meta.json").read_text())["processes"] == 2
        np.testing.assert_array_equal(np.load(one / "offsets.npy"), np.load(two / "offsets.npy"))
        layers_one, layers_two = np.load(one / "layers.npy"), np.load(two / "layers.npy")
        assert layers_one.shape == layers_two.shape
        assert np.count_nonzero(np.abs(layers_two).sum(axis=(1, 2)) == 0) == 0  # every token's row was written
        np.testing.assert_allclose(layers_two, layers_one, atol=1e-6, rtol=0)


def test_an_unwritable_cache_dir_is_a_one_line_error(tmp_path, capsys):
    (tmp_path / "afile").write_text("not a folder")
    config = tmp_path / "bad.yaml"
    config.write_text(f"extends: {TASK_FIXTURES / 'wsd_elmo.yaml'}\n"
                      f"features: {{elmo: {{cache_dir: {tmp_path / 'afile' / 'sub'}}}}}\n", encoding="utf-8")
    assert main(["cache", str(config), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elmo-tasks: error: cannot write the feature cache under") and err.count("\n") == 1
    assert "cache_dir" in err and "Not a directory" in err
