"""Run the real ``elmo-tasks`` command line in a child process, under an address-space limit."""

from __future__ import annotations

import importlib.util
import os
import resource
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# pyarrow's jemalloc reserves ~1 GB of address space it never touches: the system allocator keeps
# the limit about memory actually asked for
ENV = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": "1",
       "OPENBLAS_NUM_THREADS": "1", "ARROW_DEFAULT_MEMORY_POOL": "system"}
MEMORY_LIMIT = 2 << 30  # bytes of address space a child may use: a blow-up fails instead of swapping


def _limit() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT, MEMORY_LIMIT))


def run_cli(*args: str, cwd: str | Path | None = None, timeout: float = 300, stdin: str | None = None,
            env: dict | None = None) -> subprocess.CompletedProcess:
    """``elmo-tasks ARGS`` in a child process limited to 2 GB of address space."""
    return subprocess.run([sys.executable, "-m", "elmo_tasks.cli", *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=env or ENV, timeout=timeout, preexec_fn=_limit, input=stdin)


def start_cli(*args: str, cwd: str | Path | None = None) -> subprocess.Popen:
    """``elmo-tasks ARGS`` started in a child process (stdout and stderr piped)."""
    return subprocess.Popen([sys.executable, "-m", "elmo_tasks.cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=cwd, env=ENV, preexec_fn=_limit)


def assert_user_error(result: subprocess.CompletedProcess, *words: str) -> str:
    """Exit code 2, exactly one line on stderr (``elmo-tasks: error: ...``), no traceback, naming ``words``."""
    err = result.stderr
    assert result.returncode == 2, f"exit {result.returncode}: {err[-2000:]}"
    assert "Traceback" not in err and "MemoryError" not in err, err[-2000:]
    assert err.count("\n") == 1 and err.startswith("elmo-tasks: error: "), err
    for word in words:
        assert str(word) in err, f"{word!r} not in {err!r}"
    return err


def load_benchmark(name: str):
    """``benchmarks/NAME.py`` imported as a module (its functions tested directly)."""
    spec = importlib.util.spec_from_file_location(name, Path(__file__).resolve().parents[1] / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
