"""Damaged and hostile model files (issue 24): damaged copies of the TF-written fixtures, run through
the real command line, give one-line errors naming the user's file, never a traceback, a hang, lost
data or unbounded work. The full probe is benchmarks/hostile_models.py."""

from __future__ import annotations

import os
import shutil
import struct
import tempfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_util import assert_user_error, run_cli
from tf_surgery import edit_entry, edit_index, entry_fields, poke, set_field, shape_proto, tar_of

from elmo_tasks.cli import main
from elmo_tasks.errors import UserError

TF = Path(__file__).parent / "fixtures" / "tf"
TINY = Path(__file__).parents[1] / "elmo_tasks" / "models" / "tiny_fixture"
W_PROJ = "bilm/CNN_proj/W_proj"
LM_KERNEL = "lm/RNN_0/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel"


@pytest.fixture(autouse=True)
def private_dirs(tmp_path, monkeypatch):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "tmp").mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(tmp_path / "tmp"))


def user_error(capsys, argv: list, *words) -> str:
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and err.startswith("elmo-tasks: error: "), err
    assert "elmo-tasks-tfhub" not in err and ".tmp-" not in err, err  # never the temporary folder
    for word in words:
        assert str(word) in err, (word, err)
    return err


def module_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TF / "hub_module", tmp_path / "module"))


def save_copy(tmp_path: Path) -> Path:
    return Path(shutil.copytree(TF / "bilm_checkpoint", tmp_path / "save"))


def written_bytes() -> int:
    with open("/proc/self/io") as handle:
        return int(next(line.split()[1] for line in handle if line.startswith("wchar:")))


# -- a damaged TensorFlow index: checked before any data ----------------------------------------------

def _wrapping(parts):  # two huge dimensions whose int64 product wraps around to W_proj's 1,984 elements
    a = (1 << 40) + 1
    while (b := 1984 * pow(a, -1, 1 << 64) % (1 << 64)) >= 1 << 63:
        a += 2
    return set_field(parts, 2, 2, shape_proto([a, b]))


INDEX_DAMAGE = {
    "truncated crc32c field": (W_PROJ, lambda ps: [p for p in ps if p[0] != 6] + [[6, 5, b"\x01\x02"]]),
    "shape sent as a number": (W_PROJ, lambda ps: set_field(ps, 2, 0, 7)),
    "dtype sent as bytes": (W_PROJ, lambda ps: set_field(ps, 1, 2, b"\x01")),
    "negative dimensions": (W_PROJ, lambda ps: set_field(ps, 2, 2, shape_proto([-124, -16]))),
    "overflowing dimensions": (W_PROJ, _wrapping),
    "300 dimensions": (W_PROJ, lambda ps: set_field(ps, 2, 2, shape_proto([1] * 300))),
    "shard past the count": (W_PROJ, lambda ps: set_field(ps, 3, 0, 7)),
    "header: 0 shards": ("", lambda ps: set_field(ps, 1, 0, 0)),
    "W_proj int32": (W_PROJ, lambda ps: set_field(ps, 1, 0, 3)),
    "W_proj 3 dimensions": (W_PROJ, lambda ps: set_field(ps, 2, 2, shape_proto([124, 4, 4]))),
}


@pytest.mark.parametrize("case", sorted(INDEX_DAMAGE))
def test_a_damaged_index_is_one_line_error(tmp_path, capsys, case):
    module = module_copy(tmp_path)
    name, change = INDEX_DAMAGE[case]
    edit_entry(module / "variables" / "variables.index", name, change)
    user_error(capsys, ["convert", module, tmp_path / "out"], "variables.index")
    assert not (tmp_path / "out").exists()


def test_a_variable_name_that_is_not_utf8(tmp_path, capsys):
    module = module_copy(tmp_path)
    edit_index(module / "variables" / "variables.index", lambda es: es.__setitem__(-1, [es[-1][0] + b"\xff", es[-1][1]]))
    user_error(capsys, ["convert", module, tmp_path / "out"], "variables.index", "not a valid bundle entry")


def test_an_absurd_declared_shape_maps_nothing(tmp_path, capsys):
    module = module_copy(tmp_path)
    os.truncate(module / "variables" / "variables.data-00000-of-00001", 8 << 30)  # sparse
    edit_entry(module / "variables" / "variables.index", W_PROJ, lambda ps: set_field(set_field(
        [p for p in ps if p[0] != 6], 2, 2, shape_proto([1 << 20, 1 << 10, 2])), 5, 0, 8 << 30))
    user_error(capsys, ["convert", module, tmp_path / "out"], "CNN_proj/W_proj", "variables.index")


