"""Two worker threads for the inference engine, instead of one OpenMP team for every operation.

The biLM's two directions are independent from the first layer to the last, and the character CNN
works on independent groups of tokens, so the inference path splits its work into two jobs and
runs them at once: one on the calling thread, one on a persistent helper thread, each with half of
torch's intra-op threads (one each on a 2-core machine). Compared with running every operation on
all threads, this synchronises threads twice per batch instead of at every elementwise operation
and matrix product, which matters most on a busy machine, where a thread that waits for a
descheduled partner at each of thousands of operations loses most of its time.

With one intra-op thread, or on a GPU, the two jobs simply run one after the other. Torch's
thread count is process-wide, so an engine must not run from several threads at once (its token
cache is not thread-safe either): use one engine per process, as ``embed-file`` under
``torchrun`` does.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

_lock = threading.Lock()
_executor: ThreadPoolExecutor | None = None
_total_threads: int | None = None  # torch's thread count outside ``split_threads``, while inside it


def _helper() -> ThreadPoolExecutor:
    global _executor
    with _lock:
        if _executor is None:
            _executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="elmo-tasks-worker")
        return _executor


@contextmanager
def split_threads() -> Iterator[None]:
    """Within: torch uses half its intra-op threads (at least one), leaving the other half to the
    helper thread of ``run_pair``. Nested uses are no-ops; the count is restored on exit."""
    global _total_threads
    total = torch.get_num_threads()
    if _total_threads is not None or total < 2:
        yield
        return
    _total_threads = total
    torch.set_num_threads(total // 2)
    try:
        yield
    finally:
        torch.set_num_threads(total)
        _total_threads = None


def run_pair(job: Callable[[int], None], parallel: bool = True) -> None:
    """``job(0)`` on this thread and ``job(1)`` on the helper thread, at once (when torch has at least
    two threads and ``parallel``); otherwise one after the other. Exceptions propagate."""
    total = _total_threads or torch.get_num_threads()
    if not parallel or total < 2:
        job(0)
        job(1)
        return
    inference, grad = torch.is_inference_mode_enabled(), torch.is_grad_enabled()
    per_worker = total // 2

    def helper_job() -> None:
        torch.set_num_threads(per_worker)  # MKL keeps its thread count per calling thread
        with torch.inference_mode(inference), torch.set_grad_enabled(grad):
            job(1)

    with split_threads():
        future = _helper().submit(helper_job)
        try:
            job(0)
        finally:
            future.result()
