"""The queue and the one worker thread that owns the models and runs their batches.

The event loop only admits requests (``submit``) and awaits their futures; the worker thread takes
queued items, packs them into batches of one kind (the biLM, or one task model) up to
``max_batch_tokens`` and ``max_batch_requests``, waiting at most ``max_wait_ms`` for company, runs
them and hands each request its results when its last item is done. A long request's items are
spread over several batches. An exception in a batch fails only the requests in that batch (500);
a request whose client left or timed out is dropped before its items run.
"""

from __future__ import annotations

import asyncio
import collections
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from elmo_tasks.serve.errors import ApiError
from elmo_tasks.serve.limits import Limits

# kind -> runs one batch of that kind's items, results in the same order
Runner = Callable[[str, list[Any]], list[Any]]


@dataclass
class Pending:
    """One admitted request: its items, their results so far, and the future its handler awaits."""

    kind: str
    items: list[Any]
    costs: list[int]
    future: asyncio.Future
    loop: asyncio.AbstractEventLoop
    results: list[Any] = field(default_factory=list)
    next_item: int = 0  # the first item not yet taken into a batch
    done_items: int = 0
    cancelled: bool = False

    def __post_init__(self) -> None:
        self.results = [None] * len(self.items)

    def finish(self, error: BaseException | None = None) -> None:
        def deliver() -> None:
            if self.future.done():
                return
            if error is None:
                self.future.set_result(self.results)
            else:
                self.future.set_exception(error)
        self.loop.call_soon_threadsafe(deliver)


class Batcher:
    """Admits requests up to ``max_concurrent_requests`` (429 beyond) and runs them in one worker thread."""

    def __init__(self, runner: Runner, limits: Limits, on_batch: Callable[[str, int, int], None] | None = None) -> None:
        self.runner = runner
        self.limits = limits
        self.on_batch = on_batch  # (kind, requests, tokens) after each batch: the metrics
        self._queue: collections.deque[Pending] = collections.deque()
        self._cond = threading.Condition()
        self._admitted = 0
        self._stopping = False
        self._prepare: Callable[[], None] | None = None
        self._thread = threading.Thread(target=self._work, name="elmo-tasks-batcher", daemon=True)

    def start(self, prepare: Callable[[], None] | None = None) -> None:
        """Start the worker; it first runs ``prepare`` (loading the models, so that the thread that loads
        them is the one that runs them); if that raises, the worker ends."""
        self._prepare = prepare
        self._thread.start()

    def stop(self) -> None:
        """Let the worker finish what is queued, then end it."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
        self._thread.join(timeout=60)

    @property
    def depth(self) -> int:
        """Requests admitted and not yet answered."""
        return self._admitted

    async def submit(self, kind: str, items: list[Any], costs: list[int]) -> list[Any]:
        """The results of ``items`` (run in the worker), or an ApiError: 429 queue full, 503 timed out."""
        loop = asyncio.get_running_loop()
        pending = Pending(kind, items, costs, loop.create_future(), loop)
        with self._cond:
            if self._admitted >= self.limits.max_concurrent_requests:
                raise ApiError(429, f"the server already holds {self._admitted} requests (--max-concurrent-requests "
                               f"{self.limits.max_concurrent_requests}): retry later", headers={"Retry-After": "1"})
            self._admitted += 1
            self._queue.append(pending)
            self._cond.notify()
        try:
            return await asyncio.wait_for(asyncio.shield(pending.future), self.limits.timeout_s)
        except asyncio.TimeoutError:
            raise ApiError(503, f"no answer within {self.limits.timeout_s:g} s (--timeout): the server is busy, "
                           "retry later or send fewer tokens", error_type="timeout") from None
        finally:
            pending.cancelled = True  # answered, timed out or the client left: nothing more runs for it
            with self._cond:
                self._admitted -= 1

    # -- the worker thread ---------------------------------------------------------------------------

    def _work(self) -> None:
        if self._prepare is not None:
            try:
                self._prepare()
            except Exception:  # noqa: BLE001  the caller recorded it; the server stops
                return
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            kind, taken = batch
            items = [p.items[i] for p, i in taken]
            owners = {id(p): p for p, _ in taken}
            try:
                results = self.runner(kind, items)
            except Exception as exc:  # noqa: BLE001  one batch's failure answers its requests, the server goes on
                error = ApiError(500, f"the batch failed: {type(exc).__name__}: {str(exc)[:200]}")
                for p in owners.values():
                    p.cancelled = True
                    p.finish(error)
                continue
            for (p, i), result in zip(taken, results):
                p.results[i] = result
                p.done_items += 1
                if p.done_items == len(p.items) and not p.cancelled:
                    p.finish()
            if self.on_batch is not None:
                self.on_batch(kind, len(owners), sum(p.costs[i] for p, i in taken))

    def _next_batch(self) -> tuple[str, list[tuple[Pending, int]]] | None:
        """Items of one kind, the oldest request first, within the batch bounds; None when stopping and empty."""
        limits = self.limits
        with self._cond:
            while True:
                while self._queue and self._queue[0].cancelled:
                    self._queue.popleft()  # its client left or timed out
                if self._queue:
                    break
                if self._stopping:
                    return None
                self._cond.wait()
            first = self._queue[0]
            deadline = time.monotonic() + limits.max_wait_ms / 1000
            # wait briefly for company while the queue holds fewer tokens than a batch
            while limits.max_batch_requests > 1 and time.monotonic() < deadline \
                    and self._queued_tokens(first.kind) < limits.max_batch_tokens and not self._stopping:
                self._cond.wait(max(0.0, deadline - time.monotonic()))
            taken: list[tuple[Pending, int]] = []
            tokens, requests = 0, 0
            for p in list(self._queue):
                if p.kind != first.kind or p.cancelled:
                    continue
                if requests >= limits.max_batch_requests:
                    break
                requests += 1
                while p.next_item < len(p.items):
                    cost = p.costs[p.next_item]
                    if taken and tokens + cost > limits.max_batch_tokens:
                        break
                    taken.append((p, p.next_item))
                    tokens += cost
                    p.next_item += 1
                if p.next_item == len(p.items):
                    self._queue.remove(p)
                if tokens >= limits.max_batch_tokens:
                    break
            return first.kind, taken

    def _queued_tokens(self, kind: str) -> int:
        return sum(sum(p.costs[p.next_item:]) for p in self._queue if p.kind == kind and not p.cancelled)
