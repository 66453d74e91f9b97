"""Task-model archives (``elmo-tasks package``) and ``elmo-tasks predict``: the archive predicts as the run
folder does, offline; damaged or hostile archives are one-line errors that write nothing outside the cache."""

from __future__ import annotations

import io
import json
import tarfile

import pytest
from cli_util import assert_user_error, run_cli
from tasks_util import (
    TASK_FIXTURES,
    fixture_config,
    one_thread,  # noqa: F401  (autouse: one torch thread)
)

from elmo_tasks import TaskModel
from elmo_tasks.errors import UserError
from elmo_tasks.formats import archive_limits
from elmo_tasks.task_model.archive import write_archive
from elmo_tasks.task_model.parts import from_run_folder
from elmo_tasks.training import trainer

SMALL = {"dataset.max_examples": 40, "trainer.epochs": 1}
TEXT = ["Lady Gaga  sang in   New York tonight", "\tthe \"Big Apple\" , again", "zzqx blorp"]


@pytest.fixture(scope="module")
def made(tmp_path_factory):
    root = tmp_path_factory.mktemp("archive")
    config = fixture_config("wnut16_elmo", root / "cache", **SMALL)
    trainer.run(config, root / "run", progress=False, echo=False)
    write_archive(from_run_folder(root / "run"), root / "model.tar.gz")
    return root


@pytest.fixture(autouse=True)
def own_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))


def members(path):
    with tarfile.open(path, "r:gz") as tar:
        return {m.name: tar.extractfile(m).read() for m in tar}


def rewrite(path, out, change):
    """Copy archive ``path`` to ``out`` after ``change(dict of name -> bytes)``; returns ``out``."""
    data = members(path)
    change(data)
    with tarfile.open(out, "w:gz") as tar:
        for name, content in data.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))
    return out


def test_the_archive_predicts_as_the_run_folder(made, tmp_path):
    folder, archive = TaskModel.load(made / "run"), TaskModel.load(made / "model.tar.gz")
    assert archive.predict(TEXT) == folder.predict(TEXT)
    assert archive.info()["test"] == folder.info()["test"] and archive.info()["bilm"] == folder.info()["bilm"]
    names = set(members(made / "model.tar.gz"))
    assert {"meta.json", "config.yaml", "network.safetensors", "glove.safetensors", "bilm/weights.hdf5",
            "MODEL_CARD.md"} <= names and not any(n.endswith((".pt", ".pkl")) for n in names)
    config = members(made / "model.tar.gz")["config.yaml"].decode()
    assert str(TASK_FIXTURES) not in config and "/work/" not in config  # no path of the training machine
    unpacked = list((tmp_path / "cache" / "task-models").iterdir())
    assert len(unpacked) == 1 and (unpacked[0] / "bilm" / "options.json").is_file()
    assert TaskModel.load(made / "model.tar.gz").predict(TEXT[:1]) == folder.predict(TEXT[:1])  # reused


def test_bilm_by_reference(made, tmp_path):
    result = run_cli("package", made / "run", tmp_path / "ref.tar.gz", "--bilm-ref", "fixture")
    assert result.returncode == 0, result.stderr
    assert "bilm/weights.hdf5" not in members(tmp_path / "ref.tar.gz")
    assert TaskModel.load(tmp_path / "ref.tar.gz").predict(TEXT) == TaskModel.load(made / "run").predict(TEXT)
    assert_user_error(run_cli("package", made / "run", tmp_path / "x.tar.gz", "--bilm-ref", "default"),
                      "--bilm-ref default", "digests differ")


def _meta_for(data, name):
    meta = json.loads(data["meta.json"])
    import hashlib

    meta["members"][name] = {"sha256": hashlib.sha256(data[name]).hexdigest(), "size": len(data[name])}
    data["meta.json"] = json.dumps(meta).encode()


HOSTILE = {
    "a member that leaves the folder": (lambda d: d.update({"../evil.txt": b"x"}), "points outside the archive"),
    "an absolute member": (lambda d: d.update({"/tmp/evil.txt": b"x"}), "points outside the archive"),
    "a pickle member": (lambda d: d.update({"network.pt": b"\x80\x04K\x01."}), "'network.pt' is not part"),
    "a wrong digest": (lambda d: d.update({"task.json": d["task.json"].replace(b"B-", b"X-", 1)}), "does not match its sha256"),
    "a pickle as safetensors": (lambda d: (d.update({"network.safetensors": b"\x80\x04\x95" + b"\0" * 64}),
                                           _meta_for(d, "network.safetensors")), "not a safetensors file"),
    "absurd tensor shapes": (lambda d: (d.update({"network.safetensors": _reshaped(d["network.safetensors"])}),
                                        _meta_for(d, "network.safetensors")), "does not fit the network"),
    "a missing member": (lambda d: d.pop("network.safetensors"), "network.safetensors is missing"),
    "glosses that are not strings": (lambda d: (d.update({"task.json": _with_glosses(d["task.json"])}),
                                                _meta_for(d, "task.json")), "glosses must map sense keys"),
}


