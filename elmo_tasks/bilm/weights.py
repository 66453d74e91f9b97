"""Read and write the public ELMo files: ``options.json`` + ``weights.hdf5``.

The HDF5 layout (all x·W orientation, TF gate order i, j, f, o, forget bias +1 added at run time):

* ``char_embed`` (261, d): raw char ids; we prepend the all-zero padding row -> 262.
* ``CNN/W_cnn_{i}`` (1, w, d, n) and ``CNN/b_cnn_{i}`` (n,).
* ``CNN_high_{k}/{W_carry, b_carry, W_transform, b_transform}``; ``CNN_proj/{W_proj, b_proj}``.
* ``RNN_{d}/RNN/MultiRNNCell/Cell{l}/LSTMCell/{W_0, B, W_P_0}``; d = 0 forward, 1 backward.
"""

from __future__ import annotations

from pathlib import Path

import h5py
import numpy as np
import torch

from elmo_tasks.atomic import atomic_path
from elmo_tasks.bilm.char_ids import N_RAW_CHARS
from elmo_tasks.bilm.model import BiLM
from elmo_tasks.bilm.options import BiLMOptions
from elmo_tasks.errors import UserError

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
    """Reads datasets, checking each against the shape the options imply."""

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
        return torch.from_numpy(np.asarray(data[...], dtype=np.float32))


def load_weights(model: BiLM, weights_file: str | Path) -> None:
    """Copy the public-format weights into ``model`` (whose sizes come from the options file)."""
    path = Path(weights_file)
    if not path.is_file():
        raise UserError(f"weights file not found: {path}")
    o = model.options
    try:
        handle = h5py.File(path, "r")
    except OSError as exc:
        raise UserError(f"{path}: not a readable HDF5 file ({exc})") from None
    with handle, torch.no_grad():
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


def load_bilm(options_file: str | Path, weights_file: str | Path, stateful: bool = False) -> BiLM:
    """Build a biLM from the two public files; the model is frozen and in eval mode."""
    options = BiLMOptions.load(options_file)
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


def save_arrays(arrays: dict[str, np.ndarray], options: BiLMOptions, directory: str | Path,
                dtype: str = "float32") -> Path:
    """Write public datasets (as ``weights_to_arrays`` names them) and ``options.json`` (each atomically)."""
    if dtype not in ("float32", "float16"):
        raise UserError(f"save dtype must be float32 or float16, got {dtype!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    with atomic_path(directory / WEIGHTS_NAME) as tmp, h5py.File(tmp, "w") as handle:
        for name, value in arrays.items():
            handle.create_dataset(name, data=np.asarray(value).astype(dtype))
    with atomic_path(directory / OPTIONS_NAME) as tmp:
        options.save(tmp)
    return directory
