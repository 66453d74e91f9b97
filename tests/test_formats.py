"""Model formats: TensorFlow checkpoints written by real TensorFlow (tests/fixtures/tf/make_tf_fixtures.py)
read without TensorFlow, converted, and giving the hdf5 model's numbers."""

from __future__ import annotations

import shutil
import tarfile
import zipfile
from pathlib import Path

import h5py
import numpy as np
import pytest

from elmo_tasks.cli import main
from elmo_tasks.errors import UserError
from elmo_tasks.formats.convert import convert, detect, resolve_model_dir
from elmo_tasks.formats.tf_bundle import TensorBundle, crc32c

TF = Path(__file__).parent / "fixtures" / "tf"
ELMO = Path(__file__).parent / "fixtures" / "elmo"


def hdf5_arrays(path: Path) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    with h5py.File(path, "r") as handle:
        handle.visititems(lambda n, o: out.__setitem__(n, o[...]) if isinstance(o, h5py.Dataset) else None)
    return out


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return hdf5_arrays(ELMO / "lm_weights.hdf5")


def test_crc32c_known_value():
    assert crc32c(b"123456789") == 0xE3069283  # the standard check value of CRC-32C


def test_bundle_reads_tensorflow_checkpoint(reference):
    bundle = TensorBundle(TF / "hub_module" / "variables" / "variables")
    assert bundle.num_shards == 1
    assert bundle.entries["bilm/char_embed"].shape == (262, 4)
    assert bundle.entries["aggregation/scaling"].shape == (1,)
    cnn = bundle.read("bilm/CNN/W_cnn_4", verify=True)
    np.testing.assert_array_equal(cnn, reference["CNN/W_cnn_4"])
    kernel = bundle.read("bilm/RNN_1/RNN/MultiRNNCell/Cell1/rnn/lstm_cell/kernel", verify=True)
    np.testing.assert_array_equal(kernel, reference["RNN_1/RNN/MultiRNNCell/Cell1/LSTMCell/W_0"])


def test_bundle_two_shards_and_extra_variables():
    bundle = TensorBundle(TF / "bilm_checkpoint" / "model.ckpt-20")
    assert bundle.num_shards == 2
    assert {e.shard for e in bundle.entries.values()} == {0, 1}
    assert float(bundle.read("global_step")) == 20.0
    assert float(bundle.read("train_perplexity")) > 1.0
    slot = bundle.read("lm/softmax/W/Adagrad", verify=True)
    assert slot.shape == (40, 16) and np.all(slot >= 1.0)  # accumulators start at 1 and grow


@pytest.mark.parametrize("source", ["hub_module", "hub_module.tar.gz", "hub_scalar_scale", "bilm_checkpoint"])
def test_convert_gives_the_source_weights(tmp_path, reference, source):
    kind, _ = convert(TF / source, tmp_path / "out")
    assert kind == ("bilm-tf" if source.startswith("bilm") else "tfhub")
    converted = hdf5_arrays(tmp_path / "out" / "weights.hdf5")
    assert sorted(converted) == sorted(reference)
    for name, value in reference.items():  # bit-exact: the latest checkpoint (ckpt-20), not the perturbed ckpt-10
        np.testing.assert_array_equal(converted[name], value, err_msg=name)
    import json

    options = json.loads((tmp_path / "out" / "options.json").read_text())
    source_options = json.loads((ELMO / "options.json").read_text())
    assert options["lstm"]["dim"] == 64 and options["char_cnn"]["filters"] == source_options["char_cnn"]["filters"]
    assert options["char_cnn"]["n_characters"] == 262
    if kind == "tfhub":
        aggregation = json.loads((tmp_path / "out" / "aggregation.json").read_text())
        np.testing.assert_allclose(aggregation["weights"], [0.3, -0.6, 0.9], rtol=1e-6)
        assert aggregation["scaling"] == pytest.approx(1.7)
    else:
        assert options["n_tokens_vocab"] == 40  # training fields of the options.json beside it are kept
        softmax = np.load(TF / "bilm_softmax_expected.npz")
        from elmo_tasks.pretrain.softmax import load_softmax

        loaded = load_softmax(tmp_path / "out" / "softmax.hdf5")
        np.testing.assert_array_equal(loaded.weight.detach().numpy(), softmax["W"])
        np.testing.assert_array_equal(loaded.bias.detach().numpy(), softmax["b"])
        assert (tmp_path / "out" / "vocab.txt").read_text().split()[:3] == ["<S>", "</S>", "<UNK>"]


