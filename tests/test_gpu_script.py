"""The GPU device check's code path needs neither ``datasets`` nor ``seqeval`` (the GPU machine has
neither): with both masked, the default model embeds, a pretraining run trains and exports, its
perplexity is scored, and the device check script imports and parses its arguments."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

PROGRAM = r"""
import sys
sys.modules["datasets"] = None  # import datasets -> ImportError
sys.modules["seqeval"] = None
import json, runpy, tempfile, yaml
from pathlib import Path
root = Path(sys.argv[1])
from elmo_tasks.embedder import DEFAULT_MODEL_DIR, Embedder
vectors = Embedder.from_dir(DEFAULT_MODEL_DIR).embed_batch([["a", "masked", "import", "test"]])
from elmo_tasks.pretrain.settings import config_from_dict
from elmo_tasks.pretrain.trainer import Trainer
from elmo_tasks.pretrain.perplexity import text_perplexity
data = yaml.safe_load((root / "configs" / "pretrain" / "tiny.yaml").read_text())
data["training"].update(max_steps=3)
out = Path(tempfile.mkdtemp()) / "run"
summary = Trainer(config_from_dict(data, "tiny.yaml", base=root / "configs" / "pretrain"), out, progress=False).train()
ppl = text_perplexity(out / "model", [str(root / "tests" / "fixtures" / "pretrain" / "heldout.txt")])
script = runpy.run_path(str(root / "benchmarks" / "gpu" / "device_check.py"))  # imports, defines, does not run
assert "datasets" not in [m for m in sys.modules if sys.modules[m] is not None]
print(json.dumps({"shape": list(vectors[0].shape), "steps": summary["steps"], "ppl": ppl.average,
                  "phases": sorted(k for k in script if k.startswith(("smoke", "pretrain_", "perplexity")))}))
"""


def test_device_check_path_runs_without_datasets_and_seqeval():
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    done = subprocess.run([sys.executable, "-c", PROGRAM, str(ROOT)], capture_output=True, text=True, env=env,
                          timeout=600, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-3000:]
    result = __import__("json").loads(done.stdout.strip().splitlines()[-1])
    assert result["shape"][1] == 4 and result["steps"] == 3 and result["ppl"] > 1
    assert {"perplexity", "pretrain_run", "pretrain_speed", "smoke_inference", "smoke_pretrain"} <= set(result["phases"])
