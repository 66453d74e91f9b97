"""ELMo variables in a TensorFlow checkpoint -> the public datasets of ``weights.hdf5``.

bilm-tf names the same weights three ways; all map onto the public names of
``elmo_tasks.bilm.weights`` (x·W orientation and TF gate order in every one, so only names change):

* inference graph / TF-Hub module, scope ``bilm/``:
  ``RNN_{d}/RNN/MultiRNNCell/Cell{l}/rnn/lstm_cell/{kernel, bias, projection/kernel}``;
* training checkpoint, scope ``lm/``: ``RNN_{d}/rnn/multi_rnn_cell/cell_{l}/lstm_cell/...``;
* both: ``char_embed`` (262 rows with the zero padding row first in the inference graph, 261 in
  training), ``CNN/{W,b}_cnn_{i}``, ``CNN_high_{k}/...``, ``CNN_proj/...``. TensorFlow 1.0-era
  checkpoints say ``weights``/``biases`` where later ones say ``kernel``/``bias``.

Everything a checkpoint holds besides the model is recognised and skipped: optimizer slots
(``.../Adagrad`` and friends), ``global_step``, ``train_perplexity``, the inference graph's LSTM
state variables (``bilm/Variable_3``). Any other name under the scope is an error that names it.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from elmo_tasks.bilm.char_ids import N_RAW_CHARS
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import load_bilm_dir, save_arrays
from elmo_tasks.errors import UserError
from elmo_tasks.formats.tf_bundle import TensorBundle

# defaults of every released model for what the shapes cannot tell
RELEASED_DEFAULTS = {"cell_clip": 3.0, "proj_clip": 3.0, "activation": "relu", "max_characters_per_token": 50}

_SLOT = re.compile(r"/(Adagrad|Adam|Adam_1|Momentum|RMSProp|RMSProp_1|ExponentialMovingAverage|Ftrl|Ftrl_1|"
                   r"Adadelta|Adadelta_1)$")
_SKIPPED_TOP = re.compile(r"^(global_step|train_perplexity|beta1_power|beta2_power|_CHECKPOINTABLE_OBJECT_GRAPH)$")
_STATE = re.compile(r"^Variable(_\d+)?$")
_LSTM = re.compile(
    r"^RNN_(?P<d>[01])/(?:RNN/MultiRNNCell/Cell(?P<l1>\d+)/rnn/lstm_cell|rnn/multi_rnn_cell/cell_(?P<l2>\d+)/lstm_cell)"
    r"/(?P<what>kernel|bias|weights|biases|projection/kernel|projection/weights)$")
_ENCODER = re.compile(r"^(char_embed|CNN/[Wb]_cnn_\d+|CNN_high_\d+/[Wb]_(carry|transform)|CNN_proj/[Wb]_proj)$")
_LSTM_PUBLIC = {"kernel": "W_0", "weights": "W_0", "bias": "B", "biases": "B",
                "projection/kernel": "W_P_0", "projection/weights": "W_P_0"}


def is_skipped(name: str) -> bool:
    """Variables that are not model weights: optimizer slots, counters, carried LSTM states."""
    return bool(_SLOT.search(name) or _SKIPPED_TOP.match(name) or _STATE.match(name.split("/", 1)[-1]))


def public_name(relative: str) -> str | None:
    """The public dataset for a variable name relative to the model scope, or None if unknown."""
    if _ENCODER.match(relative):
        return relative
    match = _LSTM.match(relative)
    if match:
        layer = match["l1"] if match["l1"] is not None else match["l2"]
        return f"RNN_{match['d']}/RNN/MultiRNNCell/Cell{layer}/LSTMCell/{_LSTM_PUBLIC[match['what']]}"
    return None


def read_elmo_arrays(bundle: TensorBundle, scope: str) -> dict[str, np.ndarray]:
    """The model's weights as public datasets (``char_embed`` with its 261 trained rows).

    Errors name the variable and the file: a checkpoint with no variable under ``scope``, an
    unknown name under it, a truncated data file.
    """
    where = bundle.index_path
    arrays: dict[str, np.ndarray] = {}
    names = [n for n in bundle.names() if not is_skipped(n)]
    scoped = [n for n in names if n.startswith(scope + "/")]
    if not scoped:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise UserError(f"{where}: not an ELMo checkpoint: no variable under '{scope}/' (it holds {shown or 'nothing'})")
    for name in scoped:
        relative = name[len(scope) + 1 :]
        if relative.startswith("softmax/"):
            continue
        public = public_name(relative)
        if public is None:
            raise UserError(f"{where}: unknown variable '{name}' (not part of a bilm-tf ELMo model)")
        arrays[public] = np.asarray(bundle.read(name), dtype=np.float32)
    if "char_embed" not in arrays:
        raise UserError(f"{where}: variable '{scope}/char_embed' is missing (only character-input ELMo models convert)")
    table = arrays["char_embed"]
    if table.ndim != 2 or table.shape[0] not in (N_RAW_CHARS, N_RAW_CHARS + 1):
        raise UserError(f"{where}: variable '{scope}/char_embed' has shape {list(table.shape)}; "
                        f"expected {N_RAW_CHARS} or {N_RAW_CHARS + 1} rows")
    if table.shape[0] == N_RAW_CHARS + 1:  # the inference graph's padding row: drop it
        if np.any(table[0] != 0):
            raise UserError(f"{where}: variable '{scope}/char_embed' has 262 rows but row 0 (padding) is not zero")
        arrays["char_embed"] = table[1:]
    return arrays


def infer_options(arrays: dict[str, np.ndarray], source: str | Path, base: dict | None = None) -> BiLMOptions:
    """The model's options from the weight shapes; ``base`` (an options.json's content) supplies
    clip values, activation and training fields, else the released models' defaults."""
    base = base or {}
    lstm, cnn = dict(base.get("lstm", {})), dict(base.get("char_cnn", {}))

    def need(name: str) -> np.ndarray:
        if name not in arrays:
            raise UserError(f"{source}: variable for '{name}' is missing")
        return arrays[name]

    filters = []
    while f"CNN/W_cnn_{len(filters)}" in arrays:
        w = arrays[f"CNN/W_cnn_{len(filters)}"]
        if w.ndim != 4 or w.shape[0] != 1:
            raise UserError(f"{source}: variable 'CNN/W_cnn_{len(filters)}' has shape {list(w.shape)}, expected [1, w, d, n]")
        filters.append([int(w.shape[1]), int(w.shape[3])])
    if not filters:
        raise UserError(f"{source}: variable for 'CNN/W_cnn_0' is missing")
    n_highway = 0
    while f"CNN_high_{n_highway}/W_carry" in arrays:
        n_highway += 1
    n_layers = 0
    while f"RNN_0/RNN/MultiRNNCell/Cell{n_layers}/LSTMCell/W_0" in arrays:
        n_layers += 1
    if n_layers == 0:
        raise UserError(f"{source}: no LSTM variables (RNN_0/.../Cell0/...kernel) found")
    projection = need("CNN_proj/W_proj")
    p = int(projection.shape[1])
    c = int(need("RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/B").shape[0]) // 4
    lstm.update({"dim": c, "projection_dim": p, "n_layers": n_layers})
    lstm.setdefault("cell_clip", RELEASED_DEFAULTS["cell_clip"])
    lstm.setdefault("proj_clip", RELEASED_DEFAULTS["proj_clip"])
    lstm.setdefault("use_skip_connections", True)
    cnn.update({"embedding": {"dim": int(need("char_embed").shape[1])}, "filters": filters,
                "n_highway": n_highway, "n_characters": 262})
    cnn.setdefault("activation", RELEASED_DEFAULTS["activation"])
    cnn.setdefault("max_characters_per_token", RELEASED_DEFAULTS["max_characters_per_token"])
    data = {k: v for k, v in base.items() if k not in ("lstm", "char_cnn")}
    data.update({"lstm": lstm, "char_cnn": cnn})
    return BiLMOptions.from_dict(data, source=f"{source} (options inferred from the variable shapes)")


def write_model(arrays: dict[str, np.ndarray], options: BiLMOptions, out_dir: Path, source: str | Path) -> None:
    """Write ``options.json`` + ``weights.hdf5`` through the public writer, then load them back: a
    shape that disagrees with the options fails here, naming the dataset, not later."""
    save_arrays(arrays, options, out_dir)
    try:
        load_bilm_dir(out_dir)
    except UserError as exc:
        raise UserError(f"{source}: the converted weights do not fit the options: {exc}") from None
