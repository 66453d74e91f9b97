"""Matrix products on weights prepacked for oneDNN, the CPU inference path's fast ``x @ W^T + b``.

``torch.ops.mkldnn._linear_pointwise`` multiplies by a weight reordered once into oneDNN's blocked
layout (``pack``). On this project's CPU that runs at 1.2-2.9x the rate of ``torch.mm`` for the
biLM's shapes, most for the few-row recurrent products (``benchmarks/lstm_products.py``), and it
is exact float32. ``ready`` checks once that the build has it and that it agrees with
``torch.mm``; callers fall back to plain products otherwise (GPUs, other builds).

oneDNN compiles and keeps one kernel (about 0.6 MiB) per distinct row count, up to 1,024 of them:
left free, the row counts of a long run (batch rows, distinct tokens) grow the process by hundreds
of MiB. ``linear`` therefore pads its rows up to ``padded_rows(n)``, which bounds the kernels to a
few dozen for at most 12.5% extra rows.

The same calls take bfloat16 weights and inputs (``ready_low``): oneDNN then runs its AMX /
AVX512-BF16 kernels, 1.7-1.9x the rate of ``torch.mm`` in bfloat16 for the recurrent products
(64 rows, one thread), with bfloat16 results.

Packed weights are opaque tensors that cannot be copied or pickled, so they are kept outside the
modules, in a ``ConvertedWeights`` map owned by the inference engine (which also keeps its
low-precision weight copies there); the map forgets a module when the module is dropped.
"""

from __future__ import annotations

import weakref
from collections.abc import Callable, Sequence

import torch

_READY: bool | None = None  # whether the packed products work in this build (checked once)
_READY_LOW: dict[torch.dtype, bool] = {}  # the same, per lower precision


def ready(device: torch.device) -> bool:
    """True when packed products are available here (CPU only) and agree with ``torch.mm``."""
    global _READY
    if device.type != "cpu" or not torch.backends.mkldnn.is_available():
        return False
    if _READY is None:
        try:
            x, w, b = torch.randn(3, 8), torch.randn(16, 8), torch.randn(16)
            y = linear(x, pack(w), b)
            _READY = bool(torch.allclose(y, torch.addmm(b, x, w.t()), atol=1e-5)
                          and torch.allclose(linear_add(x, y, pack(w)), y + x @ w.t(), atol=1e-5))
        except (RuntimeError, AttributeError, NotImplementedError):
            _READY = False
    return _READY


def ready_low(device: torch.device, dtype: torch.dtype) -> bool:
    """True when packed products in ``dtype`` (bfloat16: AMX / AVX512-BF16 kernels) work here and
    agree with ``torch.mm`` in that dtype to its rounding."""
    if not ready(device):
        return False
    if dtype not in _READY_LOW:
        try:
            x, w = torch.randn(5, 32).to(dtype), torch.randn(24, 32).to(dtype)
            y = linear(x, pack(w))
            want = (x.float() @ w.float().t())
            _READY_LOW[dtype] = bool(y.dtype == dtype and torch.allclose(y.float(), want, rtol=2e-2, atol=2e-2))
        except (RuntimeError, AttributeError, NotImplementedError):
            _READY_LOW[dtype] = False
    return _READY_LOW[dtype]


def pack(weight: torch.Tensor) -> torch.Tensor:
    """``weight`` (out, in), in ``nn.Linear``'s layout, reordered for oneDNN (in its own dtype)."""
    return torch.ops.mkldnn._reorder_linear_weight(weight.detach())


def padded_rows(n: int) -> int:
    """``n`` rounded up to one of 8 steps per power of two (exact up to 16, at most 1/8 more)."""
    if n <= 16:
        return n
    step = 1 << (n.bit_length() - 4)
    return -(-n // step) * step


def _pad(x: torch.Tensor) -> torch.Tensor:
    rows = padded_rows(x.shape[0])
    return x if rows == x.shape[0] else torch.cat([x, x.new_zeros(rows - x.shape[0], *x.shape[1:])])


def linear(x: torch.Tensor, packed: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ W^T + bias`` for 2-d ``x`` (a new tensor; rows padded to a bucket and cut back)."""
    return torch.ops.mkldnn._linear_pointwise(_pad(x), packed, bias, "none", [], "")[: x.shape[0]]


def linear_add(x: torch.Tensor, other: torch.Tensor, packed: torch.Tensor) -> torch.Tensor:
    """``other + x @ W^T`` in one fused call (a new tensor); ``x`` and ``other`` have the same rows."""
    if padded_rows(x.shape[0]) != x.shape[0]:
        return torch.ops.mkldnn._linear_pointwise.binary(_pad(x), _pad(other), packed, None, "add")[: x.shape[0]]
    return torch.ops.mkldnn._linear_pointwise.binary(x, other, packed, None, "add")


class ConvertedWeights:
    """Converted copies of modules' weights (packed for oneDNN, or cast to a lower precision), made
    once per version of the weights and kept per (module, kind)."""

    def __init__(self) -> None:
        self._map: "weakref.WeakKeyDictionary[torch.nn.Module, dict[object, tuple]]" = weakref.WeakKeyDictionary()

    def get(self, owner: torch.nn.Module, kind: object, weights: Sequence[torch.Tensor],
            convert: Callable[[Sequence[torch.Tensor]], tuple]) -> tuple:
        """``convert(weights)``, made once per version of ``weights`` and kept for ``owner`` and ``kind``.

        The key holds each weight's storage, version counter and device, so an in-place update (an
        optimiser step) or a move makes a new conversion; the old one is freed first.
        """
        key = tuple((w.data_ptr(), w._version, w.device) for w in weights)
        kinds = self._map.setdefault(owner, {})
        cached = kinds.get(kind)
        if cached is None or cached[0] != key:
            kinds.pop(kind, None)
            with torch.no_grad():
                cached = (key, convert(weights))
            kinds[kind] = cached
        return cached[1]

    def kinds(self) -> list[object]:
        """Every kind of conversion held, once per module (what the engine's products ran on)."""
        return [kind for kinds in self._map.values() for kind in kinds]

    def clear(self) -> None:
        self._map = weakref.WeakKeyDictionary()
