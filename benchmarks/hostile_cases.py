"""The cases of the hostile-model probe (``hostile_models.py``): each builds its inputs in a fresh
workspace from the TF-written fixtures and says what to run and what a correct outcome is.

Groups follow the issue's classes: ``index`` (a damaged TensorFlow checkpoint index), ``data``
(tensor data: NaN, types, sizes), ``options``, ``bilm-tf`` (the save dir: checkpoint file,
vocabulary, folders and FIFOs), ``tar`` and ``zip`` (archives), ``hdf5`` (public-format weights),
``api`` (``compat.tfhub.Module``), ``output`` (convert into its own source) and ``kill``.
"""

from __future__ import annotations

import json
import os
import shutil
import struct
import sys
import tarfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import h5py
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from tf_surgery import (  # noqa: E402
    edit_entry,
    edit_index,
    encode,
    entry_fields,
    fields,
    header_block,
    poke,
    set_field,
    shape_proto,
    tar_of,
)

ROOT = Path(__file__).resolve().parents[1]
TF = ROOT / "tests" / "fixtures" / "tf"
TINY = ROOT / "elmo_tasks" / "models" / "tiny_fixture"
SLACK = 1 << 20
W_PROJ = "bilm/CNN_proj/W_proj"
KERNEL = "bilm/RNN_0/RNN/MultiRNNCell/Cell0/rnn/lstm_cell/kernel"
LM_KERNEL = "lm/RNN_0/rnn/multi_rnn_cell/cell_0/lstm_cell/kernel"
SENTENCE = ["I love it", "--word", "love"]


class Workspace:
    """One case's folders: ``in/`` (inputs, hashed before and after), ``out/``, ``tmp/`` (TMPDIR), ``cache/``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.inp, self.out, self.tmp, self.cache = (root / n for n in ("in", "out", "tmp", "cache"))
        for folder in (self.inp, self.out, self.tmp, self.cache):
            folder.mkdir()

    def module(self) -> Path:
        return Path(shutil.copytree(TF / "hub_module", self.inp / "module"))

    def save(self) -> Path:
        return Path(shutil.copytree(TF / "bilm_checkpoint", self.inp / "save"))

    def model(self) -> Path:
        folder = self.inp / "model"
        folder.mkdir()
        for name in ("options.json", "weights.hdf5"):
            shutil.copy(TINY / name, folder / name)
        return folder


def _size(*paths: Path) -> int:
    return sum(p.stat().st_size for p in paths)


HUB_READ = _size(*(TF / "hub_module" / "variables").iterdir())
SAVE_READ = _size(*(p for p in (TF / "bilm_checkpoint").iterdir() if "ckpt-10" not in p.name))
H5_READ = _size(TINY / "weights.hdf5", TINY / "options.json")


@dataclass
class Run:
    """What a case runs (CLI arguments, or ``code`` with them as sys.argv) and what counts as correct."""

    argv: list
    expect: str  # "error", "result" or "either"
    budget: int  # bytes the process may write: twice what a correct loader reads, plus 1 MiB
    check: Callable | None = None  # (ws, stdout, reference) -> None when the result is right, else why
    names: str | None = None  # a clear error must contain this (the user's file)
    code: str | None = None
    kill_first: Run | None = None
    kill_when: Callable | None = None


def budget(read: int) -> int:
    return 2 * read + SLACK


def converted(ws: Workspace, out: str, reference: str) -> str | None:
    """The converted folder holds the fixture's weights, bit for bit."""
    folder = ws.out / "m"
    try:
        with h5py.File(folder / "weights.hdf5", "r") as got, h5py.File(TINY / "weights.hdf5", "r") as want:
            names = []
            want.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
            for name in names:
                if not np.array_equal(got[name][...], want[name][...]):
                    return f"dataset {name} differs"
        options = json.loads((folder / "options.json").read_text())
    except (OSError, KeyError, ValueError) as exc:
        return f"no converted model: {exc}"
    return None if options["lstm"]["dim"] == 64 else "wrong options"


def embedded(ws: Workspace, out: str, reference: str) -> str | None:
    return None if out == reference else "the vectors differ from the fixture model's"


def convert(source: Path, expect: str, read: int, names: str | None = None, extra: tuple = ()) -> Callable:
    return lambda ws: Run(["convert", source, ws.out / "m", *extra], expect, budget(read),
                          converted if expect != "error" else None, names if names is not None else source.name)


def embed(source: Path, expect: str, read: int, names: str | None = None) -> Run:
    return Run(["embed", *SENTENCE, "--model", source], expect, budget(read), embedded if expect != "error" else None,
               names if names is not None else source.name)


# -- TensorFlow index and data damage (on a copy of the TF-Hub module) ------------------------------

def index_case(change: Callable[[Path], None], expect: str = "error", command: str = "convert") -> Callable:
    def build(ws: Workspace) -> Run:
        module = ws.module()
        change(module / "variables" / "variables.index")
        if command == "embed":
            return embed(module, expect, HUB_READ)
        return convert(module, expect, HUB_READ)(ws)
    return build


