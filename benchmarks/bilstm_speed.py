"""The heads' BiLSTM: the fused recurrence (``modules.BiLSTM(fused=True)``) against two ``nn.LSTM`` per layer.

Interleaved A/B in one process, forward + backward on a tagger-shaped batch (32 sentences of 5-40
tokens, GloVe 100 + ELMo 1024 inputs, hidden 100), float32 and bfloat16 autocast; medians printed.
Run: ``taskset -c 1 python benchmarks/bilstm_speed.py [--quick]``.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # this tree's elmo_tasks, not the installed one

from bench_common import two_lstm_forward  # noqa: E402

from elmo_tasks.modules import BiLSTM  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="4 repeats instead of 15")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    lstm = BiLSTM(1124, 100, layers=1, fused=True)
    lengths = torch.randint(5, 40, (32,))
    mask = torch.arange(40).unsqueeze(0) < lengths.unsqueeze(1)
    x = torch.randn(32, 40, 1124)
    arms = {"fused": lstm.forward, "two nn.LSTM": lambda a, m: two_lstm_forward(lstm, a, m)}
    for amp in (False, True):
        times: dict[str, list[float]] = {name: [] for name in arms}
        for _ in range(4 if args.quick else 15):
            for name, run in arms.items():
                start = time.perf_counter()
                with torch.autocast("cpu", dtype=torch.bfloat16, enabled=amp):
                    run(x, mask).float().sum().backward()
                times[name].append(time.perf_counter() - start)
        fused, base = (statistics.median(times[n]) for n in arms)
        print(f"{'bf16 autocast' if amp else 'float32'}: fused {fused * 1e3:.1f} ms, "
              f"two nn.LSTM {base * 1e3:.1f} ms, speed-up {base / fused:.2f}x")


if __name__ == "__main__":
    main()