def test_checkpoint_prefix_and_older_checkpoint(tmp_path, reference):
    convert(TF / "bilm_checkpoint" / "model.ckpt-10", tmp_path / "old")
    old = hdf5_arrays(tmp_path / "old" / "weights.hdf5")
    diff = max(np.abs(old[n] - reference[n]).max() for n in reference)
    assert diff > 0.01  # ckpt-10 holds perturbed weights: the prefix is honoured


def test_convert_options_override(tmp_path):
    import json

    override = json.loads((ELMO / "options.json").read_text())
    override["lstm"]["cell_clip"] = 5
    override["char_cnn"]["activation"] = "tanh"
    (tmp_path / "o.json").write_text(json.dumps(override))
    convert(TF / "hub_module", tmp_path / "out", options_file=tmp_path / "o.json")
    written = json.loads((tmp_path / "out" / "options.json").read_text())
    assert written["lstm"]["cell_clip"] == 5 and written["char_cnn"]["activation"] == "tanh"


def test_embed_file_matches_the_hdf5_model(tmp_path, fixture_sentences, capsys):
    text = tmp_path / "in.txt"
    text.write_text("\n".join(fixture_sentences[0] + fixture_sentences[1]) + "\n")
    outputs = {}
    assert main(["embed-file", str(text), str(tmp_path / "ref.hdf5"), "--model", str(ELMO_MODEL), "--quiet"]) == 0
    for source in ("hub_module.tar.gz", "bilm_checkpoint"):
        assert main(["convert", str(TF / source), str(tmp_path / source)]) == 0
        out = tmp_path / f"{source}.hdf5"
        assert main(["embed-file", str(text), str(out), "--model", str(tmp_path / source), "--quiet"]) == 0
        outputs[source] = out
    with h5py.File(tmp_path / "ref.hdf5", "r") as ref:
        for out in outputs.values():
            with h5py.File(out, "r") as got:
                for i in range(20):
                    np.testing.assert_allclose(got[str(i)][...], ref[str(i)][...], atol=1e-5, rtol=0)


ELMO_MODEL = Path(__file__).parents[1] / "elmo_tasks" / "models" / "tiny_fixture"