def _truncated_crc(parts):  # the crc32c field (fixed32) cut to 2 bytes: the entry ends mid-field
    return encode([p for p in parts if p[0] != 6]) + b"\x35\x01\x02"


def _wrapping_dims(parts):
    """Two huge dimensions whose int64 product wraps around to W_proj's real element count (1,984)."""
    a = (1 << 40) + 1
    while (b := 1984 * pow(a, -1, 1 << 64) % (1 << 64)) >= 1 << 63:  # both positive as int64
        a += 2
    return set_field(parts, 2, 2, shape_proto([a, b]))


def _dims(dims):
    return lambda parts: set_field(parts, 2, 2, shape_proto(dims))


def data_case(name: str, value: float, source: str = "module", command: str = "embed") -> Callable:
    """NaN or Inf written over the first element of variable ``name``."""
    def build(ws: Workspace) -> Run:
        folder = ws.module() if source == "module" else ws.save()
        prefix = folder / ("variables/variables" if source == "module" else "model.ckpt-20")
        entry = entry_fields(Path(f"{prefix}.index"), name)
        shard = entry.get(3, 0)
        shards = 1 if source == "module" else 2
        poke(Path(f"{prefix}.data-{shard:05d}-of-{shards:05d}"), entry.get(4, 0), struct.pack("<f", value))
        read = HUB_READ if source == "module" else SAVE_READ
        return embed(folder, "error", read) if command == "embed" else convert(folder, "error", read)(ws)
    return build


def retyped(dtype: int, itemsize: int) -> Callable:
    """W_proj declared as another dtype: its bytes reinterpreted (int32) or appended widened (float64)."""
    def build(ws: Workspace) -> Run:
        module = ws.module()
        index, data = module / "variables" / "variables.index", module / "variables" / "variables.data-00000-of-00001"
        entry = entry_fields(index, W_PROJ)
        if itemsize == 4:
            edit_entry(index, W_PROJ, lambda parts: set_field(parts, 1, 0, dtype))
        else:
            raw = np.frombuffer(data.read_bytes()[entry[4] : entry[4] + entry[5]], "<f4").astype("<f8").tobytes()
            offset = data.stat().st_size
            with open(data, "ab") as handle:
                handle.write(raw)
            edit_entry(index, W_PROJ, lambda parts: set_field(set_field(set_field(
                [p for p in parts if p[0] != 6], 1, 0, dtype), 4, 0, offset), 5, 0, len(raw)))
        return convert(module, "error", HUB_READ)(ws)
    return build


def sparse_data(absurd: bool) -> Callable:
    """The data file extended (sparse) to 8 GiB; with ``absurd``, W_proj declares 8 GiB of it."""
    def build(ws: Workspace) -> Run:
        module = ws.module()
        data = module / "variables" / "variables.data-00000-of-00001"
        os.truncate(data, 8 << 30)
        if absurd:
            edit_entry(module / "variables" / "variables.index", W_PROJ, lambda parts: set_field(set_field(
                [p for p in parts if p[0] != 6], 2, 2, shape_proto([1 << 20, 1 << 10, 2])), 5, 0, 8 << 30))
        return convert(module, "error" if absurd else "result", HUB_READ)(ws)
    return build


def huge_model(ws: Workspace) -> Run:
    """Every LSTM variable declares lstm.dim 32,768 (over the 16,384 bound), consistently, over a sparse data file."""
    module = ws.module()
    index, data = module / "variables" / "variables.index", module / "variables" / "variables.data-00000-of-00001"
    c, p = 32768, 16
    end = [data.stat().st_size]

    def change(entries):
        for pair in entries:
            name = pair[0].decode()
            if "/lstm_cell/" not in name:
                continue
            shape = {"kernel": [2 * p, 4 * c], "bias": [4 * c], "projection/kernel": [c, p]}[name.split("lstm_cell/")[1]]
            size = 4 * int(np.prod(shape))
            parts = [q for q in fields(pair[1]) if q[0] != 6]
            pair[1] = encode(set_field(set_field(set_field(parts, 2, 2, shape_proto(shape)), 4, 0, end[0]),
                                             5, 0, size))
            end[0] += size
    edit_index(index, change)
    rng = np.random.default_rng(0)
    with open(data, "r+b") as handle:  # real-looking (random) weights, not zeros: only the bounds can refuse it
        handle.seek(end[0] - (8 << 20))
        handle.write(rng.standard_normal(2 << 20).astype("<f4").tobytes())
    return convert(module, "error", HUB_READ)(ws)


def many_handles(ws: Workspace) -> Run:
    """An index block pointing 60,000 times at the same data block."""
    module = ws.module()
    edit_index(module / "variables" / "variables.index", lambda entries: None,
               handles=lambda size: [(0, size)] * 60_000)
    return convert(module, "error", HUB_READ)(ws)


