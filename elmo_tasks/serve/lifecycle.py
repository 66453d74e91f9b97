"""uvicorn around the app: load the models in the model process while ``/health`` says 503, drain on SIGTERM."""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from typing import Any

import uvicorn

from elmo_tasks.errors import UserError
from elmo_tasks.serve.app import ServerState, create_app
from elmo_tasks.serve.batcher import Batcher
from elmo_tasks.serve.limits import Limits
from elmo_tasks.serve.worker import ModelProcess


class DrainingServer(uvicorn.Server):
    """SIGTERM/SIGINT: stop accepting, mark the server draining, let in-flight requests finish, exit 0."""

    def __init__(self, config: uvicorn.Config, state: ServerState) -> None:
        super().__init__(config)
        self.state = state

    def handle_exit(self, sig: int, frame) -> None:
        self.state.draining = True
        super().handle_exit(sig, frame)
        if sig == signal.SIGTERM:  # handled here: uvicorn must not re-raise it after the drain (exit 0, not 143)
            self._captured_signals = [s for s in self._captured_signals if s != signal.SIGTERM]


def run_server(load: Callable[[], Any], limits: Limits, host: str = "127.0.0.1", port: int = 8000,
               api_key: str | None = None) -> int:
    """Serve until SIGTERM; the models load in their own process (health 503 until then). 0 on a clean drain.

    ``load`` returns the ``Models`` and must be picklable (a module-level function or a partial of one): it
    runs in the model process (``worker.py``)."""
    state = ServerState(limits)
    app = create_app(state, api_key)
    config = uvicorn.Config(app, host=host, port=port, log_level="warning", access_log=False, lifespan="off",
                            timeout_graceful_shutdown=int(limits.timeout_s) + 5, timeout_keep_alive=5)
    server = DrainingServer(config, state)
    failure: list[str] = []
    models = ModelProcess(load)
    batcher = Batcher(models.run, limits, on_batch=state.metrics.on_batch)

    def prepare() -> None:  # in the batcher's thread, while uvicorn already answers /health with 503
        try:
            state.models = models.start()
        except Exception as exc:
            failure.append(str(exc) if isinstance(exc, UserError) else f"loading the models failed: {type(exc).__name__}: {exc}")
            server.should_exit = True
            raise
        state.batcher = batcher
        print(f"elmo-tasks serve: ready on http://{host}:{port} (docs: /docs)", file=sys.stderr, flush=True)

    batcher.start(prepare)
    print(f"elmo-tasks serve: loading models; listening on http://{host}:{port}", file=sys.stderr, flush=True)
    try:
        server.run()
    finally:
        state.draining = True
        batcher.stop()
        models.stop()
    if failure:
        raise UserError(failure[0])
    if not server.started:
        raise UserError(f"could not listen on {host}:{port} (is the port in use? give --port)")
    return 0