def test_sizes_over_the_bounds_are_refused_before_weights_are_written(tmp_path, capsys):
    """Every LSTM variable declares lstm.dim 32,768, consistently: refused from the index, nothing written."""
    module = module_copy(tmp_path)
    data = module / "variables" / "variables.data-00000-of-00001"
    end, c, p = [data.stat().st_size], 32768, 16

    def change(entries):
        for pair in entries:
            name = pair[0].decode()
            if "/lstm_cell/" in name:
                shape = {"kernel": [2 * p, 4 * c], "bias": [4 * c], "projection/kernel": [c, p]}[name.split("lstm_cell/")[1]]
                size = 4 * int(np.prod(shape))
                from tf_surgery import encode, fields

                pair[1] = encode(set_field(set_field(set_field([q for q in fields(pair[1]) if q[0] != 6], 2, 2,
                                                               shape_proto(shape)), 4, 0, end[0]), 5, 0, size))
                end[0] += size
    edit_index(module / "variables" / "variables.index", change)
    os.truncate(data, end[0])
    before = written_bytes()
    user_error(capsys, ["convert", module, tmp_path / "out"], "lstm.dim")
    assert written_bytes() - before < 1 << 20
    assert not (tmp_path / "out").exists() and not list(tmp_path.glob("out.tmp-*"))


# -- silent garbage: NaN/Inf and integer weights -------------------------------------------------------

def _poke_variable(prefix: Path, name: str, shards: int, value: float) -> None:
    entry = entry_fields(Path(f"{prefix}.index"), name)
    poke(Path(f"{prefix}.data-{entry.get(3, 0):05d}-of-{shards:05d}"), entry.get(4, 0), struct.pack("<f", value))


def test_nan_in_a_tfhub_variable_is_refused_by_embed(tmp_path, capsys):
    module = module_copy(tmp_path)
    _poke_variable(module / "variables" / "variables", W_PROJ, 1, float("nan"))
    user_error(capsys, ["embed", "I love it", "--model", module], W_PROJ, "NaN")


def test_inf_in_the_tfhub_layer_mix_is_refused(tmp_path, capsys):
    module = module_copy(tmp_path)
    _poke_variable(module / "variables" / "variables", "aggregation/weights", 1, float("inf"))
    user_error(capsys, ["convert", module, tmp_path / "out"], "aggregation/weights", "infinite")


def test_nan_in_a_bilm_tf_variable_is_refused(tmp_path, capsys):
    save = save_copy(tmp_path)
    _poke_variable(save / "model.ckpt-20", LM_KERNEL, 2, float("nan"))
    user_error(capsys, ["convert", save, tmp_path / "out"], LM_KERNEL, "NaN")


def _edit_hdf5(model: Path, name: str, edit) -> None:
    with h5py.File(model / "weights.hdf5", "r+") as handle:
        values = handle[name][...]
        del handle[name]
        handle.create_dataset(name, data=edit(values))


@pytest.mark.parametrize("edit, words", [
    (lambda v: np.where(np.arange(v.size).reshape(v.shape) == 5, np.nan, v), ["CNN_proj/W_proj", "NaN"]),
    (lambda v: (v * 100).astype("i4"), ["CNN_proj/W_proj", "int32"]),
])
def test_bad_hdf5_weights_are_refused_at_load(tmp_path, capsys, edit, words):
    model = Path(shutil.copytree(TINY, tmp_path / "model"))
    _edit_hdf5(model, "CNN_proj/W_proj", edit)
    user_error(capsys, ["embed", "I love it", "--model", model], "weights.hdf5", *words)


# -- archives ------------------------------------------------------------------------------------------

def nlpl_zip(tmp_path: Path, options: bytes | None = None) -> Path:
    path = tmp_path / "209.zip"
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.write(TINY / "weights.hdf5", "model.hdf5")
        archive.writestr("options.json", options if options is not None else (TINY / "options.json").read_bytes())
    return path