INDEX_CASES = [
    ("entry with a truncated crc32c field", index_case(lambda i: edit_entry(i, W_PROJ, _truncated_crc))),
    ("shape field sent as a number", index_case(lambda i: edit_entry(i, W_PROJ, lambda ps: set_field(ps, 2, 0, 7)))),
    ("dtype field sent as bytes", index_case(lambda i: edit_entry(i, W_PROJ, lambda ps: set_field(ps, 1, 2, b"\x01")))),
    ("negative dimensions (-124 x -16)", index_case(lambda i: edit_entry(i, W_PROJ, _dims([-124, -16])))),
    ("overflowing dimensions (their int64 product wraps to the size)", index_case(lambda i: edit_entry(i, W_PROJ,
                                                                                                     _wrapping_dims))),
    ("dimension of 2**63 - 1", index_case(lambda i: edit_entry(i, W_PROJ, _dims([(1 << 63) - 1])))),
    ("300 dimensions", index_case(lambda i: edit_entry(i, W_PROJ, _dims([1] * 300)))),
    ("shard number past the shard count", index_case(lambda i: edit_entry(i, W_PROJ, lambda ps: set_field(ps, 3, 0, 7)))),
    ("header: 0 shards", index_case(lambda i: edit_entry(i, "", lambda ps: set_field(ps, 1, 0, 0)))),
    ("header: shard count as bytes", index_case(lambda i: edit_entry(i, "", lambda ps: set_field(ps, 1, 2, b"12")))),
    ("header: 2**40 shards", index_case(lambda i: edit_entry(i, "", lambda ps: set_field(ps, 1, 0, 1 << 40)))),
    ("a variable name that is not UTF-8", index_case(lambda i: edit_index(i, lambda es: es.__setitem__(
        -1, [es[-1][0] + b"\xff", es[-1][1]])))),
    ("keys out of order", index_case(lambda i: edit_index(i, lambda es: es.reverse()), "either")),
    ("the same variable twice", index_case(lambda i: edit_index(i, lambda es: es.insert(5, list(es[4]))), "either")),
    ("index block: 60,000 pointers to one data block", many_handles),
    ("an 8 MiB index of random bytes", index_case(lambda i: i.write_bytes(os.urandom(8 << 20)))),
    ("index is a folder", index_case(lambda i: (i.unlink(), i.mkdir()))),
    ("index is a FIFO", index_case(lambda i: (i.unlink(), os.mkfifo(i)), command="embed")),
    ("W_proj declared with 3 dimensions", index_case(lambda i: edit_entry(i, W_PROJ, _dims([124, 4, 4])))),
    ("LSTM kernel of another layer's shape", index_case(lambda i: edit_entry(
        i, KERNEL, lambda ps: set_field(set_field([p for p in ps if p[0] != 6], 2, 2, shape_proto([16, 512])), 5, 0,
                                        32768)))),
]

DATA_CASES = [
    ("NaN in a TF-Hub variable (embed)", data_case(W_PROJ, float("nan"))),
    ("Inf in a TF-Hub variable (convert)", data_case(KERNEL, float("inf"), command="convert")),
    ("NaN in a bilm-tf variable", data_case(LM_KERNEL, float("nan"), source="save")),
    ("NaN in TF-Hub aggregation/weights", data_case("aggregation/weights", float("nan"), command="convert")),
    ("NaN in the bilm-tf softmax", data_case("lm/softmax/W", float("nan"), source="save", command="convert")),
    ("W_proj stored as int32", retyped(3, 4)),
    ("W_proj stored as float64", retyped(2, 8)),
    ("W_proj declared 8 GiB over a sparse 8 GiB data file", sparse_data(True)),
    ("data file sparse-extended to 8 GiB (a good model)", sparse_data(False)),
    ("lstm.dim 32,768 declared consistently", huge_model),
    ("data file truncated", index_case(lambda i: (lambda d: d.write_bytes(d.read_bytes()[:200_000]))(
        i.parent / "variables.data-00000-of-00001"))),
    ("data file is a FIFO", index_case(lambda i: (lambda d: (d.unlink(), os.mkfifo(d)))(
        i.parent / "variables.data-00000-of-00001"), command="embed")),
]


# -- options.json, the bilm-tf save dir ------------------------------------------------------------

def save_case(change: Callable[[Path], None], expect: str = "error", command: str = "convert",
              source: str = "", names: str | None = None, extra: Callable[[Workspace], tuple] | None = None) -> Callable:
    def build(ws: Workspace) -> Run:
        save = ws.save()
        change(save)
        target = save / source if source else save
        if command == "embed":
            return embed(target, expect, SAVE_READ, names)
        return convert(target, expect, SAVE_READ, names, extra(ws) if extra else ())(ws)
    return build


def _options(save: Path, edit: Callable[[dict], None]) -> None:
    data = json.loads((save / "options.json").read_text())
    edit(data)
    (save / "options.json").write_text(json.dumps(data))


