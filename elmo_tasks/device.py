"""Where training runs: the device, whether it has fast bfloat16, malloc settings, and random streams kept aside."""

from __future__ import annotations

import ctypes
import ctypes.util
from contextlib import contextmanager
from pathlib import Path

import torch

from elmo_tasks.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` (the GPU when there is one), ``cpu`` or ``cuda``; ``cuda`` without a GPU is a UserError."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA device is available here (use --device cpu)")
    return torch.device(name)


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 products are fast here: a CUDA GPU that has them, or a CPU with AVX512-BF16 or AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


_M_TRIM_THRESHOLD, _M_MMAP_THRESHOLD = -1, -3  # glibc's mallopt parameters (malloc.h)


def keep_freed_memory() -> bool:
    """Ask glibc's malloc to reuse freed blocks of up to 32 MiB instead of returning them to the system.

    A training step allocates and frees tens of buffers of ~20 MiB (gates, softmax logits); by default
    each comes back from the kernel as fresh pages, and faulting them in cost ~10% of a CPU step. The
    process keeps its peak memory instead. Returns whether the setting took (False off glibc)."""
    name = ctypes.util.find_library("c")
    if name is None:
        return False
    try:
        libc = ctypes.CDLL(name)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_THRESHOLD, 32 << 20)) and bool(mallopt(_M_TRIM_THRESHOLD, 1 << 30))


@contextmanager
def preserved_rng(device: torch.device, *generators: torch.Generator):
    """Run a block (an evaluation) without moving any random stream that training reads."""
    cpu = torch.get_rng_state()
    cuda = torch.cuda.get_rng_state_all() if device.type == "cuda" else None
    saved = [g.get_state() for g in generators]
    try:
        yield
    finally:
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        for g, state in zip(generators, saved):
            g.set_state(state)
