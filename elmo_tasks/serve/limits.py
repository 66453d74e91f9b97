"""The server's bounds, and a request body read within them.

Every bound is checked before any work: a body over ``max_request_bytes`` is refused from its
``Content-Length`` (or, streamed without one, as soon as it passes the bound), before JSON
parsing; a request over ``max_request_tokens`` is refused after tokenising, before it is queued.
The memory a server can hold is so bounded by about ``max_concurrent_requests`` times (the body
bound plus a request's vectors: ``max_request_tokens`` x 3 x 2P float32).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

from elmo_tasks.errors import UserError
from elmo_tasks.serve.errors import ApiError

# Measured on a 2-core Intel Xeon (avx512_bf16) with the default model (benchmarks/serve_load.py prints the
# sweep of embed_batch on unsorted glosses; two runs, they vary): 512 tokens 5-7k tokens/s, 1,024
# 6.5-10k, 2,048 8-13k (0.16-0.26 s a batch), 4,096 14-15k (0.27-0.28 s). 2,048 keeps one batch
# near a quarter of a second, so a short request waits little behind a full one; 64 clients of one
# sentence each fill ~550 tokens, so this bound does not limit them.
DEFAULT_MAX_BATCH_TOKENS = 2048


@dataclass(frozen=True)
class Limits:
    """What the server accepts and how it batches (the ``serve`` command's options, same names)."""

    max_batch_tokens: int = DEFAULT_MAX_BATCH_TOKENS  # tokens per model batch (a longer sentence runs alone)
    max_wait_ms: float = 5.0  # how long the first request of a batch waits for others
    max_batch_requests: int = 256  # requests per batch; 1 turns batching off
    max_concurrent_requests: int = 128  # requests admitted at once (queued or running); more get 429
    max_request_tokens: int = 1024  # tokens per request (a sentence counts at least 1); more get 413
    max_request_bytes: int = 1 << 20  # request body; more get 413 before it is read
    timeout_s: float = 30.0  # from admission to answer; later gets 503

    def __post_init__(self) -> None:
        for name in ("max_batch_tokens", "max_batch_requests", "max_concurrent_requests", "max_request_tokens",
                     "max_request_bytes"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got {getattr(self, name)}")
        if self.max_wait_ms < 0:
            raise UserError(f"--max-wait-ms must be 0 or more, got {self.max_wait_ms}")
        if self.timeout_s <= 0:
            raise UserError(f"--timeout must be more than 0 seconds, got {self.timeout_s}")


async def read_body(headers: dict[str, str], chunks: AsyncIterator[bytes], limit: int) -> bytes:
    """The whole body, refused (413) from its declared length or as soon as it grows past ``limit``."""
    declared = headers.get("content-length")
    if declared is not None:
        if not declared.strip().isdigit():
            raise ApiError(400, f"Content-Length {declared[:40]!r} is not a number", field="Content-Length")
        if int(declared) > limit:
            raise ApiError(413, f"the request body has {int(declared):,} bytes, over the limit of {limit:,} "
                           "(--max-request-bytes): split it into smaller requests", field="body")
    body = bytearray()
    async for chunk in chunks:
        body += chunk
        if len(body) > limit:
            raise ApiError(413, f"the request body is over the limit of {limit:,} bytes (--max-request-bytes): "
                           "split it into smaller requests", field="body")
    return bytes(body)


def check_tokens(count: int, limits: Limits, field: str) -> None:
    """413 when a request holds more tokens than one request may."""
    if count > limits.max_request_tokens:
        raise ApiError(413, f"{field}: {count:,} tokens, over the limit of {limits.max_request_tokens:,} per request "
                       "(--max-request-tokens; a sentence counts at least 1): split it into smaller requests",
                       field=field)
