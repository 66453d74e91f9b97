"""The LSTM's matrix products alone: ``torch.mm`` vs oneDNN on prepacked weights, per shape.

For each released shape (and the default model) and a few row counts, times the three products of
one LSTM cell as the inference path runs them (input gates over many positions, the recurrent
product over the batch's active rows, the projection) and prints GFLOP/s for both methods. This
is the measurement behind ``elmo_tasks.bilm.fast_lstm.Products`` using packed weights on the CPU
(``InferenceSettings.packed_products``).

    python benchmarks/lstm_products.py [--threads 1] [--seconds 0.5]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import machine_description  # noqa: E402

from elmo_tasks.bilm import packed  # noqa: E402
from elmo_tasks.errors import run_script  # noqa: E402

# (cells, projection) of each model
SHAPES = {"small": (1024, 128), "original": (4096, 512), "default": (512, 128)}


def rate(product, flops: float, seconds: float) -> float:
    product()
    runs, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds or runs < 3:
        product()
        runs += 1
    return flops * runs / (time.perf_counter() - start) / 1e9


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default 1: each direction's "
                        "worker runs on one thread in the 2-core inference path)")
    parser.add_argument("--seconds", type=float, default=0.5, help="timing per cell of the table")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    print(f"machine: {machine_description(args.threads)}")
    if not packed.ready(torch.device("cpu")):
        print("this torch build has no oneDNN packed products: nothing to compare")
        return 0
    print("\n| model | product | rows x in -> out | torch.mm GFLOP/s | oneDNN packed GFLOP/s | speed-up |")
    print("| --- | --- | --- | --- | --- | --- |")
    for name, (cells, proj) in SHAPES.items():
        cases = [("input gates", 1024, proj, 4 * cells)]
        cases += [("recurrent", rows, proj, 4 * cells) for rows in (64, 32, 8)]
        cases += [("projection", rows, cells, proj) for rows in (64, 8)]
        for label, rows, fan_in, fan_out in cases:
            x, weight = torch.randn(rows, fan_in), torch.randn(fan_out, fan_in)
            packed_weight, transposed = packed.pack(weight), weight.t()
            flops = 2 * rows * fan_in * fan_out
            plain = rate(lambda x=x, transposed=transposed: torch.mm(x, transposed), flops, args.seconds)
            fast = rate(lambda x=x, packed_weight=packed_weight: packed.linear(x, packed_weight), flops, args.seconds)
            print(f"| {name} | {label} | {rows} x {fan_in} -> {fan_out} | {plain:.1f} | {fast:.1f} | {fast / plain:.2f}x |",
                  flush=True)
    return 0


if __name__ == "__main__":
    run_script(main, "lstm_products")
