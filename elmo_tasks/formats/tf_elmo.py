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

``find_elmo`` works from the index alone: it infers the options from the variable shapes, checks
them against the toolkit's size bounds, every variable's shape against the shapes those options
imply and its dtype (float32, the only type TensorFlow restores into bilm-tf's float32 variables),
before a byte of data is read. ``write_elmo`` then reads one tensor at a time, refuses NaN/Inf,
and writes the public files.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from elmo_tasks.bilm.char_ids import N_RAW_CHARS
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.bilm.weights import (
    OPTIONS_NAME,
    WEIGHTS_NAME,
    check_finite,
    check_model_files,
    check_option_sizes,
    expected_shapes,
    save_arrays,
)
from elmo_tasks.errors import UserError
from elmo_tasks.formats.tf_bundle import DTYPE_NAMES, TensorBundle

# defaults of every released model for what the shapes cannot tell
RELEASED_DEFAULTS = {"cell_clip": 3.0, "proj_clip": 3.0, "activation": "relu", "max_characters_per_token": 50}
FLOAT32 = 1  # TensorFlow's DT_FLOAT: bilm-tf builds every variable as float32

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
        return f"RNN_{match['d']}/RNN/MultiRNNCell/Cell{int(layer)}/LSTMCell/{_LSTM_PUBLIC[match['what']]}"
    return None


@dataclass
class ElmoVariables:
    """One ELMo in a checkpoint, checked from its index: public dataset -> variable name, and the options."""

    bundle: TensorBundle
    names: dict[str, str]
    options: BiLMOptions
    padded_table: bool  # char_embed has the inference graph's 262 rows (the zero padding row first)

    def variables(self) -> list[str]:
        return list(self.names.values())


def find_elmo(bundle: TensorBundle, scope: str, base: dict | None = None, base_source: str | Path = "options") -> ElmoVariables:
    """The model's variables under ``scope``, with its options; nothing but the index is read.

    Errors name the variable and the file: no variable under ``scope``, an unknown name, a shape that
    disagrees with the others, a type other than float32, sizes over the toolkit's bounds.
    """
    where = bundle.index_path
    names = [n for n in bundle.names() if not is_skipped(n)]
    scoped = [n for n in names if n.startswith(scope + "/")]
    if not scoped:
        shown = ", ".join(names[:4]) + (", ..." if len(names) > 4 else "")
        raise UserError(f"{where}: not an ELMo checkpoint: no variable under '{scope}/' (it holds {shown or 'nothing'})")
    public: dict[str, str] = {}
    for name in scoped:
        relative = name[len(scope) + 1 :]
        if relative.startswith("softmax/"):
            continue
        dataset = public_name(relative)
        if dataset is None:
            raise UserError(f"{where}: unknown variable '{name}' (not part of a bilm-tf ELMo model)")
        if dataset in public:
            raise UserError(f"{where}: variables '{public[dataset]}' and '{name}' are the same weight: one checkpoint "
                            "holds two models")
        public[dataset] = name
    shapes = {dataset: bundle.entry(name).shape for dataset, name in public.items()}
    if "char_embed" not in shapes:
        raise UserError(f"{where}: variable '{scope}/char_embed' is missing (only character-input ELMo models convert)")
    table = shapes["char_embed"]
    if len(table) != 2 or table[0] not in (N_RAW_CHARS, N_RAW_CHARS + 1):
        raise UserError(f"{where}: variable '{scope}/char_embed' has shape {list(table)}; "
                        f"expected {N_RAW_CHARS} or {N_RAW_CHARS + 1} rows")
    padded = table[0] == N_RAW_CHARS + 1
    shapes["char_embed"] = (N_RAW_CHARS, table[1])
    options = infer_options(shapes, where, base, base_source)
    expected = expected_shapes(options)
    for dataset, name in public.items():
        if dataset not in expected:
            raise UserError(f"{where}: variable '{name}' is not part of a model of the sizes the other variables "
                            f"give ({_sizes(options)})")
        if shapes[dataset] != expected[dataset]:
            shown = list(bundle.entries[name].shape)
            raise UserError(f"{where}: variable '{name}' has shape {shown}, but the other variables imply "
                            f"{list(expected[dataset])} ({_sizes(options)})")
        dtype = bundle.entries[name].dtype
        if dtype != FLOAT32:
            raise UserError(f"{where}: variable '{name}' holds {DTYPE_NAMES.get(dtype, dtype)}; bilm-tf's variables "
                            "are float32, and TensorFlow restores them only from float32")
    missing = [dataset for dataset in expected if dataset not in public]
    if missing:
        raise UserError(f"{where}: variable for '{missing[0]}' is missing ({len(missing)} missing in all)")
    return ElmoVariables(bundle, {dataset: public[dataset] for dataset in expected}, options, padded)


def _sizes(o: BiLMOptions) -> str:
    return (f"lstm.dim {o.lstm_dim}, projection_dim {o.projection_dim}, {o.n_layers} layers, "
            f"{len(o.filters)} filter banks, {o.n_highway} highways")


def _shape(shapes: dict[str, tuple[int, ...]], name: str, rank: int, source: str | Path) -> tuple[int, ...]:
    if name not in shapes:
        raise UserError(f"{source}: variable for '{name}' is missing")
    if len(shapes[name]) != rank:
        raise UserError(f"{source}: variable for '{name}' has shape {list(shapes[name])}, expected {rank} dimensions")
    return shapes[name]


def infer_options(shapes: dict[str, tuple[int, ...]], source: str | Path, base: dict | None = None,
                  base_source: str | Path = "options") -> BiLMOptions:
    """The model's options from the public datasets' shapes; ``base`` (an options.json's content, read
    from ``base_source``) supplies clip values, activation and training fields, else the released
    models' defaults. The sizes are checked against the toolkit's bounds."""
    base = base or {}
    for section in ("lstm", "char_cnn"):
        if not isinstance(base.get(section, {}), dict):
            raise UserError(f"{base_source}: '{section}' must be a JSON object, got {base[section]!r:.60}")
    lstm, cnn = dict(base.get("lstm", {})), dict(base.get("char_cnn", {}))
    filters = []
    while f"CNN/W_cnn_{len(filters)}" in shapes:
        w = shapes[f"CNN/W_cnn_{len(filters)}"]
        if len(w) != 4 or w[0] != 1:
            raise UserError(f"{source}: variable 'CNN/W_cnn_{len(filters)}' has shape {list(w)}, expected [1, w, d, n]")
        filters.append([int(w[1]), int(w[3])])
    if not filters:
        raise UserError(f"{source}: variable for 'CNN/W_cnn_0' is missing")
    n_highway = 0
    while f"CNN_high_{n_highway}/W_carry" in shapes:
        n_highway += 1
    n_layers = 0
    while f"RNN_0/RNN/MultiRNNCell/Cell{n_layers}/LSTMCell/W_0" in shapes:
        n_layers += 1
    if n_layers == 0:
        raise UserError(f"{source}: no LSTM variables (RNN_0/.../Cell0/...kernel) found")
    p = int(_shape(shapes, "CNN_proj/W_proj", 2, source)[1])
    c = int(_shape(shapes, "RNN_0/RNN/MultiRNNCell/Cell0/LSTMCell/B", 1, source)[0]) // 4
    lstm.update({"dim": c, "projection_dim": p, "n_layers": n_layers})
    lstm.setdefault("cell_clip", RELEASED_DEFAULTS["cell_clip"])
    lstm.setdefault("proj_clip", RELEASED_DEFAULTS["proj_clip"])
    lstm.setdefault("use_skip_connections", True)
    cnn.update({"embedding": {"dim": int(_shape(shapes, "char_embed", 2, source)[1])}, "filters": filters,
                "n_highway": n_highway, "n_characters": 262})
    cnn.setdefault("activation", RELEASED_DEFAULTS["activation"])
    cnn.setdefault("max_characters_per_token", RELEASED_DEFAULTS["max_characters_per_token"])
    data = {k: v for k, v in base.items() if k not in ("lstm", "char_cnn")}
    data.update({"lstm": lstm, "char_cnn": cnn})
    where = f"{source} (options inferred from the variable shapes)"
    options = BiLMOptions.from_dict(data, source=where)
    check_option_sizes(options, where)
    return options


class _Tensors(Mapping):
    """The public datasets, read from the checkpoint one at a time (as ``save_arrays`` iterates) and
    checked for NaN/Inf; ``char_embed`` without the inference graph's padding row."""

    def __init__(self, found: ElmoVariables) -> None:
        self.found = found

    def __iter__(self) -> Iterator[str]:
        return iter(self.found.names)

    def __len__(self) -> int:
        return len(self.found.names)

    def __getitem__(self, dataset: str) -> np.ndarray:
        bundle, name = self.found.bundle, self.found.names[dataset]
        array = bundle.read(name)
        where = bundle.data_path(bundle.entries[name].shard)
        if dataset == "char_embed" and self.found.padded_table:
            if np.any(array[0] != 0):
                raise UserError(f"{where}: variable '{name}' has 262 rows but row 0 (padding) is not zero")
            array = array[1:]
        check_finite(array, f"variable '{name}'", where)
        return array


def write_elmo(found: ElmoVariables, out_dir: Path) -> None:
    """Write ``options.json`` + ``weights.hdf5`` through the public writer, one tensor in memory at a
    time, then check the written file's datasets against the options (metadata only)."""
    save_arrays(_Tensors(found), found.options, out_dir)
    check_model_files(found.options, out_dir / OPTIONS_NAME, out_dir / WEIGHTS_NAME)
