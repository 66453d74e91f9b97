"""``elmo-tasks serve``: the biLM (``POST /v1/embed``) and trained task models (``POST /v1/models/NAME:predict``)
over HTTP, with dynamic batching, bounds, metrics and a demo page (the ``serve`` extra: FastAPI + uvicorn)."""

from __future__ import annotations

import argparse
import functools
import os

from elmo_tasks.commands._model_args import add_model_arguments
from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime
from elmo_tasks.errors import UserError

HELP = "serve ELMo embeddings and trained task models over HTTP (batched, bounded; demo page at /)"
API_KEY_ENV = "ELMO_TASKS_API_KEY"


def _task(text: str) -> tuple[str, str]:
    name, sep, path = text.partition("=")
    if not sep or not name or not path or "/" in name or ":" in name:
        raise argparse.ArgumentTypeError(f"expected NAME=RUN_OR_ARCHIVE (a name without '/' or ':'), got {text!r}")
    return name, path


def configure(parser: argparse.ArgumentParser) -> None:
    from elmo_tasks.serve.limits import Limits  # light: dataclasses only

    d = Limits()
    add_model_arguments(parser)
    parser.add_argument("--task", type=_task, action="append", default=[], metavar="NAME=RUN_OR_ARCHIVE",
                        help="serve a trained task model (run folder or .tar.gz of elmo-tasks package) as NAME "
                        "(repeatable)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=8000, help="port (default 8000)")
    parser.add_argument("--api-key", default=None, help=f"require 'Authorization: Bearer KEY' on every route but "
                        f"/health (default: the {API_KEY_ENV} environment variable; none: open)")
    group = parser.add_argument_group("batching and limits")
    group.add_argument("--max-batch-tokens", type=int, default=d.max_batch_tokens,
                       help=f"tokens per model batch (default {d.max_batch_tokens}, measured for a 2-core CPU)")
    group.add_argument("--max-wait-ms", type=float, default=d.max_wait_ms,
                       help=f"how long a batch waits for more requests (default {d.max_wait_ms:g})")
    group.add_argument("--max-batch-requests", type=int, default=d.max_batch_requests,
                       help=f"requests per batch; 1 turns batching off (default {d.max_batch_requests})")
    group.add_argument("--max-concurrent-requests", type=int, default=d.max_concurrent_requests,
                       help=f"requests held at once; more are answered 429 (default {d.max_concurrent_requests})")
    group.add_argument("--max-request-tokens", type=int, default=d.max_request_tokens,
                       help=f"tokens per request; more are answered 413 (default {d.max_request_tokens})")
    group.add_argument("--max-request-bytes", type=int, default=d.max_request_bytes,
                       help=f"request body bytes; more are answered 413 unread (default {d.max_request_bytes})")
    group.add_argument("--timeout", type=float, default=d.timeout_s,
                       help=f"seconds a request may wait for its answer; later is 503 (default {d.timeout_s:g})")
    add_runtime_arguments(parser, progress=False)


def run(args: argparse.Namespace) -> int:
    try:
        import fastapi  # noqa: F401
        import orjson  # noqa: F401
        import uvicorn  # noqa: F401
    except ImportError:
        raise UserError("serve needs the 'serve' extra: pip install 'elmo-tasks[serve]'") from None
    from elmo_tasks.serve.lifecycle import run_server
    from elmo_tasks.serve.limits import Limits

    if not 0 <= args.port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {args.port}")
    limits = Limits(max_batch_tokens=args.max_batch_tokens, max_wait_ms=args.max_wait_ms,
                    max_batch_requests=args.max_batch_requests, max_concurrent_requests=args.max_concurrent_requests,
                    max_request_tokens=args.max_request_tokens, max_request_bytes=args.max_request_bytes,
                    timeout_s=args.timeout)
    names = [name for name, _ in args.task]
    duplicate = next((n for n in names if names.count(n) > 1), None)
    if duplicate:
        raise UserError(f"--task {duplicate}=...: the name is given twice")
    for name, path in args.task:
        if not os.path.exists(path):
            raise UserError(f"--task {name}={path}: not found (give a run folder or a .tar.gz of elmo-tasks package)")
    runtime = apply_runtime(args)
    api_key = args.api_key or os.environ.get(API_KEY_ENV) or None
    load = functools.partial(_load, args, runtime.device, runtime.threads)
    return run_server(load, limits, args.host, args.port, api_key)


def _load(args: argparse.Namespace, device, threads: int):
    """The models, loaded in the server's model process (its own torch threads)."""
    import torch

    from elmo_tasks.commands._model_args import load_embedder
    from elmo_tasks.model_folder import resolve_model
    from elmo_tasks.serve.models import Models
    from elmo_tasks.task_model import TaskModel

    torch.set_num_threads(threads)
    embedder = load_embedder(args)
    embedder.to(device)
    if getattr(args, "options", None):
        name, digest = str(args.options), None
    else:
        folder = resolve_model(args.model)
        name, digest = str(args.model or "default"), folder.digest()
    tasks = {}
    for task_name, path in args.task:
        try:
            tasks[task_name] = TaskModel.load(path, device=device)
        except UserError as exc:
            raise UserError(f"--task {task_name}={path}: {exc}") from None
    return Models(embedder, name, digest, tasks)
