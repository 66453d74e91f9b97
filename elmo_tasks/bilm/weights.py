"""Read and write the public ELMo files: ``options.json`` + ``weights.hdf5``.

The HDF5 layout (all x·W orientation, TF gate order i, j, f, o, forget bias +1 added at run time):

* ``char_embed`` (261, d): raw char ids; we prepend the all-zero padding row -> 262.
* ``CNN/W_cnn_{i}`` (1, w, d, n) and ``CNN/b_cnn_{i}`` (n,).
* ``CNN_high_{k}/{W_carry, b_carry, W_transform, b_transform}``; ``CNN_proj/{W_proj, b_proj}``.
* ``RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/{W_0, B, W_P_0}``; d = 0 forward, 1 backward.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import h5py
import numpy as np
import torch

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.char_ids import N_RAW_CHARS
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.errors import UserError
from elmo_tasks.paths import input_file_problem

OPTIONS_NAME = "options.json"
WEIGHTS_NAME = "weights.hdf5"
TF_TO_TORCH_GATES = (0, 2, 1, 3)  # torch block k holds TF block TF_TO_TORCH_GATES[k]; self-inverse
FORGET_BLOCK_TF = 2


def _lstm_prefix(direction: int, layer: int) -> str:
    return f"RNN_{direction}/RNN/MultiRNNCell/Cell{layer}/LSTMCell"


def _reorder_gates(x: np.ndarray, axis: int) -> np.ndarray:
    blocks = np.split(x, 4, axis=axis)
    return np.concatenate([blocks[i] for i in TF_TO_TORCH_GATES], axis=axis)


class _Reader:
    """Reads datasets, checking each against the shape the options imply and for NaN/Inf values."""

    def __init__(self, handle: h5py.File, path: Path) -> None:
        self.handle, self.path = handle, path

    def __call__(self, name: str, shape: tuple[int, ...], hint: str = "") -> torch.Tensor:
        if name not in self.handle:
            raise UserError(f"{self.path}: dataset '{name}' is missing (is this an ELMo weights file?)")
        data = self.handle[name]
        if tuple(data.shape) != shape:
            raise UserError(
                f"{self.path}: dataset '{name}' has shape {tuple(data.shape)}, but the options file implies {shape}{hint}"
            )
        try:
            array = np.asarray(data[...], dtype=np.float32)
        except (OSError, ValueError, TypeError, RuntimeError) as exc:
            raise UserError(f"{self.path}: dataset '{name}' cannot be read ({exc})") from None
        check_finite(array, f"dataset '{name}'", self.path)
        return torch.from_numpy(array)


FINITE_CHUNK = 1 << 22  # elements checked at a time: a 4 MiB boolean temporary at most


def check_finite(array: np.ndarray, what: str, where: str | Path) -> None:
    """A one-line error naming ``what`` (e.g. "variable 'bilm/CNN_proj/W_proj'") when ``array`` holds
    NaN or an infinity: such weights give NaN vectors for every sentence, so they are refused at load."""
    flat = np.asarray(array).reshape(-1)
    for start in range(0, flat.size, FINITE_CHUNK):
        chunk = flat[start : start + FINITE_CHUNK]
        if not np.isfinite(chunk).all():
            kind = "NaN" if np.isnan(chunk).any() else "infinite"
            raise UserError(f"{where}: {what} holds {kind} values: these are not usable weights (a damaged "
                            "or diverged model)")


def load_weights(model: BiLM, weights_file: str | Path) -> None:
    """Copy the public-format weights into ``model`` (whose sizes come from the options file)."""
    path = Path(weights_file)
    o = model.options
    with _open_weights(path) as handle, torch.no_grad():
        read = _Reader(handle, path)
        enc = model.token_encoder
        table = read("char_embed", (N_RAW_CHARS, o.char_embedding_dim),
                     " (261 raw character rows; check char_cnn.embedding.dim)")
        enc.char_embedding.weight[0].zero_()
        enc.char_embedding.weight[1:] = table
        for i, ((width, count), conv) in enumerate(zip(o.filters, enc.convolutions)):
            w = read(f"CNN/W_cnn_{i}", (1, width, o.char_embedding_dim, count), " (check char_cnn.filters)")
            conv.weight.copy_(w[0].permute(2, 1, 0))
            conv.bias.copy_(read(f"CNN/b_cnn_{i}", (count,)))
        if f"CNN/W_cnn_{len(o.filters)}" in handle:
            raise UserError(f"{path}: has more CNN filter banks than the {len(o.filters)} in char_cnn.filters")
        f = o.n_filters
        for k, highway in enumerate(enc.highways):
            highway.carry.weight.copy_(read(f"CNN_high_{k}/W_carry", (f, f), " (check char_cnn.n_highway)").T)
            highway.carry.bias.copy_(read(f"CNN_high_{k}/b_carry", (f,)))
            highway.transform.weight.copy_(read(f"CNN_high_{k}/W_transform", (f, f)).T)
            highway.transform.bias.copy_(read(f"CNN_high_{k}/b_transform", (f,)))
        if f"CNN_high_{o.n_highway}" in handle:
            raise UserError(f"{path}: has more highway layers than char_cnn.n_highway = {o.n_highway}")
        enc.projection.weight.copy_(read("CNN_proj/W_proj", (f, o.projection_dim), " (check lstm.projection_dim)").T)
        enc.projection.bias.copy_(read("CNN_proj/b_proj", (o.projection_dim,)))

        p, c = o.projection_dim, o.lstm_dim
        for direction, stack in enumerate((model.forward_lstm, model.backward_lstm)):
            for index, layer in enumerate(stack.layers):
                prefix = _lstm_prefix(direction, index)
                kernel = read(f"{prefix}/W_0", (2 * p, 4 * c), " (check lstm.dim and lstm.projection_dim)").numpy()
                bias = read(f"{prefix}/B", (4 * c,)).numpy().copy()
                bias[FORGET_BLOCK_TF * c : (FORGET_BLOCK_TF + 1) * c] += 1.0
                layer.input_linear.weight.copy_(torch.from_numpy(_reorder_gates(kernel[:p].T, 0)))
                layer.state_linear.weight.copy_(torch.from_numpy(_reorder_gates(kernel[p:].T, 0)))
                layer.state_linear.bias.copy_(torch.from_numpy(_reorder_gates(bias, 0)))
                layer.projection.weight.copy_(read(f"{prefix}/W_P_0", (c, p)).T)
            if _lstm_prefix(direction, o.n_layers) in handle:
                raise UserError(f"{path}: has more LSTM layers than lstm.n_layers = {o.n_layers}")


# what a model file may ask for: far above every published ELMo (4096 / 512 / 2 layers / 2048
# filters / 2 highways), far below what would exhaust a machine's memory before an error
SIZE_LIMITS = {"lstm.dim": 16384, "lstm.projection_dim": 8192, "lstm.n_layers": 16, "char_cnn.n_highway": 16,
               "char_cnn.embedding.dim": 4096, "char_cnn.filters (banks)": 64, "char_cnn.filters (total count)": 32768}
MAX_PARAMETERS = 2**30  # 4 GiB of float32
MIN_STORED_FRACTION = 1 / 64  # a dataset stored in less than this of its size holds no real weights


def expected_shapes(o: BiLMOptions) -> dict[str, tuple[int, ...]]:
    """Every dataset of the weights file the options imply, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {"char_embed": (N_RAW_CHARS, o.char_embedding_dim)}
    for i, (width, count) in enumerate(o.filters):
        shapes[f"CNN/W_cnn_{i}"] = (1, width, o.char_embedding_dim, count)
        shapes[f"CNN/b_cnn_{i}"] = (count,)
    f, p, c = o.n_filters, o.projection_dim, o.lstm_dim
    for k in range(o.n_highway):
        for kind in ("carry", "transform"):
            shapes[f"CNN_high_{k}/W_{kind}"], shapes[f"CNN_high_{k}/b_{kind}"] = (f, f), (f,)
    shapes["CNN_proj/W_proj"], shapes["CNN_proj/b_proj"] = (f, p), (p,)
    for direction in (0, 1):
        for layer in range(o.n_layers):
            prefix = _lstm_prefix(direction, layer)
            shapes[f"{prefix}/W_0"], shapes[f"{prefix}/B"], shapes[f"{prefix}/W_P_0"] = (2 * p, 4 * c), (4 * c,), (c, p)
    return shapes


