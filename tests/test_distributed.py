"""Sharding across processes: the index blocks, the HDF5 merge, and a real 2-process torchrun (gloo)
``embed-file`` run compared with a single-process run."""

import json
import os
import subprocess
import sys

import h5py
import numpy as np
import pytest

from elmo_tasks.distributed import Rank, embed_file_sharded, merge_hdf5_shards, shard_indices, shard_path
from elmo_tasks.embedder import Embedder, count_lines
from elmo_tasks.errors import UserError


@pytest.mark.parametrize("n,world", [(0, 2), (1, 2), (7, 3), (30, 2), (100, 7)])
def test_shards_cover_every_index_once_in_order(n, world):
    blocks = [shard_indices(n, rank, world) for rank in range(world)]
    assert [i for block in blocks for i in block] == list(range(n))
    assert max(map(len, blocks)) - min(map(len, blocks)) <= 1
    with pytest.raises(ValueError):
        shard_indices(n, world, world)


def test_merge_keeps_every_dataset_and_the_last_json_value(tmp_path):
    for rank, (names, mapping) in enumerate([(["0", "1"], {"a": "0", "b": "1"}), (["2"], {"a": "2", "c": "2"})]):
        with h5py.File(shard_path(tmp_path / "out.hdf5", rank, 2), "w") as handle:
            for name in names:
                handle.create_dataset(name, data=np.full((2, 3), int(name), dtype=np.float32))
            handle.create_dataset("sentence_to_index", data=json.dumps(mapping), dtype=h5py.string_dtype())
    shards = [shard_path(tmp_path / "out.hdf5", r, 2) for r in range(2)]
    merge_hdf5_shards(shards, tmp_path / "out.hdf5", json_maps=["sentence_to_index"])
    with h5py.File(tmp_path / "out.hdf5", "r") as handle:
        assert sorted(handle) == ["0", "1", "2", "sentence_to_index"]
        assert handle["2"][0, 0] == 2.0
        assert handle["sentence_to_index"].shape == (1,)
        assert json.loads(handle["sentence_to_index"][0]) == {"a": "2", "b": "1", "c": "2"}  # the last line wins
    with pytest.raises(UserError, match="must not overlap"):
        merge_hdf5_shards([shards[0], shards[0]], tmp_path / "again.hdf5")
    assert not (tmp_path / "again.hdf5").exists()


def test_stateful_runs_refuse_to_shard(elmo_fixtures, tmp_path):
    embedder = Embedder.from_files(elmo_fixtures / "options.json", elmo_fixtures / "lm_weights.hdf5", stateful=True)
    (tmp_path / "in.txt").write_text("a b\n")
    with pytest.raises(UserError, match="cannot be split"):
        embed_file_sharded(embedder, tmp_path / "in.txt", tmp_path / "out.hdf5", rank=Rank(0, 2, 0))


def test_count_lines(tmp_path):
    for text, n in [("", 0), ("a", 1), ("a\n", 1), ("a\n\nb", 3), ("a\nb\n", 2)]:
        (tmp_path / "f.txt").write_text(text)
        assert count_lines(tmp_path / "f.txt") == n


def test_torchrun_two_processes_equal_one(elmo_fixtures, fixture_sentences, tmp_path):
    lines = [s for k in range(3) for s in fixture_sentences[k]]
    lines += ["", lines[0], "a last line"]  # an empty line, and a repeat of line 0 in the second shard
    source = tmp_path / "in.txt"
    source.write_text("\n".join(lines) + "\n")
    model = ["--options", str(elmo_fixtures / "options.json"), "--weights", str(elmo_fixtures / "lm_weights.hdf5")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    single = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "embed-file", str(source),
                             str(tmp_path / "one.hdf5"), "--quiet", "--batch-size", "4", *model],
                            capture_output=True, text=True, env=env, timeout=300)
    assert single.returncode == 0, single.stderr
    sharded = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                              "-m", "elmo_tasks.cli", "embed-file", str(source), str(tmp_path / "two.hdf5"),
                              "--quiet", "--batch-size", "4", *model],
                             capture_output=True, text=True, env=env, timeout=300)
    assert sharded.returncode == 0, sharded.stderr
    assert "rank 1 of 2: embedded 17 sentences" in sharded.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["in.txt", "one.hdf5", "two.hdf5"]  # no shard left
    with h5py.File(tmp_path / "one.hdf5", "r") as one, h5py.File(tmp_path / "two.hdf5", "r") as two:
        assert sorted(one) == sorted(two) and len(one) == len(lines) + 1
        for name in one:
            if name == "sentence_to_index":
                assert json.loads(two[name][0]) == json.loads(one[name][0])
            else:
                assert one[name].shape == two[name].shape
                assert np.allclose(one[name][...], two[name][...], atol=1e-6), name
        assert two["30"].shape == (3, 0, 32)


def test_commands_that_do_not_shard_refuse_torchrun(monkeypatch, capsys):
    from elmo_tasks.cli import main

    monkeypatch.setenv("RANK", "1")
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["embed", "a", "b"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("elmo-tasks: error: 'embed' does not split its work") and err.count("\n") == 1
