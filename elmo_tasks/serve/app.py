"""The routes, authentication and JSON errors of the server (``create_app``).

Handlers only read, check and answer: the models run in the model process (``worker.py``) and large
answers are encoded in a thread pool, so ``/health`` and ``/metrics`` answer while a batch runs.
"""

from __future__ import annotations

import asyncio
import hmac
import time
from dataclasses import dataclass, field
from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from elmo_tasks.errors import UserError
from elmo_tasks.serve.batcher import Batcher
from elmo_tasks.serve.errors import ApiError
from elmo_tasks.serve.limits import Limits, check_tokens, read_body
from elmo_tasks.serve.metrics import Metrics
from elmo_tasks.serve.models import EMBED, Models
from elmo_tasks.serve.payloads import (
    EmbedRequest,
    PredictRequest,
    embed_work,
    encode_embeddings,
    encode_json,
    parse_json,
    validate,
)

PUBLIC = {"/health"}  # routes open without the API key (the page's files hold no data; its calls need the key)
# answers up to this many numbers are encoded on the event loop (about 1 ms with orjson), larger ones in a
# thread: the hop to a thread costs more than a small answer's encoding
INLINE_ENCODE_FLOATS = 1 << 15
PAGE = {"/": ("index.html", "text/html; charset=utf-8"), "/demo.js": ("demo.js", "text/javascript; charset=utf-8")}


@dataclass
class ServerState:
    """What the routes share: the models once loaded, the batcher, and whether the server is draining."""

    limits: Limits
    metrics: Metrics = field(default_factory=Metrics)
    models: Models | None = None
    batcher: Batcher | None = None
    draining: bool = False

    @property
    def ready(self) -> bool:
        return self.models is not None and self.batcher is not None and not self.draining


def _route_label(path: str) -> str:
    if path.startswith("/v1/models/") and path.endswith(":predict"):
        return "/v1/models/{name}:predict"
    return path if path in {"/v1/embed", "/v1/models", "/health", "/metrics", "/", "/demo.js", "/docs",
                            "/openapi.json"} else "other"


def _error(exc: ApiError) -> JSONResponse:
    return JSONResponse(exc.body(), status_code=exc.status, headers=exc.headers)


def _body_schema(model) -> dict:
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": model.model_json_schema()}}}}


class AuthAndCount:
    """Plain ASGI middleware (lighter than ``BaseHTTPMiddleware``, whose task per request cost a third of the
    event loop's time under load): the API key, then requests counted by route and status, and timed."""

    def __init__(self, app, api_key: str | None, metrics: Metrics) -> None:
        self.app = app
        self.expected = f"Bearer {api_key}".encode() if api_key else None
        self.metrics = metrics

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        path = scope["path"]
        label = _route_label(path)
        if self.expected is not None and path not in PUBLIC and path not in PAGE:
            given = next((value for name, value in scope["headers"] if name == b"authorization"), b"")
            if not hmac.compare_digest(given, self.expected):
                await _error(ApiError(401, "missing or wrong API key: send 'Authorization: Bearer KEY'",
                                      field="Authorization", headers={"WWW-Authenticate": "Bearer"}))(scope, receive, send)
                self.metrics.requests.labels(label, "401").inc()
                return
        status = 0

        async def send_counted(message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_counted)
        except Exception as exc:  # noqa: BLE001  a bug of ours is a JSON 500, never a dropped connection
            if status:
                raise  # the answer has begun: nothing more can be sent
            status = 500
            await _error(ApiError(500, f"internal error: {type(exc).__name__}"))(scope, receive, send)
        self.metrics.requests.labels(label, str(status)).inc()
        self.metrics.latency.labels(label).observe(time.perf_counter() - start)