_HINTS = (("char_embed", "char_cnn.embedding.dim (261 raw character rows)"), ("CNN/", "char_cnn.filters"),
          ("CNN_high", "char_cnn.n_highway"), ("CNN_proj", "lstm.projection_dim"),
          ("RNN", "lstm.dim and lstm.projection_dim"))


def check_option_sizes(options: BiLMOptions, options_file: str | Path) -> None:
    """The options' sizes against this toolkit's fixed bounds (``SIZE_LIMITS``, ``MAX_PARAMETERS``),
    before any weight is read or written; the error names ``options_file`` and the key."""
    o = options
    sizes = {"lstm.dim": o.lstm_dim, "lstm.projection_dim": o.projection_dim, "lstm.n_layers": o.n_layers,
             "char_cnn.n_highway": o.n_highway, "char_cnn.embedding.dim": o.char_embedding_dim,
             "char_cnn.filters (banks)": len(o.filters), "char_cnn.filters (total count)": o.n_filters}
    for key, value in sizes.items():
        if value > SIZE_LIMITS[key]:
            raise UserError(f"{options_file}: {key} is {value:,}, over this toolkit's limit of {SIZE_LIMITS[key]:,}")
    for i, (width, _) in enumerate(o.filters):
        if width > o.max_characters_per_token:
            raise UserError(f"{options_file}: char_cnn.filters[{i}] is {width} characters wide, wider than "
                            f"char_cnn.max_characters_per_token = {o.max_characters_per_token}")
    parameters = count_parameters(o)
    if parameters > MAX_PARAMETERS:
        raise UserError(f"{options_file}: these sizes make {parameters:,} parameters, over this toolkit's limit "
                        f"of {MAX_PARAMETERS:,}")