def _rename_checkpoint(save: Path, new: str, escaped: str) -> None:
    for path in save.glob("model.ckpt-20.*"):
        path.rename(save / path.name.replace("model.ckpt-20", new))
    (save / "checkpoint").write_bytes(b'model_checkpoint_path: "/home/alice/save/' + escaped.encode("latin-1") + b'"\n')


def _fifo(path: Path) -> None:
    if path.exists():
        path.unlink()
    os.mkfifo(path)


def _replace_with_folder(path: Path) -> None:
    path.unlink()
    path.mkdir()


def _narrow_softmax(save: Path) -> None:
    """lm/softmax/W declared (80, 8) and lm/softmax/b (80,): a softmax, but not of this model's width 16."""
    index = save / "model.ckpt-20.index"
    for name, shape in (("lm/softmax/W", [80, 8]), ("lm/softmax/b", [80])):
        edit_entry(index, name, lambda ps, shape=shape: set_field(set_field(
            [p for p in ps if p[0] != 6], 2, 2, shape_proto(shape)), 5, 0, 4 * int(np.prod(shape))))
    (save / "vocab.txt").unlink()


OPTIONS_CASES = [
    ('options.json: "lstm": 5', save_case(lambda s: _options(s, lambda o: o.__setitem__("lstm", 5)))),
    ('options.json: "char_cnn": [1, 2]', save_case(lambda s: _options(s, lambda o: o.__setitem__("char_cnn", [1, 2])))),
    ("options.json: cell_clip a string", save_case(lambda s: _options(s, lambda o: o["lstm"].__setitem__("cell_clip", "x")))),
    ("options.json not JSON", save_case(lambda s: (s / "options.json").write_text("{lstm"))),
    ("options.json not UTF-8", save_case(lambda s: (s / "options.json").write_bytes(b'{"a": "\xff"}'))),
    ("options.json nested 100,000 deep", save_case(lambda s: (s / "options.json").write_text("[" * 100_000 + "]" * 100_000))),
    ("options.json is a FIFO", save_case(lambda s: _fifo(s / "options.json"), "either")),
    ("--options with \"lstm\": []", lambda ws: convert(ws.save(), "error", SAVE_READ, "bad.json", (
        "--options", (ws.inp / "bad.json").write_text('{"lstm": []}') and ws.inp / "bad.json"))(ws)),
]

BILM_CASES = [
    ("vocab.txt not UTF-8", save_case(lambda s: (s / "vocab.txt").write_bytes(b"<S>\n</S>\n\xff\xfe\n" * 14))),
    ("vocab.txt with too few words", save_case(lambda s: (s / "vocab.txt").write_text("<S>\n</S>\n"))),
    ("vocab.txt is a folder", save_case(lambda s: _replace_with_folder(s / "vocab.txt"), "either")),
    ("vocab.txt is a FIFO", save_case(lambda s: _fifo(s / "vocab.txt"), "either")),
    ("vocab.txt: one 300 MB line", save_case(lambda s: os.truncate(s / "vocab.txt", 300 << 20))),
    ("checkpoint: a \\x escape with no digits", save_case(lambda s: (s / "checkpoint").write_bytes(
        b'model_checkpoint_path: "/x/model.ckpt-20\\x"\n'))),
    ("checkpoint: an unknown escape \\q", save_case(lambda s: (s / "checkpoint").write_bytes(
        b'model_checkpoint_path: "/x/mo\\qdel.ckpt-20"\n'))),
    ("checkpoint: a NUL byte escaped \\000", save_case(lambda s: (s / "checkpoint").write_bytes(
        b'model_checkpoint_path: "/x/model.ckpt-20\\000"\n'))),
    ("checkpoint: escaped bytes that are not UTF-8", save_case(lambda s: (s / "checkpoint").write_bytes(
        b'model_checkpoint_path: "/x/mod\\377le.ckpt-20"\n'))),
    ("checkpoint: an empty name", save_case(lambda s: (s / "checkpoint").write_bytes(b'model_checkpoint_path: ""\n'))),
    ("checkpoint: octal UTF-8 name mod\\303\\250le (TensorFlow's escape)", save_case(
        lambda s: _rename_checkpoint(s, "modèle.ckpt-20", "mod\\303\\250le.ckpt-20"), expect="result")),
    ("checkpoint: raw UTF-8 name", save_case(lambda s: _rename_checkpoint(s, "modèle.ckpt-20", "modèle.ckpt-20".encode()
                                                                             .decode("latin-1")), expect="result")),
    ('checkpoint: a name with an escaped quote', save_case(
        lambda s: _rename_checkpoint(s, 'my"model.ckpt-20', 'my\\"model.ckpt-20'), expect="result")),
    ("checkpoint is a FIFO", save_case(lambda s: _fifo(s / "checkpoint"))),
    ("checkpoint is a folder", save_case(lambda s: _replace_with_folder(s / "checkpoint"))),
    ("a folder model.ckpt-20.old beside (--model PREFIX)", save_case(
        lambda s: (s / "model.ckpt-20.old").mkdir(), expect="result", command="embed", source="model.ckpt-20")),
    ("a FIFO model.ckpt-20.lock beside (--model PREFIX)", save_case(
        lambda s: os.mkfifo(s / "model.ckpt-20.lock"), expect="result", command="embed", source="model.ckpt-20")),
    ("--model SAVE_DIR (bilm-tf save folder)", save_case(lambda s: None, expect="result", command="embed")),
    ("softmax of another width (8, not 16)", save_case(_narrow_softmax)),
]


