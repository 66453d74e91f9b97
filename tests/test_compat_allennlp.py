"""elmo_tasks.compat.allennlp: a legacy AllenNLP script with only its import line changed gives the
reference implementation's numbers (simple-elmo-pytorch 0.2, AllenNLP's Elmo code; or AllenNLP's
own golden fixtures when it is not installed)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch

from elmo_tasks.compat.allennlp import Elmo, ElmoEmbedder, batch_to_ids
from elmo_tasks.errors import UserError

ELMO = Path(__file__).parent / "fixtures" / "elmo"
OPTIONS, WEIGHTS = str(ELMO / "options.json"), str(ELMO / "lm_weights.hdf5")

LEGACY_SCRIPT = '''
import sys
import numpy as np
{import_line}

options_file, weight_file, out = sys.argv[1], sys.argv[2], sys.argv[3]
elmo = Elmo(options_file, weight_file, 2, dropout=0)
sentences = [["First", "sentence", "."], ["Another", "."], ["A", "much", "longer", "third", "sentence", "here", "!"]]
character_ids = batch_to_ids(sentences)
embeddings = elmo(character_ids)
reps = embeddings["elmo_representations"]
np.savez(out, rep0=reps[0].detach().numpy(), rep1=reps[1].detach().numpy(), mask=embeddings["mask"].numpy())
'''


def run_script(tmp_path: Path, import_line: str, name: str) -> dict:
    script = tmp_path / f"{name}.py"
    script.write_text(LEGACY_SCRIPT.format(import_line=import_line))
    out = tmp_path / f"{name}.npz"
    done = subprocess.run([sys.executable, str(script), OPTIONS, WEIGHTS, str(out)], capture_output=True, text=True,
                          timeout=300, cwd=Path(__file__).parents[1])
    assert done.returncode == 0, done.stderr[-2000:]
    return dict(np.load(out))


def test_legacy_script_with_the_import_changed(tmp_path):
    pytest.importorskip("simple_elmo_pytorch", reason="the reference (pip install simple-elmo-pytorch==0.2)")
    reference = run_script(tmp_path, "from simple_elmo_pytorch import Elmo, batch_to_ids", "reference")
    ours = run_script(tmp_path, "from elmo_tasks.compat.allennlp import Elmo, batch_to_ids", "ours")
    np.testing.assert_array_equal(ours["mask"].astype(bool), reference["mask"].astype(bool))
    for key in ("rep0", "rep1"):
        assert ours[key].shape == reference[key].shape == (3, 7, 32)
        np.testing.assert_allclose(ours[key], reference[key], atol=1e-5, rtol=0)


def test_stateful_matches_allennlps_golden_fixtures(fixture_sentences, expected_top_layers):
    """stateful=True: batch after batch, AllenNLP's numbers (its lm_embeddings fixtures)."""
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, scalar_mix_parameters=[-9e10, -9e10, 0.0], stateful=True)
    for i in range(10):
        batch = [fixture_sentences[k][i].split() for k in range(3)]
        top = elmo(batch_to_ids(batch))["elmo_representations"][0]
        for k in range(3):
            np.testing.assert_allclose(top[k, : len(batch[k])].numpy(), expected_top_layers[k][i], atol=1e-5, rtol=0)


def test_stateless_by_default_and_differentiable(fixture_sentences):
    batch = [s.split() for s in fixture_sentences[0][:3]]
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0)
    first = elmo(batch_to_ids(batch))["elmo_representations"][0]
    again = elmo(batch_to_ids(batch))["elmo_representations"][0]
    torch.testing.assert_close(first, again)  # no state carried
    tuned = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0, requires_grad=True)
    out = tuned(batch_to_ids(batch))["elmo_representations"][0]
    torch.testing.assert_close(out, first, atol=1e-5, rtol=0)
    out.sum().backward()
    assert tuned.bilm.token_encoder.projection.weight.grad is not None
    assert tuned.bilm.forward_lstm.layers[0].input_linear.weight.grad.abs().sum() > 0
    frozen_params = [p for p in elmo.bilm.parameters() if p.requires_grad]
    assert frozen_params == [] and elmo.get_output_dim() == 32


def test_leading_dimensions_and_errors():
    elmo = Elmo(OPTIONS, WEIGHTS, 1, dropout=0.0)
    ids = batch_to_ids([["a", "b"], ["c"], ["d", "e"], ["f"]]).reshape(2, 2, 2, 50)
    out = elmo(ids)
    assert out["elmo_representations"][0].shape == (2, 2, 2, 32) and out["mask"].shape == (2, 2, 2)
    with pytest.raises(UserError, match="not a string"):
        batch_to_ids("First sentence .")
    with pytest.raises(UserError, match="sentence 1 is a string"):
        ElmoEmbedder(OPTIONS, WEIGHTS).embed_batch([["ok"], "not tokens"])


def test_elmo_embedder_and_its_embed_file(tmp_path, fixture_sentences, expected_top_layers):
    embedder = ElmoEmbedder(OPTIONS, WEIGHTS, stateful=True)
    vectors = embedder.embed_sentence(fixture_sentences[0][0].split())
    np.testing.assert_allclose(vectors[2], expected_top_layers[0][0], atol=1e-5, rtol=0)
    embedder.reset_states()
    source = tmp_path / "in.txt"
    lines = fixture_sentences[0][:4] + [fixture_sentences[0][0]]
    source.write_text("\n".join(lines) + "\n")
    embedder.embed_file(str(source), tmp_path / "out.hdf5", output_format="top", batch_size=2)
    with h5py.File(tmp_path / "out.hdf5", "r") as f:
        assert f["sentence_to_index"].shape == (1,)
        mapping = json.loads(f["sentence_to_index"][0])  # how AllenNLP users read it
        assert mapping[lines[0].strip()] == "4"  # a repeated sentence maps to its last line, as in AllenNLP
        assert f["0"].shape == (len(lines[0].split()), 32)
        np.testing.assert_allclose(f["0"][...], expected_top_layers[0][0], atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="occurs twice"):
        embedder.embed_file(str(source), tmp_path / "keys.hdf5", use_sentence_keys=True)
    (tmp_path / "blank.txt").write_text("a b\n\nc\n")
    with pytest.raises(UserError, match=r"empty lines at indexes \[1\]"):
        embedder.embed_file(str(tmp_path / "blank.txt"), tmp_path / "b.hdf5")
    assert not (tmp_path / "keys.hdf5").exists() and not (tmp_path / "b.hdf5").exists()