def count_parameters(options: BiLMOptions) -> int:
    """How many numbers the weights file of these options holds."""
    return sum(int(np.prod(shape, dtype=np.int64)) for shape in expected_shapes(options).values())


def _open_weights(path: Path) -> h5py.File:
    problem = input_file_problem(path, "weights file")
    if problem:
        raise UserError(problem)
    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from None


def _stored_dataset(handle: h5py.File, name: str, path: Path) -> h5py.Dataset | None:
    """The dataset ``name`` if it is stored in this file (None when absent); a link to another name
    or file, external raw storage or a virtual dataset is refused: weights are read from this file only."""
    parts = name.split("/")
    for depth in range(1, len(parts) + 1):
        link = handle.get("/".join(parts[:depth]), getlink=True)
        if link is None:
            return None
        if not isinstance(link, h5py.HardLink):
            raise UserError(f"{path}: '{'/'.join(parts[:depth])}' is a {type(link).__name__} to another name or file, "
                            "not data stored in this file")
    data = handle.get(name)
    if not isinstance(data, h5py.Dataset):
        return None
    if data.is_virtual or data.id.get_create_plist().get_external_count():
        raise UserError(f"{path}: dataset '{name}' keeps its data in other files (external or virtual storage): "
                        "weights are read from this file only")
    return data


def check_model_files(options: BiLMOptions, options_file: str | Path, weights_file: str | Path) -> None:
    """Check the options' sizes against fixed bounds and against the weights file's dataset shapes,
    reading only metadata, BEFORE anything is built: an absurd or mismatched model file is a
    one-line error instead of gigabytes allocated and a crash."""
    check_option_sizes(options, options_file)
    shapes = expected_shapes(options)
    path = Path(weights_file)
    with _open_weights(path) as handle:
        for name, shape in shapes.items():
            try:
                data = _stored_dataset(handle, name, path)
                if data is None:
                    raise UserError(f"{path}: dataset '{name}' is missing (is this an ELMo weights file of "
                                    f"{options_file}?)")
                if tuple(data.shape) != shape:
                    hint = next(h for prefix, h in _HINTS if name.startswith(prefix))
                    raise UserError(f"{path}: dataset '{name}' has shape {tuple(data.shape)}, but the options file "
                                    f"implies {shape} ({options_file}: check {hint})")
                if data.dtype.kind != "f":
                    raise UserError(f"{path}: dataset '{name}' holds {data.dtype}, not floating-point weights")
                declared = int(np.prod(shape, dtype=np.int64)) * data.dtype.itemsize
                stored = data.id.get_storage_size()
            except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
                raise UserError(f"{path}: dataset '{name}' cannot be read ({exc})") from None
            if declared > 1 << 20 and stored < declared * MIN_STORED_FRACTION:
                raise UserError(f"{path}: dataset '{name}' declares {declared:,} bytes but stores only "
                                f"{stored:,}: not a file of trained weights")