def _patch_zip(path: Path, flag: int | None = None, method: int | None = None) -> Path:
    """Set model.hdf5's flag bits or method, in its local header and its central directory entry."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        local = archive.getinfo("model.hdf5").header_offset
    central = raw.find(b"PK\x01\x02")  # model.hdf5 is written first
    assert raw[central + 46 : central + 56] == b"model.hdf5"
    for offset, base in ((6, local), (8, central)):
        if flag is not None:
            struct.pack_into("<H", raw, base + offset, flag)
        if method is not None:
            struct.pack_into("<H", raw, base + offset + 2, method)
    path.write_bytes(bytes(raw))
    return path


def _bad_central_directory(path: Path) -> Path:
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"PK\x01\x02")
    raw[pos + 4 : pos + 40] = bytes(range(36))
    path.write_bytes(bytes(raw))
    return path


@pytest.mark.parametrize("make, words", [
    (lambda t: _bad_central_directory(nlpl_zip(t)), []),
    (lambda t: _patch_zip(nlpl_zip(t), flag=1), ["model.hdf5", "encrypted"]),
    (lambda t: _patch_zip(nlpl_zip(t), method=9), ["model.hdf5", "deflate64"]),
    (lambda t: nlpl_zip(t, b'{"lstm": 5, "char_cnn": {}}'), ["options.json", "lstm"]),
    (lambda t: nlpl_zip(t, b'{"lstm": "\xff"}'), ["options.json", "UTF-8"]),
], ids=["central directory", "encrypted", "deflate64", "lstm 5", "not UTF-8"])
def test_bad_zips_are_one_line_errors(tmp_path, capsys, make, words):
    archive = make(tmp_path)
    user_error(capsys, ["convert", archive, tmp_path / "out"], archive, *words)
    assert not (tmp_path / "out").exists()


def _hub_tar(tmp_path: Path, extra: list | None = None, name: str = "elmo.tar.gz") -> Path:
    base = [(f"variables/{p.name}", p) for p in sorted((TF / "hub_module" / "variables").iterdir())]
    return tar_of(tmp_path / name, base + (extra or []))


def _raw_header(name: str, size: int, kind: bytes) -> bytes:
    block = bytearray(512)
    block[0 : len(name)] = name.encode()
    block[100:108], block[108:116], block[116:124] = b"0000644\0", b"0000000\0", b"0000000\0"
    block[124:136] = b"\x80" + size.to_bytes(11, "big")
    block[136:148], block[156:157] = b"00000000000\0", kind
    block[257:263], block[263:265], block[148:156] = b"ustar\0", b"00", b" " * 8
    block[148:156] = f"{sum(block):06o}\0 ".encode()
    return bytes(block)


def test_a_pax_header_claiming_gigabytes_is_refused_unread(tmp_path, capsys):
    archive = tmp_path / "pax.tar"
    archive.write_bytes(_raw_header("././@PaxHeader", 6 << 30, b"x") + bytes(4096))
    user_error(capsys, ["convert", archive, tmp_path / "out"], archive, "extended data")


def test_members_the_converter_never_reads_are_never_unpacked(tmp_path, capsys):
    (tmp_path / "noise").write_bytes(np.random.default_rng(0).bytes(20 << 20))
    archive = _hub_tar(tmp_path, [("assets/noise", tmp_path / "noise")])
    read = sum(p.stat().st_size for p in (TF / "hub_module" / "variables").iterdir())
    before = written_bytes()
    assert main(["convert", str(archive), str(tmp_path / "out")]) == 0
    assert written_bytes() - before < 2 * read + (1 << 20)  # the 20 MB member was skipped, not written
    with h5py.File(tmp_path / "out" / "weights.hdf5", "r") as got, h5py.File(TINY / "weights.hdf5", "r") as want:
        np.testing.assert_array_equal(got["CNN_proj/W_proj"][...], want["CNN_proj/W_proj"][...])


def test_an_error_inside_an_archive_names_the_archive_and_member(tmp_path, capsys):
    data = (TF / "hub_module" / "variables" / "variables.data-00000-of-00001").read_bytes()[:300_000]
    archive = tar_of(tmp_path / "t.tar.gz", [("variables/variables.index", TF / "hub_module/variables/variables.index"),
                                             ("variables/variables.data-00000-of-00001", data)])
    user_error(capsys, ["convert", archive, tmp_path / "out"], archive, "member variables/variables.data-00000-of-00001")


def test_a_killed_conversions_folders_are_swept_by_the_next(tmp_path, capsys):
    from elmo_tasks.atomic import _HOST as host

    dead = 2 ** 22 + 12345  # over pid_max's default: no such process
    stale = [tmp_path / "tmp" / f"elmo-tasks-tfhub.tmp-{dead}-{host}-abcdefgh", tmp_path / f"out.tmp-{dead}-{host}-abcdefgh"]
    for folder in stale:
        folder.mkdir()
        (folder / "variables.data-00000-of-00001").write_bytes(b"x" * 1000)
    assert main(["convert", str(_hub_tar(tmp_path)), str(tmp_path / "out")]) == 0
    assert not any(folder.exists() for folder in stale)
    assert list((tmp_path / "tmp").iterdir()) == []


# -- bilm-tf save folders ------------------------------------------------------------------------------

@pytest.mark.parametrize("change, words", [
    (lambda s: (s / "options.json").write_text('{"lstm": 5}'), ["options.json", "lstm"]),
    (lambda s: (s / "vocab.txt").write_bytes(b"<S>\n</S>\n\xff\xfe\n" * 14), ["vocab.txt, line 3", "UTF-8"]),
    (lambda s: (s / "checkpoint").write_bytes(b'model_checkpoint_path: "/x/mo\\qdel.ckpt-20"\n'), ["checkpoint", "\\q"]),
    (lambda s: (s / "checkpoint").write_bytes(b'model_checkpoint_path: "/x/mod\\377le.ckpt-20"\n'), ["checkpoint"]),
    (lambda s: ((s / "checkpoint").unlink(), (s / "checkpoint").mkdir()), ["checkpoint", "folder"]),
], ids=["lstm 5", "vocab not UTF-8", "bad escape", "escaped non-UTF-8", "checkpoint a folder"])
def test_a_damaged_save_folder_is_one_line_error(tmp_path, capsys, change, words):
    save = save_copy(tmp_path)
    change(save)
    user_error(capsys, ["convert", save, tmp_path / "out"], *words)


def test_model_takes_a_bilm_tf_save_folder(tmp_path, capsys):
    assert main(["embed", "I love it", "--word", "love", "--model", str(TINY)]) == 0
    want = capsys.readouterr().out
    save = save_copy(tmp_path)  # options.json without weights.hdf5: not half a public-format folder
    (save / "model.ckpt-20.old").mkdir()  # a folder named like a checkpoint member is not read
    assert main(["embed", "I love it", "--word", "love", "--model", str(save)]) == 0
    assert capsys.readouterr().out == want


def test_tensorflow_octal_escapes_name_the_checkpoint(tmp_path):
    save = save_copy(tmp_path)
    for path in save.glob("model.ckpt-20.*"):
        path.rename(save / path.name.replace("model.ckpt-20", "modèle.ckpt-20"))
    (save / "checkpoint").write_bytes(b'model_checkpoint_path: "/home/a/mod\\303\\250le.ckpt-20"\n')
    assert main(["convert", str(save), str(tmp_path / "out")]) == 0
    with h5py.File(tmp_path / "out" / "weights.hdf5", "r") as got, h5py.File(TINY / "weights.hdf5", "r") as want:
        np.testing.assert_array_equal(got["CNN_proj/W_proj"][...], want["CNN_proj/W_proj"][...])


def test_a_fifo_named_like_a_checkpoint_member_never_hangs(tmp_path):
    save = save_copy(tmp_path)
    os.mkfifo(save / "model.ckpt-20.lock")  # beside: ignored
    (save / "vocab.txt").unlink()
    os.mkfifo(save / "vocab.txt")  # read: refused, never opened
    result = run_cli("convert", save, tmp_path / "out", timeout=120)
    assert_user_error(result, "vocab.txt", "not a regular file")


# -- convert never writes into its source --------------------------------------------------------------

@pytest.mark.parametrize("out", [lambda s: s, lambda s: s / "sub", lambda s: s.parent, lambda s: s / "model.ckpt-20"])
def test_convert_never_writes_into_its_source(tmp_path, capsys, out):
    save = save_copy(tmp_path)
    before = {p.name: p.read_bytes() for p in save.iterdir()}
    source = save / "model.ckpt-20" if out(save).name == "model.ckpt-20" else save
    user_error(capsys, ["convert", source, out(save) if source == save else save], "never writes into")
    assert {p.name: p.read_bytes() for p in save.iterdir()} == before


# -- the Python API ------------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["{weights", "[1, 2, 3]", '{"weights": "abc", "scaling": 1}', '{"weights": [1, 2, 3]}',
                                  '{"weights": [NaN, 0, 0], "scaling": 1}', '{"weights": [0, 0, 0], "scaling": Infinity}'])
def test_a_bad_aggregation_file_is_a_user_error(tmp_path, text):
    from elmo_tasks.compat import tfhub as hub

    model = Path(shutil.copytree(TINY, tmp_path / "model"))
    (model / "aggregation.json").write_text(text)
    with pytest.raises(UserError, match="aggregation.json"):
        hub.Module(str(model))