# -- archives --------------------------------------------------------------------------------------

def hub_tar(ws: Workspace, members: list | None = None, root: str = "", mode: str = "w:gz", name: str = "elmo.tar.gz") -> Path:
    module = TF / "hub_module"
    base = [(f"{root}{p.relative_to(module)}", p) for p in sorted(module.rglob("*")) if p.is_file()]
    return tar_of(ws.inp / name, base + (members or []), mode)


def tar_case(make: Callable[[Workspace], Path], expect: str = "error", extra_read: int = 0) -> Callable:
    return lambda ws: (lambda archive: convert(archive, expect, HUB_READ + extra_read)(ws))(make(ws))


def _link(name: str, target: str) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.linkname = tarfile.SYMTYPE, target
    return info


def pax_bomb(ws: Workspace) -> Path:
    """A tar whose first header is a pax record claiming 6 GiB (a few KB on disk)."""
    path = ws.inp / "pax.tar"
    path.write_bytes(header_block("././@PaxHeader", 6 << 30, b"x") + bytes(4096))
    return path


def long_name_bomb(ws: Workspace) -> Path:
    path = ws.inp / "longname.tar.gz"
    import gzip

    with gzip.open(path, "wb") as handle:
        handle.write(header_block("././@LongLink", 3 << 30, b"L") + bytes(1 << 20))
    return path