def test_model_argument_takes_tf_sources(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("ELMO_TASKS_CACHE", str(tmp_path / "cache"))
    first = resolve_model_dir(TF / "bilm_checkpoint")
    assert (first / "weights.hdf5").is_file() and first.parent.name == "converted"
    assert resolve_model_dir(TF / "bilm_checkpoint") == first  # converted once
    copy = tmp_path / "copy"
    shutil.copytree(TF / "bilm_checkpoint", copy)
    assert resolve_model_dir(copy) == first  # keyed by content, not by path
    assert main(["embed", "I love it", "--model", str(TF / "hub_module")]) == 0
    assert "layers: (3, 3, 32)" in capsys.readouterr().out


def test_nlpl_zip(tmp_path, reference):
    archive = tmp_path / "209.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.write(ELMO / "lm_weights.hdf5", "model.hdf5")
        z.write(ELMO / "options.json", "options.json")
        z.write(ELMO / "vocab_test.txt", "vocab.txt")
        z.writestr("meta.json", '{"corpus": "test"}')
    assert detect(archive) == "nlpl"
    convert(archive, tmp_path / "out")
    for name, value in hdf5_arrays(tmp_path / "out" / "weights.hdf5").items():
        np.testing.assert_array_equal(value, reference[name])
    assert (tmp_path / "out" / "meta.json").is_file() and (tmp_path / "out" / "vocab.txt").is_file()


@pytest.mark.parametrize("source, message", [
    ("not_elmo", "not an ELMo checkpoint: no variable under 'lm/'"),
    ("unknown_variable", "unknown variable 'lm/attention/kernel'"),
    ("missing_lstm", "no LSTM variables"),
])
def test_bad_checkpoints_give_one_line_errors(tmp_path, capsys, source, message):
    assert main(["convert", str(TF / source), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert message in err and str(TF / source) in err and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def test_truncated_data_file_names_variable_and_file(tmp_path, capsys):
    module = tmp_path / "module"
    shutil.copytree(TF / "hub_module", module)
    data = module / "variables" / "variables.data-00000-of-00001"
    data.write_bytes(data.read_bytes()[:200_000])
    assert main(["convert", str(module), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert "truncated" in err and str(data) in err and "variable 'bilm/" in err


def test_checkpoint_file_naming_a_missing_checkpoint(tmp_path):
    save = tmp_path / "save"
    shutil.copytree(TF / "bilm_checkpoint", save)
    for path in save.glob("model.ckpt-20.*"):
        path.unlink()
    with pytest.raises(UserError, match="model.ckpt-20.index is not in this folder"):
        convert(save, tmp_path / "out")


def test_damaged_index(tmp_path):
    module = tmp_path / "module"
    shutil.copytree(TF / "hub_module", module)
    index = module / "variables" / "variables.index"
    raw = bytearray(index.read_bytes())
    raw[40] ^= 0xFF
    index.write_bytes(bytes(raw))
    with pytest.raises(UserError, match="variables.index: not a TensorFlow checkpoint index"):
        TensorBundle(module / "variables" / "variables")


def test_archive_member_escaping_is_refused(tmp_path):
    archive = tmp_path / "evil.tar.gz"
    (tmp_path / "x").write_text("x")
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(TF / "hub_module" / "variables", arcname="variables")
        tar.add(tmp_path / "x", arcname="../escaped")
    with pytest.raises(UserError, match="points outside the archive"):
        convert(archive, tmp_path / "out")
    assert not (tmp_path.parent / "escaped").exists()


@pytest.mark.parametrize("kind", ["tar.gz", "zip"])
def test_archives_that_unpack_past_the_bounds_are_refused(tmp_path, capsys, monkeypatch, kind):
    # a decompression bomb in small: 4 MB of zeros compress to a few KB
    from elmo_tasks.formats import archive_limits

    (tmp_path / "zeros").write_bytes(bytes(4 << 20))
    archive = tmp_path / f"bomb.{kind}"
    if kind == "zip":  # the weights member itself: refused from the central directory, before unpacking
        with zipfile.ZipFile(archive, "w", zipfile.ZIP_DEFLATED) as z:
            z.write(ELMO / "options.json", "options.json")
            z.write(tmp_path / "zeros", "model.hdf5")
    else:  # a member the converter never reads: never unpacked; the stream itself is bounded by its ratio
        with tarfile.open(archive, "w:gz") as tar:
            tar.add(TF / "hub_module" / "variables", arcname="variables")
            tar.add(tmp_path / "zeros", arcname="variables/zeros")
        assert main(["convert", str(archive), str(tmp_path / "fine")]) == 0
        assert not list((tmp_path / "fine").rglob("zeros"))
        capsys.readouterr()
        monkeypatch.setattr(archive_limits, "MAX_RATIO", 2)  # lowered so that 4 MB is past the bound
        monkeypatch.setattr(archive_limits, "RATIO_FLOOR", 1 << 20)
    assert archive.stat().st_size < 1 << 20  # a small archive, unpacking to 4 MB of zeros
    assert main(["convert", str(archive), str(tmp_path / "out")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(archive) in err and "decompression bomb" in err, err
    assert not (tmp_path / "out").exists()
    monkeypatch.setattr(archive_limits, "MAX_MEMBERS", 1)  # and an archive of too many members
    assert main(["convert", str(archive), str(tmp_path / "out")]) == 2
    assert "more than 1 members" in capsys.readouterr().err


def test_embed_file_conveniences(tmp_path, capsys):
    """--pool mean, --use-sentence-keys, --tokenize ptb, '-' for stdin, --device, --version."""
    import json

    model = ["--model", str(ELMO_MODEL), "--quiet"]
    text = "I love to watch TV\nI am wearing a wrist watch\nI love to watch TV\n"
    source = tmp_path / "in.txt"
    source.write_text(text)
    assert main(["embed-file", str(source), str(tmp_path / "all.hdf5"), *model]) == 0
    assert main(["embed-file", str(source), str(tmp_path / "pooled.hdf5"), "--pool", "mean", "--layers", "top", *model]) == 0
    with h5py.File(tmp_path / "all.hdf5", "r") as full, h5py.File(tmp_path / "pooled.hdf5", "r") as pooled:
        assert pooled["1"].shape == (32,)
        np.testing.assert_allclose(pooled["1"][...], full["1"][...][-1].mean(axis=0), atol=1e-6)
        assert json.loads(full["sentence_to_index"][0])["I love to watch TV"] == "2"
    from elmo_tasks.embedder import Embedder

    vectors = Embedder.from_dir(ELMO_MODEL).sentence_vectors([t.split() for t in text.splitlines()], layers="top")
    with h5py.File(tmp_path / "pooled.hdf5", "r") as pooled:
        np.testing.assert_allclose(vectors[1], pooled["1"][...], atol=1e-6)
    # sentence keys: unique sentences only
    assert main(["embed-file", str(source), str(tmp_path / "keys.hdf5"), "--use-sentence-keys", *model]) == 2
    assert "occurs twice" in capsys.readouterr().err
    source.write_text("Don't stop, please.\nI am wearing a wrist watch\n")
    out = tmp_path / "keys.hdf5"
    assert main(["embed-file", str(source), str(out), "--use-sentence-keys", "--tokenize", "ptb", *model]) == 0
    with h5py.File(out, "r") as handle:
        assert sorted(handle) == ["Don't stop, please.", "I am wearing a wrist watch"]
        assert handle["Don't stop, please."].shape == (3, 6, 32)  # Do n't stop , please .
    assert main(["embed-file", str(source), str(tmp_path / "x.hdf5"), "--device", "cuda:7", *model]) == 2
    assert "--device cuda:7" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--version"])
    assert capsys.readouterr().out.startswith("elmo-tasks ")


def test_stdin_input(tmp_path):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "embed-file", "-", str(tmp_path / "o.hdf5"),
                           "--model", str(ELMO_MODEL), "--quiet"], input="a b c\nd e\n", capture_output=True,
                          text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr
    with h5py.File(tmp_path / "o.hdf5", "r") as handle:
        assert handle["0"].shape == (3, 3, 32) and handle["1"].shape == (3, 2, 32)
    done = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", "embed", "-", "--options", str(ELMO / "options.json"),
                           "--weights", str(ELMO / "lm_weights.hdf5")], input="I love it\nyes\n",
                          capture_output=True, text=True, timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0 and "sentence 2: 1 tokens: yes" in done.stdout, done.stderr


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        out.append((n & 0x7F) | (0x80 if n > 0x7F else 0))
        n >>= 7
        if not n:
            return bytes(out)


def _block(entries: list[tuple[bytes, bytes]], restart_every: int) -> bytes:
    """A LevelDB block: prefix-compressed keys, a full key every ``restart_every`` entries."""
    import struct

    body, restarts, previous = bytearray(), [], b""
    for i, (key, value) in enumerate(entries):
        shared = 0
        if i % restart_every:
            while shared < min(len(key), len(previous)) and key[shared] == previous[shared]:
                shared += 1
        else:
            restarts.append(len(body))
        body += _varint(shared) + _varint(len(key) - shared) + _varint(len(value)) + key[shared:] + value
        previous = key
    return bytes(body) + b"".join(struct.pack("<I", r) for r in restarts) + struct.pack("<I", len(restarts))


def test_table_with_several_blocks_and_restarts(tmp_path):
    """TensorFlow writes ELMo-sized indexes as one block; the reader also follows several blocks and restart points."""
    import struct

    from elmo_tasks.formats.tf_bundle import TABLE_MAGIC, read_table

    def mask(crc: int) -> int:
        return ((((crc >> 15) | (crc << 17)) & 0xFFFFFFFF) + 0xA282EAD8) & 0xFFFFFFFF

    entries = [(f"lm/scope/variable_{i:03d}".encode(), bytes([i]) * (i % 7)) for i in range(40)]
    data, handles = bytearray(), []
    for chunk in (entries[:15], entries[15:31], entries[31:]):
        block = _block(chunk, restart_every=4)
        handles.append((chunk[-1][0], _varint(len(data)) + _varint(len(block))))
        data += block + b"\0" + struct.pack("<I", mask(crc32c(block + b"\0")))
    index = _block(handles, restart_every=1)
    index_handle = _varint(len(data)) + _varint(len(index))
    data += index + b"\0" + struct.pack("<I", mask(crc32c(index + b"\0")))
    footer = (_varint(0) + _varint(0) + index_handle).ljust(40, b"\0") + struct.pack("<Q", TABLE_MAGIC)
    path = tmp_path / "t.index"
    path.write_bytes(bytes(data) + footer)
    assert read_table(path) == entries
    damaged = bytearray(path.read_bytes())
    damaged[5] ^= 1
    path.write_bytes(bytes(damaged))
    with pytest.raises(ValueError, match="checksum"):
        read_table(path)


def test_embed_file_keeps_each_sentences_tokens(tmp_path):
    """Every dataset carries its tokens (attribute 'tokens', a JSON list) so vectors line up with words,
    also after PTB splitting; the file says how it was made; AllenNLP's layout is unchanged."""
    import json

    source = tmp_path / "in.txt"
    source.write_text("Don't stop, please.\nI am wearing a wrist watch\n\n")
    out = tmp_path / "o.hdf5"
    assert main(["embed-file", str(source), str(out), "--tokenize", "ptb", "--model", str(ELMO_MODEL), "--quiet"]) == 0
    with h5py.File(out, "r") as handle:
        assert sorted(handle) == ["0", "1", "2", "sentence_to_index"]  # no extra datasets beside AllenNLP's
        tokens = json.loads(handle["0"].attrs["tokens"])
        assert tokens == ["Do", "n't", "stop", ",", "please", "."] and handle["0"].shape == (3, len(tokens), 32)
        assert json.loads(handle["1"].attrs["tokens"]) == "I am wearing a wrist watch".split()
        assert json.loads(handle["2"].attrs["tokens"]) == [] and handle["2"].shape == (3, 0, 32)
        assert dict(handle.attrs) == {"layers": "all", "pool": "none", "keys": "line",
                                      "tokenize": "elmo_tasks.data.tokenize.tokenize"}
    assert main(["embed-file", str(source), str(tmp_path / "w.hdf5"), "--pool", "mean", "--model", str(ELMO_MODEL),
                 "--quiet"]) == 0
    with h5py.File(tmp_path / "w.hdf5", "r") as handle:
        assert json.loads(handle["0"].attrs["tokens"]) == ["Don't", "stop,", "please."]
        assert handle["0"].shape == (3, 32) and handle.attrs["tokenize"] == "whitespace"