def verify_model_files(options_file: str | Path, weights_file: str | Path) -> None:
    """``check_model_files``, then every dataset read once (one at a time) and checked for NaN/Inf:
    what a converter runs on a model it wrote or copied, without building the biLM."""
    options = BiLMOptions.load(options_file)
    check_model_files(options, options_file, weights_file)
    path = Path(weights_file)
    with _open_weights(path) as handle:
        read = _Reader(handle, path)
        for name, shape in expected_shapes(options).items():
            read(name, shape)


def load_bilm(options_file: str | Path, weights_file: str | Path, stateful: bool = False) -> BiLM:
    """Build a biLM from the two public files (checked first: ``check_model_files``); frozen, in eval mode."""
    options = BiLMOptions.load(options_file)
    check_model_files(options, options_file, weights_file)
    model = BiLM(options, stateful=stateful)
    load_weights(model, weights_file)
    model.requires_grad_(False)
    return model.eval()


def load_bilm_dir(directory: str | Path, stateful: bool = False) -> BiLM:
    """Load ``options.json`` + ``weights.hdf5`` from a model folder."""
    directory = Path(directory)
    if not directory.is_dir():
        raise UserError(f"model folder not found: {directory} (it should hold {OPTIONS_NAME} and {WEIGHTS_NAME})")
    return load_bilm(directory / OPTIONS_NAME, directory / WEIGHTS_NAME, stateful=stateful)


def weights_to_arrays(model: BiLM) -> dict[str, np.ndarray]:
    """The model's parameters as the public datasets (the inverse of ``load_weights``)."""
    o = model.options
    enc = model.token_encoder
    out: dict[str, np.ndarray] = {}

    def arr(t: torch.Tensor) -> np.ndarray:
        return t.detach().cpu().float().numpy()

    out["char_embed"] = arr(enc.char_embedding.weight[1:])
    for i, conv in enumerate(enc.convolutions):
        out[f"CNN/W_cnn_{i}"] = arr(conv.weight.permute(2, 1, 0).unsqueeze(0))
        out[f"CNN/b_cnn_{i}"] = arr(conv.bias)
    for k, highway in enumerate(enc.highways):
        out[f"CNN_high_{k}/W_carry"] = arr(highway.carry.weight.T)
        out[f"CNN_high_{k}/b_carry"] = arr(highway.carry.bias)
        out[f"CNN_high_{k}/W_transform"] = arr(highway.transform.weight.T)
        out[f"CNN_high_{k}/b_transform"] = arr(highway.transform.bias)
    out["CNN_proj/W_proj"] = arr(enc.projection.weight.T)
    out["CNN_proj/b_proj"] = arr(enc.projection.bias)
    c = o.lstm_dim
    for direction, stack in enumerate((model.forward_lstm, model.backward_lstm)):
        for index, layer in enumerate(stack.layers):
            prefix = _lstm_prefix(direction, index)
            w_in = _reorder_gates(arr(layer.input_linear.weight), 0)
            w_h = _reorder_gates(arr(layer.state_linear.weight), 0)
            bias = _reorder_gates(arr(layer.state_linear.bias), 0)
            bias[FORGET_BLOCK_TF * c : (FORGET_BLOCK_TF + 1) * c] -= 1.0
            out[f"{prefix}/W_0"] = np.concatenate([w_in, w_h], axis=1).T.copy()
            out[f"{prefix}/B"] = bias
            out[f"{prefix}/W_P_0"] = arr(layer.projection.weight.T)
    return out


def save_bilm(model: BiLM, directory: str | Path, dtype: str = "float32") -> Path:
    """Write ``options.json`` + ``weights.hdf5`` into ``directory`` (each file atomically).

    ``dtype`` is ``float32`` or ``float16`` (half the size; loads back as float32).
    """
    return save_arrays(weights_to_arrays(model), model.options, directory, dtype)


def save_arrays(arrays: Mapping[str, np.ndarray], options: BiLMOptions, directory: str | Path,
                dtype: str = "float32") -> Path:
    """Write public datasets (as ``weights_to_arrays`` names them) and ``options.json`` (each atomically).

    ``arrays`` is iterated once, one dataset at a time (a lazy mapping keeps one tensor in memory);
    an array already of ``dtype`` is written without a copy.
    """
    if dtype not in ("float32", "float16"):
        raise UserError(f"save dtype must be float32 or float16, got {dtype!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp, h5py.File(tmp, "w") as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=np.asarray(value, dtype=dtype))
    with atomic_path(directory / OPTIONS_NAME) as tmp:
        options.save(tmp)
    return directory