def _corrupt_gzip(ws: Workspace) -> Path:
    path = hub_tar(ws)
    raw = bytearray(path.read_bytes())
    raw[len(raw) // 2 : len(raw) // 2 + 64] = bytes(64)
    path.write_bytes(bytes(raw))
    return path


def _zeros_data_module(ws: Workspace) -> Path:
    """A TF-Hub module archive whose data member is 256 MiB of zeros (about 256 KB compressed)."""
    data = ws.root / "zeros.data"
    with open(data, "wb") as handle:
        handle.truncate(256 << 20)
    return tar_of(ws.inp / "zeros.tar.gz", [("variables/variables.index", TF / "hub_module/variables/variables.index"),
                                             ("variables/variables.data-00000-of-00001", data)])


def _junk(ws: Workspace, size: int) -> Path:
    path = ws.root / "junk"
    with open(path, "wb") as handle:
        handle.truncate(size)
    return path


TAR_CASES = [
    ("a good module .tar.gz", tar_case(lambda ws: hub_tar(ws), "result")),
    ("a good module inside a folder of the .tar.gz", tar_case(lambda ws: hub_tar(ws, root="elmo3/"), "result")),
    ("a good module, uncompressed .tar", tar_case(lambda ws: hub_tar(ws, mode="w", name="elmo.tar"), "result")),
    ("a good module .tar.gz without a suffix", tar_case(lambda ws: hub_tar(ws, name="3"), "result")),
    ("+ a 200 MB member never read", tar_case(lambda ws: hub_tar(ws, [("assets/junk", _junk(ws, 200 << 20))]), "either")),
    ("+ a 20 MB random member never read", tar_case(lambda ws: hub_tar(ws, [("assets/noise", (ws.root / "n").write_bytes(
        os.urandom(20 << 20)) and ws.root / "n")]), "result")),
    ("data member of 256 MiB zeros", tar_case(_zeros_data_module)),
    ("pax header claiming 6 GiB", tar_case(pax_bomb)),
    ("GNU long name of 3 GiB", tar_case(long_name_bomb)),
    ("a member ../escaped", tar_case(lambda ws: hub_tar(ws, [("../escaped", b"x")]))),
    ("an absolute member name", tar_case(lambda ws: hub_tar(ws, [("/tmp/escaped-by-probe", b"x")]))),
    ("the index is a symlink", tar_case(lambda ws: tar_of(ws.inp / "l.tar.gz", [
        ("variables/variables.data-00000-of-00001", TF / "hub_module/variables/variables.data-00000-of-00001"),
        ("variables/variables.index", _link("variables/variables.index", "/etc/passwd"))]))),
    ("no data member", tar_case(lambda ws: tar_of(ws.inp / "n.tar.gz", [
        ("variables/variables.index", TF / "hub_module/variables/variables.index")]))),
    ("data member truncated (names archive and member)", tar_case(lambda ws: tar_of(ws.inp / "t.tar.gz", [
        ("variables/variables.index", TF / "hub_module/variables/variables.index"),
        ("variables/variables.data-00000-of-00001",
         (TF / "hub_module/variables/variables.data-00000-of-00001").read_bytes()[:300_000])]))),
    ("archive cut in the middle", tar_case(lambda ws: (lambda p: p.write_bytes(p.read_bytes()[:200_000]) and p)(hub_tar(ws)))),
    ("gzip stream corrupted", tar_case(_corrupt_gzip)),
    ("10,001 members", tar_case(lambda ws: hub_tar(ws, [(f"assets/{i}", b"") for i in range(10_001)]))),
    ("two modules in one archive", tar_case(lambda ws: hub_tar(ws, [(f"b/{p.relative_to(TF / 'hub_module')}", p) for p in
                                                                    sorted((TF / "hub_module").rglob("*")) if p.is_file()]),
                                            "either", HUB_READ)),
    ("a .tar.gz of random bytes", tar_case(lambda ws: (ws.inp / "r.tar.gz").write_bytes(os.urandom(4096))
                                           and ws.inp / "r.tar.gz")),
]


def nlpl_zip(ws: Workspace, name: str = "209.zip", weights: Path | bytes | None = None, options: bytes | None = None,
             root: str = "", method: int = zipfile.ZIP_DEFLATED, extra: list | None = None) -> Path:
    path = ws.inp / name
    with zipfile.ZipFile(path, "w", method) as archive:
        if isinstance(weights, bytes):
            archive.writestr(root + "model.hdf5", weights)
        else:
            archive.write(weights or TINY / "weights.hdf5", root + "model.hdf5")
        if options is None:
            archive.write(TINY / "options.json", root + "options.json")
        else:
            archive.writestr(root + "options.json", options)
        archive.writestr(root + "meta.json", '{"corpus": "probe"}')
        for member, content in extra or []:
            archive.writestr(member, content)
    return path


def _patch_zip(path: Path, member: str, flag: int | None = None, method: int | None = None) -> Path:
    """Set a member's flag bits or method in both its local header and its central directory entry."""
    raw = bytearray(path.read_bytes())
    with zipfile.ZipFile(path) as archive:
        info = archive.getinfo(member)
    local = info.header_offset
    pos = 0
    while (pos := raw.find(b"PK\x01\x02", pos)) >= 0:
        name_length = struct.unpack_from("<H", raw, pos + 28)[0]
        if raw[pos + 46 : pos + 46 + name_length] == member.encode():
            if flag is not None:
                struct.pack_into("<H", raw, pos + 8, flag)
            if method is not None:
                struct.pack_into("<H", raw, pos + 10, method)
        pos += 4
    if flag is not None:
        struct.pack_into("<H", raw, local + 6, flag)
    if method is not None:
        struct.pack_into("<H", raw, local + 8, method)
    path.write_bytes(bytes(raw))
    return path


def _nan_weights(ws: Workspace) -> Path:
    path = ws.root / "nan.hdf5"
    shutil.copy(TINY / "weights.hdf5", path)
    with h5py.File(path, "r+") as handle:
        data = handle["CNN_proj/W_proj"]
        values = data[...]
        values[3, 2] = np.nan
        data[...] = values
    return path


def zip_case(make: Callable[[Workspace], Path], expect: str = "error", command: str = "convert") -> Callable:
    def build(ws: Workspace) -> Run:
        archive = make(ws)
        return embed(archive, expect, H5_READ) if command == "embed" else convert(archive, expect, H5_READ)(ws)
    return build


def _bad_central_directory(ws: Workspace) -> Path:
    path = nlpl_zip(ws)
    raw = bytearray(path.read_bytes())
    pos = raw.find(b"PK\x01\x02")
    raw[pos + 4 : pos + 40] = os.urandom(36)
    path.write_bytes(bytes(raw))
    return path


ZIP_CASES = [
    ("a good NLPL zip", zip_case(lambda ws: nlpl_zip(ws), "result")),
    ("a good NLPL zip, files in a folder", zip_case(lambda ws: nlpl_zip(ws, root="209/"), "result")),
    ("a good NLPL zip, lzma members", zip_case(lambda ws: nlpl_zip(ws, method=zipfile.ZIP_LZMA), "result")),
    ("a good NLPL zip (embed --model)", zip_case(lambda ws: nlpl_zip(ws), "result", "embed")),
    ("bad central directory", zip_case(_bad_central_directory)),
    ("an encrypted model.hdf5", zip_case(lambda ws: _patch_zip(nlpl_zip(ws), "model.hdf5", flag=1))),
    ("model.hdf5 in deflate64", zip_case(lambda ws: _patch_zip(nlpl_zip(ws), "model.hdf5", method=9))),
    ("model.hdf5: 256 MiB of zeros in a 256 KB zip", zip_case(lambda ws: nlpl_zip(ws, weights=_junk(ws, 256 << 20)))),
    ("model.hdf5: 40 MB of random bytes", zip_case(lambda ws: nlpl_zip(ws, weights=os.urandom(40 << 20),
                                                                       method=zipfile.ZIP_STORED))),
    ("model.hdf5 with a NaN", zip_case(lambda ws: nlpl_zip(ws, weights=_nan_weights(ws)))),
    ("two model.hdf5 in two folders", zip_case(lambda ws: nlpl_zip(ws, extra=[("b/model.hdf5", (TINY / "weights.hdf5")
                                                                               .read_bytes())]), "either")),
    ('options.json: "lstm": 5', zip_case(lambda ws: nlpl_zip(ws, options=b'{"lstm": 5, "char_cnn": {}}'))),
    ("options.json not UTF-8", zip_case(lambda ws: nlpl_zip(ws, options=b'{"lstm": "\xff"}'))),
    ("options.json lstm.dim 10,000,000", zip_case(lambda ws: nlpl_zip(ws, options=json.dumps(
        {**json.loads((TINY / "options.json").read_text()), "lstm": {"dim": 10_000_000, "projection_dim": 16}}).encode()))),
    ("a model.hdf5/ folder entry", zip_case(lambda ws: nlpl_zip(ws, name="d.zip", extra=[("x/model.hdf5/", b"")]),
                                            "either")),
    ("10,001 members", zip_case(lambda ws: nlpl_zip(ws, extra=[(f"a/{i}", b"") for i in range(10_001)]))),
]


# -- public-format HDF5 weights --------------------------------------------------------------------

def hdf5_case(change: Callable[[Path], None], expect: str = "error", command: str = "embed") -> Callable:
    def build(ws: Workspace) -> Run:
        model = ws.model()
        change(model)
        if command == "embed":
            return embed(model, expect, H5_READ)
        return convert(model, expect, H5_READ)(ws)
    return build


def _set_value(model: Path, name: str, value: float) -> None:
    with h5py.File(model / "weights.hdf5", "r+") as handle:
        data = handle[name]
        values = data[...]
        values.reshape(-1)[5] = value
        data[...] = values


def _replace_dataset(model: Path, name: str, dtype: str = "f4", **kwargs) -> None:
    with h5py.File(model / "weights.hdf5", "r+") as handle:
        values = handle[name][...]
        del handle[name]
        if "external" in kwargs:
            handle.create_dataset(name, shape=values.shape, dtype="f4", **kwargs)
        else:  # integers: the weights scaled by 100 and rounded, as a quantised copy might store them
            handle.create_dataset(name, data=(values * 100 if dtype[0] == "i" else values).astype(dtype), **kwargs)


def _all_float64(model: Path) -> None:
    with h5py.File(model / "weights.hdf5", "r") as handle:
        names = []
        handle.visititems(lambda n, o: names.append(n) if isinstance(o, h5py.Dataset) else None)
    for name in names:
        _replace_dataset(model, name, dtype="f8")


def _external_link(model: Path) -> None:
    other = model.parent / "other.hdf5"
    with h5py.File(TINY / "weights.hdf5", "r") as source, h5py.File(other, "w") as target:
        source.copy("CNN_proj", target)
    with h5py.File(model / "weights.hdf5", "r+") as handle:
        del handle["CNN_proj"]
        handle["CNN_proj"] = h5py.ExternalLink(str(other), "/CNN_proj")


def _damaged_chunk(model: Path) -> None:
    _replace_dataset(model, "CNN_high_0/W_carry", chunks=(31, 31), compression="gzip")
    with h5py.File(model / "weights.hdf5", "r") as handle:
        offset = handle["CNN_high_0/W_carry"].id.get_chunk_info(3).byte_offset
    poke(model / "weights.hdf5", offset + 10, os.urandom(64))


def _external_fifo(model: Path) -> None:
    fifo = model.parent / "pipe"
    os.mkfifo(fifo)
    _replace_dataset(model, "CNN_proj/b_proj", external=[(str(fifo), 0, 64)])


HDF5_CASES = [
    ("NaN in weights.hdf5 (embed)", hdf5_case(lambda m: _set_value(m, "CNN_proj/W_proj", np.nan))),
    ("Inf in weights.hdf5 (embed)", hdf5_case(lambda m: _set_value(m, "RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_0",
                                                                   np.inf))),
    ("NaN in weights.hdf5 (convert)", hdf5_case(lambda m: _set_value(m, "char_embed", np.nan), command="convert")),
    ("W_proj stored as int32", hdf5_case(lambda m: _replace_dataset(m, "CNN_proj/W_proj", dtype="i4"))),
    ("a group linked to another file", hdf5_case(_external_link)),
    ("a dataset stored in a FIFO (external storage)", hdf5_case(_external_fifo)),
    ("a damaged compressed chunk", hdf5_case(_damaged_chunk)),
    ("weights.hdf5 truncated", hdf5_case(lambda m: (m / "weights.hdf5").write_bytes(
        (m / "weights.hdf5").read_bytes()[:100_000]))),
    ("weights.hdf5 is a FIFO", hdf5_case(lambda m: _fifo(m / "weights.hdf5"))),
    ("float64 weights (a good model)", hdf5_case(_all_float64, expect="result")),
]


# -- the Python API: compat.tfhub.Module -----------------------------------------------------------

MODULE_CODE = r"""
import sys
import numpy as np
from elmo_tasks.errors import UserError
from elmo_tasks.compat import tfhub as hub
try:
    out = hub.Module(sys.argv[1])(["I love it"], as_dict=True)
except UserError as exc:
    print(f"elmo-tasks: error: {exc}", file=sys.stderr)
    sys.exit(2)
print("nan" if not all(np.isfinite(v).all() for v in out.values()) else "finite")
"""


def api_case(aggregation: str | None, expect: str = "error") -> Callable:
    def build(ws: Workspace) -> Run:
        model = ws.model()
        if aggregation is not None:
            (model / "aggregation.json").write_text(aggregation)
        check = (lambda ws, out, ref: None if out.strip() == "finite" else "NaN outputs")
        return Run([model], expect, budget(H5_READ), check, "aggregation.json", code=MODULE_CODE)
    return build


API_CASES = [
    ("aggregation.json: a good mix", api_case('{"weights": [0.3, -0.6, 0.9], "scaling": 1.7}', "result")),
    ("aggregation.json not JSON", api_case("{weights")),
    ("aggregation.json a list", api_case("[1, 2, 3]")),
    ("aggregation.json: weights a string", api_case('{"weights": "abc", "scaling": 1}')),
    ("aggregation.json: scaling missing", api_case('{"weights": [1, 2, 3]}')),
    ("aggregation.json: NaN weights", api_case('{"weights": [NaN, 0, 0], "scaling": 1}')),
    ("aggregation.json: Infinity scaling", api_case('{"weights": [0, 0, 0], "scaling": Infinity}')),
    ("aggregation.json: 2 weights for 3 layers", api_case('{"weights": [0, 0], "scaling": 1}')),
]


# -- outputs: convert never writes into its source --------------------------------------------------

def _into(source: str, out: Callable[[Path, Workspace], Path], extra: Callable[[Workspace], tuple] | None = None) -> Callable:
    def build(ws: Workspace) -> Run:
        src = {"save": ws.save, "module": ws.module, "model": ws.model}[source]()
        return Run(["convert", src, out(src, ws), *(extra(ws) if extra else ())], "error",
                   budget(SAVE_READ), names=src.name)
    return build


OUTPUT_CASES = [
    ("convert SAVE SAVE (bilm-tf save dir)", _into("save", lambda s, ws: s)),
    ("convert SAVE SAVE/sub", _into("save", lambda s, ws: s / "sub")),
    ("convert SAVE/model.ckpt-20 SAVE", _into("save", lambda s, ws: s)),
    ("convert SAVE its parent folder", _into("save", lambda s, ws: s.parent)),
    ("convert MODULE MODULE (TF-Hub folder)", _into("module", lambda s, ws: s)),
    ("convert MODULE MODULE/variables", _into("module", lambda s, ws: s / "variables")),
    ("convert MODEL MODEL (public format)", _into("model", lambda s, ws: s)),
    ("convert through a symlink to the source", _into("save", lambda s, ws: (ws.out / "link").symlink_to(s)
                                                      or ws.out / "link")),
    ("convert SAVE OUT --options OUT/options.json", lambda ws: Run(
        ["convert", ws.save(), ws.inp / "mine", "--options", (ws.inp / "mine").mkdir() or shutil.copy(
            TF / "bilm_checkpoint" / "options.json", ws.inp / "mine" / "options.json")], "error", budget(SAVE_READ),
        names="options.json")),
]


NOISE = 30 << 20


def _kill_case(command: str) -> Callable:
    """kill -9 a TF-Hub conversion while it unpacks, then run it again: nothing of the first may remain."""
    def build(ws: Workspace) -> Run:
        archive = hub_tar(ws, [("assets/noise", (ws.root / "n").write_bytes(os.urandom(NOISE)) and ws.root / "n")])
        argv = ["convert", archive, ws.out / "m"] if command == "convert" else ["embed", *SENTENCE, "--model", archive]
        first = Run(argv, "result", 0)
        return Run(argv, "result", budget(HUB_READ + NOISE), converted if command == "convert" else embedded,
                   kill_first=first, kill_when=lambda ws: any(p.name.startswith("elmo-tasks-tfhub") for p in ws.tmp.iterdir()))
    return build


KILL_CASES = [
    ("kill -9 while unpacking, then convert again", _kill_case("convert")),
    ("kill -9 while unpacking, then --model again", _kill_case("embed")),
]


def _group(name: str, cases: list) -> list[tuple[str, str, Callable]]:
    return [(case, name, build) for case, build in cases]


CASES = (_group("index", INDEX_CASES) + _group("data", DATA_CASES) + _group("options", OPTIONS_CASES)
         + _group("bilm-tf", BILM_CASES) + _group("tar", TAR_CASES) + _group("zip", ZIP_CASES)
         + _group("hdf5", HDF5_CASES) + _group("api", API_CASES) + _group("output", OUTPUT_CASES)
         + _group("kill", KILL_CASES))