def create_app(state: ServerState, api_key: str | None = None) -> FastAPI:
    """The FastAPI app over ``state`` (models may arrive later: until then the model routes answer 503)."""
    app = FastAPI(title="elmo-tasks", summary="ELMo embeddings and trained task models over HTTP",
                  description="Every answer equals what Embedder / TaskModel gives for that input alone.")
    limits, metrics = state.limits, state.metrics

    app.add_middleware(AuthAndCount, api_key=api_key, metrics=metrics)

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> JSONResponse:
        return _error(exc)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        message = {404: f"no route {request.url.path} (see /docs)",
                   405: f"{request.method} is not allowed on {request.url.path}"}.get(exc.status_code, str(exc.detail))
        return _error(ApiError(exc.status_code, message, field="path"))

    async def run(request: Request, kind: str, items: list[Any], costs: list[int]) -> list[Any]:
        """The worker's results; if the client leaves first, its remaining items never run."""
        if not state.ready:
            raise ApiError(503, "draining: the server is shutting down" if state.draining else
                           "loading: the models are not ready yet, retry shortly", headers={"Retry-After": "1"})
        metrics.queue_depth.inc()
        job = asyncio.ensure_future(state.batcher.submit(kind, items, costs))
        gone = asyncio.ensure_future(_disconnected(request))
        try:
            await asyncio.wait({job, gone}, return_when=asyncio.FIRST_COMPLETED)
            if not job.done():
                job.cancel()
                raise ApiError(499, "the client closed the connection")
            return job.result()
        finally:
            gone.cancel()
            metrics.queue_depth.dec()

    async def body_json(request: Request) -> Any:
        return parse_json(await read_body(request.headers, request.stream(), limits.max_request_bytes))

    @app.post("/v1/embed", openapi_extra=_body_schema(EmbedRequest), summary="ELMo vectors of sentences")
    async def embed(request: Request) -> Response:
        work = embed_work(await body_json(request), limits)
        results = await run(request, EMBED, work.items, work.costs)
        if sum(a.size for a in results) <= INLINE_ENCODE_FLOATS:
            content = encode_embeddings(work.items, results, work.encoding)
        else:
            content = await run_in_threadpool(encode_embeddings, work.items, results, work.encoding)
        return Response(content, media_type="application/json")

    @app.post("/v1/models/{name}:predict", openapi_extra=_body_schema(PredictRequest),
              summary="predictions of a trained task model")
    async def predict(name: str, request: Request) -> Response:
        models = state.models
        if models is not None and name not in models.tasks:
            loaded = ", ".join(models.tasks) or "none (start the server with --task NAME=RUN)"
            raise ApiError(404, f"no task model {name!r}; loaded: {loaded}", field="name")
        request_ = validate(PredictRequest, await body_json(request))
        if not request_.instances:
            raise ApiError(422, "instances: empty: give at least one instance", field="instances")
        check_tokens(len(request_.instances), limits, "instances")
        if models is None:
            raise ApiError(503, "loading: the models are not ready yet, retry shortly", headers={"Retry-After": "1"})
        try:
            examples = models.tasks[name].examples(request_.instances)
        except UserError as exc:
            raise ApiError(422, f"instances: {exc}", field="instances") from None
        costs = [max(1, len(e.tokens)) for e in examples]
        check_tokens(sum(costs), limits, "instances")
        results = await run(request, f"predict:{name}", examples, costs)
        return Response(await run_in_threadpool(encode_json, {"predictions": results}), media_type="application/json")

    @app.get("/v1/models", summary="the loaded biLM and task models")
    async def list_models() -> JSONResponse:
        if state.models is None:
            raise ApiError(503, "loading: the models are not ready yet, retry shortly", headers={"Retry-After": "1"})
        return JSONResponse(state.models.info())

    @app.get("/health", summary="200 when ready, 503 while loading or draining")
    async def health() -> JSONResponse:
        status = "ready" if state.ready else ("draining" if state.draining else "loading")
        return JSONResponse({"status": status}, status_code=200 if state.ready else 503)

    @app.get("/metrics", summary="Prometheus metrics")
    async def prometheus() -> Response:
        return Response(metrics.render(), media_type="text/plain; version=0.0.4; charset=utf-8")

    for path, (name, media) in PAGE.items():
        app.add_api_route(path, _static(name, media), methods=["GET"], include_in_schema=False)
    return app


def _static(name: str, media: str):
    content = files("elmo_tasks.serve").joinpath("static", name).read_bytes()

    async def page() -> Response:
        return Response(content, media_type=media)
    return page


async def _disconnected(request: Request) -> None:
    """Returns when the client closes the connection (the body is already read)."""
    while True:
        message = await request.receive()
        if message["type"] == "http.disconnect":
            return