def _with_glosses(blob):
    task = json.loads(blob)
    task["glosses"] = {"bank%1:14:00::": {"gloss": ["a", "list"]}}
    return json.dumps(task).encode()


def _reshaped(blob):
    """The same tensors with one shape claiming a million times more rows (and offsets to match nothing)."""
    import struct

    (n,) = struct.unpack("<Q", blob[:8])
    header = json.loads(blob[8:8 + n])
    name = next(k for k in header if k != "__metadata__" and len(header[k]["shape"]) == 2)
    rows, cols = header[name]["shape"]
    header[name]["shape"] = [cols, rows]  # the same bytes, the wrong shape for the config's network
    text = json.dumps(header).encode()
    text += b" " * (-len(text) % 8)
    return struct.pack("<Q", len(text)) + text + blob[8 + n:]


@pytest.mark.parametrize("case", sorted(HOSTILE))
def test_hostile_archives_are_one_line_errors(made, tmp_path, case):
    change, message = HOSTILE[case]
    bad = rewrite(made / "model.tar.gz", tmp_path / "bad.tar.gz", change)
    with pytest.raises(UserError, match=message):
        TaskModel.load(bad)
    assert not (tmp_path / "evil.txt").exists()
    left = list((tmp_path / "cache" / "task-models").iterdir()) if (tmp_path / "cache" / "task-models").exists() else []
    assert [p for p in left if not p.name.startswith(".")] == []  # nothing kept of a refused archive


def test_symlinks_truncation_and_bombs(made, tmp_path, monkeypatch):
    link = tmp_path / "link.tar.gz"
    with tarfile.open(link, "w:gz") as tar:
        info = tarfile.TarInfo("config.yaml")
        info.type, info.linkname = tarfile.SYMTYPE, "/etc/passwd"
        tar.addfile(info)
    with pytest.raises(UserError, match="not a regular file"):
        TaskModel.load(link)
    blob = (made / "model.tar.gz").read_bytes()
    (tmp_path / "cut.tar.gz").write_bytes(blob[: len(blob) // 2])
    with pytest.raises(UserError, match="damaged or truncated"):
        TaskModel.load(tmp_path / "cut.tar.gz")
    bomb = tmp_path / "bomb.tar.gz"  # 20 MB of zeros in a few KB: past 64x its size once the floor is lowered
    with tarfile.open(bomb, "w:gz") as tar:
        info = tarfile.TarInfo("config.yaml")
        info.size = 20 << 20
        tar.addfile(info, io.BytesIO(bytes(info.size)))
    assert bomb.stat().st_size < 100_000
    monkeypatch.setattr(archive_limits, "RATIO_FLOOR", 0)
    with pytest.raises(UserError, match="decompression bomb"):
        TaskModel.load(bomb)
    assert TaskModel.load(made / "model.tar.gz").labels  # a real archive stays within the lowered bounds


def test_predict_command(made, tmp_path):
    text = tmp_path / "in.txt"
    text.write_text("\n".join(TEXT) + "\n\n")
    result = run_cli("predict", made / "model.tar.gz", text, "--quiet")
    assert result.returncode == 0, result.stderr
    rows = [json.loads(line) for line in result.stdout.splitlines()]
    assert rows == TaskModel.load(made / "run").predict(TEXT)
    test = TASK_FIXTURES / "wnut16" / "test.conll"
    result = run_cli("predict", made / "run", test, "--format", "conll", "--evaluate", "--quiet",
                     "--output-format", "conll", "--out", tmp_path / "out.conll", "--batch-size", "5", "--threads", "1")
    assert result.returncode == 0, result.stderr
    scores = json.loads(result.stdout.splitlines()[-1])
    assert set(scores) == {"accuracy", "span_f1", "span_precision", "span_recall"}
    assert (tmp_path / "out.conll").read_text().count("\n\n") == 80
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = run_cli("predict", made / "run", empty, "--quiet")
    assert result.returncode == 0 and result.stdout == ""
    jsonl = tmp_path / "in.jsonl"
    jsonl.write_text(json.dumps({"tokens": ["New", "York"]}) + "\n" + json.dumps({"text": TEXT[0]}) + "\n")
    result = run_cli("predict", made / "run", jsonl, "--format", "jsonl", "--quiet", "--output-format", "tsv")
    assert result.returncode == 0 and result.stdout.splitlines()[0].startswith("New York\t")
