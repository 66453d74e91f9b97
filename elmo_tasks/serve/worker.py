"""The model process: the one child process (``spawn``) that loads and runs the models for the batcher.

Why a process and not a thread: the biLM's inference loop makes many small torch calls, each of which
releases and retakes the GIL, so any Python work in another thread of the same process (parsing
requests, encoding answers) stalls it for whole switch intervals. Measured on a 2-core Intel Xeon
CPU (``benchmarks/gil_contention.py``): a batch of 32 sentences took 59 ms alone and 9.4 s beside one
thread encoding JSON. In its own process the model runs at full speed while the server's event loop
and encoders work in parallel (``benchmarks/serve_load.py``: 972 -> ~6,000 tokens/s at 64 clients).

The parent sends ``(kind, items)`` over a pipe and receives ``("ok", results)`` or ``("error", message)``;
if the child dies, that batch fails (500) and the next batch starts a new child.
"""

from __future__ import annotations

import multiprocessing
import signal
import threading
from collections.abc import Callable
from typing import Any

from elmo_tasks.errors import UserError
from elmo_tasks.task_model.inputs import InputReader

STOP_WITHIN_S = 30  # a child that does not end after the stop message is killed


class ModelsView:
    """What the server's routes need from the models, in the parent: their info and each task's input reader."""

    def __init__(self, info: dict[str, Any], readers: dict[str, InputReader]) -> None:
        self._info = info
        self.tasks = readers

    def info(self) -> dict[str, Any]:
        return self._info


def child_main(connection, load: Callable[[], Any]) -> None:
    """The child: load the models, say what they are, then run batches until told to stop or the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent drains on SIGINT/SIGTERM, then stops this process
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    try:
        models = load()
    except UserError as exc:
        connection.send(("failed", str(exc)))
        return
    except Exception as exc:  # noqa: BLE001  reported to the parent as one line
        connection.send(("failed", f"loading the models failed: {type(exc).__name__}: {exc}"))
        return
    connection.send(("ready", models.info(), {name: model.input_reader() for name, model in models.tasks.items()}))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):  # the parent is gone
            return
        if message is None:
            return
        kind, items = message
        try:
            reply = ("ok", models.run(kind, items))
        except Exception as exc:  # noqa: BLE001  one batch's failure answers its requests, the process goes on
            reply = ("error", f"{type(exc).__name__}: {str(exc)[:200]}")
        connection.send(reply)


class ModelProcess:
    """Starts the child, runs batches in it (``run`` is the batcher's runner) and restarts it if it dies."""

    def __init__(self, load: Callable[[], Any]) -> None:
        self.load = load  # picklable: a module-level function or a functools.partial of one
        self._context = multiprocessing.get_context("spawn")  # never fork a process that has threads
        self._process = None
        self._connection = None
        self._lock = threading.Lock()

    @property
    def pid(self) -> int | None:
        return self._process.pid if self._process is not None else None

    def start(self) -> ModelsView:
        """Start the child and wait until its models are loaded; a failure to load is a UserError."""
        parent, child = self._context.Pipe()
        self._process = self._context.Process(target=child_main, args=(child, self.load), name="elmo-tasks-models",
                                              daemon=True)
        self._process.start()
        child.close()
        self._connection = parent
        try:
            message = parent.recv()
        except EOFError:
            self._process.join(5)
            raise UserError(f"the model process exited (code {self._process.exitcode}) while loading") from None
        if message[0] == "failed":
            self._process.join(5)
            raise UserError(message[1])
        return ModelsView(message[1], message[2])

    def run(self, kind: str, items: list[Any]) -> list[Any]:
        """One batch in the child: its results, or RuntimeError (the batch failed, or the child died)."""
        with self._lock:
            if self._process is None or not self._process.is_alive():
                self.start()  # it died running an earlier batch: a new one for this batch
            try:
                self._connection.send((kind, items))
                status, payload = self._connection.recv()
            except (EOFError, OSError):
                self._process.join(5)
                code = self._process.exitcode
                self._process = None
                raise RuntimeError(f"the model process died (exit code {code}) running this batch") from None
        if status != "ok":
            raise RuntimeError(payload)
        return payload

    def stop(self) -> None:
        """Ask the child to end, and kill it if it does not within ``STOP_WITHIN_S``."""
        if self._process is None:
            return
        try:
            self._connection.send(None)
        except OSError:
            pass
        self._process.join(STOP_WITHIN_S)
        if self._process.is_alive():
            self._process.kill()
            self._process.join(5)
        self._connection.close()
