"""Why the server runs the model in its own process: the biLM beside one busy Python thread.

Times ``Embedder.embed_batch`` on batches of 32 WordNet glosses (default model, warm token cache)
alone, then while another thread of the same process encodes an answer as JSON in a loop (what a
server thread does), then the same with a 0.5 ms GIL switch interval instead of 5 ms.

    python benchmarks/gil_contention.py     # about a minute on 2 cores
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import load_sentences  # noqa: E402

from elmo_tasks.embedder import Embedder  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--batches", type=int, default=10, help="batches of 32 per timing")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sentences, source = load_sentences(None, 32 * args.batches)
    embedder = Embedder.from_dir(None)
    for _ in range(2):
        list(embedder.embed_sentences(sentences))
    answer = embedder.embed_batch(sentences[:1])[0][-1].tolist()

    def timed(label: str) -> None:
        start = time.perf_counter()
        for i in range(0, len(sentences), 32):
            embedder.embed_batch(sentences[i:i + 32])
        print(f"{label:<45} {(time.perf_counter() - start) / args.batches * 1000:9.1f} ms per batch of 32")

    print(f"{source}, default model, {args.threads} torch threads")
    timed("alone")
    stop = threading.Event()

    def encode() -> None:
        while not stop.is_set():
            json.dumps(answer)

    thread = threading.Thread(target=encode, daemon=True)
    thread.start()
    try:
        timed("beside one thread encoding JSON")
        sys.setswitchinterval(0.0005)
        timed("the same, GIL switch interval 0.5 ms")
    finally:
        stop.set()
        thread.join(10)
    return 0


if __name__ == "__main__":
    sys.exit(main())
