"""The ``elmo-tasks`` command line: one module per subcommand under ``elmo_tasks/commands/``.

Each command module defines ``HELP`` (one line), ``configure(parser)`` and ``run(args) -> int``.
Adding a command means adding a module and one line to ``COMMANDS``. A ``UserError`` anywhere
becomes a one-line ``elmo-tasks: error: ...`` message and exit code 2, never a traceback. SIGTERM
unwinds like Ctrl-C, so partial outputs are removed either way (exit 143 and 130).
Command modules import torch and other heavy libraries inside ``run`` so start-up stays fast.
"""

from __future__ import annotations

import _thread
import argparse
import os
import signal
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager

from elmo_tasks.commands import add_subcommands
from elmo_tasks.distributed import current_rank
from elmo_tasks.errors import UserError

# subcommand name -> module under elmo_tasks.commands (imported only when that command runs)
COMMANDS: dict[str, str] = {
    "embed": "embed",
    "embed-file": "embed_file",
    "data": "data",
    "run": "run",
    "cache": "cache",
    "pretrain": "pretrain",
    "perplexity": "perplexity",
    "compare": "compare",
    "bench": "bench",
    "convert": "convert",
    "models": "models",
    "predict": "predict",
    "package": "package",
    "serve": "serve",
}


# commands that split their work across the processes of a ``torchrun`` launch
SHARDED_COMMANDS = {"embed-file", "cache", "pretrain"}


def package_version() -> str:
    """The installed distribution's version (the source tree's pyproject version when run from a checkout)."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("elmo-tasks")
    except PackageNotFoundError:
        return "unknown"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="elmo-tasks", description="Frozen ELMo features for downstream NLP tasks.")
    parser.add_argument("--version", action="version", version=f"elmo-tasks {package_version()}")
    add_subcommands(parser, COMMANDS, dest="command", metavar="COMMAND")
    return parser


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is so that it unwinds as on Ctrl-C (temporaries removed)."""


def _on_sigterm(signum, frame) -> None:
    raise Terminated


def _deliver_sigterm_soon() -> None:
    time.sleep(0.01)  # by then the main thread has left the finalizer (if not, it is swallowed and sent again)
    _thread.interrupt_main(signal.SIGTERM)


@contextmanager
def sigterm_unwinds() -> Iterator[None]:
    """SIGTERM raises ``Terminated`` where the program is. Raised inside a finalizer (``__del__``, a
    weakref or GC callback) Python prints it and goes on, so another thread delivers it again (the
    main thread takes it once out of the finalizer)."""
    previous_handler, previous_hook = signal.signal(signal.SIGTERM, _on_sigterm), sys.unraisablehook

    def redeliver(unraisable) -> None:
        if isinstance(unraisable.exc_value, Terminated):
            _thread.start_new_thread(_deliver_sigterm_soon, ())  # not threading.Thread: its start() waits
        else:
            previous_hook(unraisable)

    sys.unraisablehook = redeliver
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous_handler)
        sys.unraisablehook = previous_hook


def _is_out_of_memory(exc: BaseException) -> bool:
    return type(exc).__name__ == "OutOfMemoryError" or "can't allocate memory" in str(exc) \
        or "out of memory" in str(exc).lower()


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    with sigterm_unwinds():  # `kill` unwinds like Ctrl-C
        return _run(args)


def _run(args: argparse.Namespace) -> int:
    try:
        if args.command not in SHARDED_COMMANDS and current_rank().world > 1:
            raise UserError(f"'{args.command}' does not split its work across processes, so every torchrun rank would "
                            f"repeat it: run it without torchrun (only {', '.join(sorted(SHARDED_COMMANDS))} do)")
        return int(args._run(args) or 0)
    except UserError as exc:
        print(f"elmo-tasks: error: {exc}", file=sys.stderr)
        return 2
    except (MemoryError, RuntimeError) as exc:  # torch reports a failed allocation as a RuntimeError
        if not isinstance(exc, MemoryError) and not _is_out_of_memory(exc):
            raise
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[-1]
        print(f"elmo-tasks: error: out of memory ({reason[-200:]}): a size in the config (head, features, "
              "batch_size) or the model is too large for this machine", file=sys.stderr)
        return 2
    except Terminated:
        print("elmo-tasks: terminated (SIGTERM); run the same command again to resume", file=sys.stderr)
        return 143
    except KeyboardInterrupt:
        print("elmo-tasks: interrupted; run the same command again to resume", file=sys.stderr)
        return 130


def entry() -> None:
    """The console script: ``main``, then exit. A torchrun rank (its process group destroyed by then)
    skips the interpreter's teardown, where gloo's threads can still abort it ("terminate called
    without an active exception", pytorch/pytorch#179291) after its work is written."""
    code = main()
    if current_rank().world > 1:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    sys.exit(code)


if __name__ == "__main__":
    entry()
