"""Where training runs: the device, whether it has fast bfloat16, malloc settings, and random streams kept aside."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
from contextlib import contextmanager
from pathlib import Path

import torch

from elmo_tasks.errors import UserError


def resolve_device(name: str, what: str = "--device") -> torch.device:
    """``auto`` (the GPU when there is one), ``cpu``, ``cuda`` or ``cuda:N``, checked to exist here;
    anything else, or a GPU that is not there, is a one-line UserError naming ``what``."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name == "cpu":
        return torch.device("cpu")
    if name == "cuda" or (name.startswith("cuda:") and name[5:].isdigit()):
        if not torch.cuda.is_available():
            raise UserError(f"{what} {name}: no CUDA device is available here (use {what} cpu)")
        index = int(name[5:]) if ":" in name else None
        if index is not None and index >= torch.cuda.device_count():
            raise UserError(f"{what} {name}: only {torch.cuda.device_count()} CUDA device(s) here")
        return torch.device("cuda", index) if index is not None else torch.device("cuda")
    raise UserError(f"{what} must be auto, cpu, cuda or cuda:N, got {name!r}")


# oneDNN instruction sets below AVX512_CORE_BF16: an ONEDNN_MAX_CPU_ISA cap at one of them leaves
# oneDNN without bfloat16 kernels (measured here: a bfloat16 product then takes ~150x the float32 one)
_ONEDNN_ISAS_WITHOUT_BF16 = {"SSE41", "AVX", "AVX2", "AVX2_VNNI", "AVX2_VNNI_2", "AVX512_CORE", "AVX512_CORE_VNNI"}


def _cpu_flags() -> set[str]:
    try:
        return set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return set()


def cpu_kind() -> str:
    """The CPU as figures should name it: model, torch's vector capability, bfloat16 units or not."""
    name = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    units = "with bfloat16 units" if bf16_support(torch.device("cpu"))[0] else "without bfloat16 units"
    return f"{name} ({torch.backends.cpu.get_cpu_capability()}, {units})"


def bf16_support(device: torch.device) -> tuple[bool, str]:
    """(whether bfloat16 autocast speeds the matrix products up on ``device``, why not when it does not).

    A CUDA GPU: when torch says it has bfloat16. A CPU: when it has bfloat16 units (AVX512-BF16 or
    AMX in /proc/cpuinfo) and oneDNN may use them (its bfloat16 support, and no ONEDNN_MAX_CPU_ISA cap
    below AVX512_CORE_BF16). Without them autocast is slower, not faster: 2x on AVX-512 alone, and far
    more where oneDNN falls back to reference kernels (docs/benchmarks.md, "bfloat16 without bfloat16 units")."""
    if device.type == "cuda":
        if torch.cuda.is_bf16_supported():
            return True, ""
        return False, "this GPU has no bfloat16 support"
    if device.type != "cpu":
        return False, f"bfloat16 autocast is not used on {device.type}"
    capability = torch.backends.cpu.get_cpu_capability()
    try:
        onednn = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        onednn = False
    flags = _cpu_flags()
    units = "avx512_bf16" in flags or "amx_bf16" in flags
    cap = (os.environ.get("ONEDNN_MAX_CPU_ISA") or os.environ.get("DNNL_MAX_CPU_ISA") or "").strip().upper()
    if units and onednn and cap not in _ONEDNN_ISAS_WITHOUT_BF16:
        return True, ""
    why = [f"torch reports {capability}", f"oneDNN bfloat16 {'supported' if onednn else 'unsupported'}"]
    if not units:
        why.append("no avx512_bf16 or amx_bf16 in /proc/cpuinfo")
    if cap in _ONEDNN_ISAS_WITHOUT_BF16:
        why.append(f"ONEDNN_MAX_CPU_ISA={cap}")
    return False, "this CPU has no bfloat16 units oneDNN can use (" + "; ".join(why) + ")"


def bf16_supported(device: torch.device) -> bool:
    """Whether bfloat16 products are fast here (see :func:`bf16_support`)."""
    return bf16_support(device)[0]


def amp_fallback_message(key: str, device: torch.device) -> str | None:
    """The one line a trainer prints when ``key`` (``trainer.amp``, ``training.amp``) asks for bfloat16
    autocast where it would not help; None where it does."""
    ok, why = bf16_support(device)
    if ok:
        return None
    return f"{key}: training in float32, since bfloat16 autocast would slow it down here: {why}"


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
