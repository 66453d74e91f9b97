"""Pretraining speed, side by side: today's trainer against the trainer of an earlier commit, in one run.

    python benchmarks/pretrain_speed.py [--base f8dac9d] [--threads 1] [--seconds 20] [--rounds 3]
        [--config configs/pretrain/default.yaml] [--batch-size 64 128] [--text FILE]

The earlier trainer runs from a temporary ``git worktree`` of ``--base``; every measurement is its
own process (one arm at a time, the arms interleaved round by round, so that a change in the
machine's load hits all arms alike). Arms: ``base`` (float32), ``new fp32``, and ``new bf16``
(bfloat16 autocast, where the CPU has bfloat16 units). Each process loads the text, builds the
trainer of its code, runs 3 warm-up steps, then times training steps for ``--seconds``.

Printed per arm and batch size: the median tokens/s over the rounds, the ratio to ``base``, and the
share of the machine's matrix-product limit: training FLOP per token (3 x the forward products of
the LSTMs, the sampled softmax and the token encoder on the batch's distinct tokens) x tokens/s,
over the best float32 GEMM rate measured here at the same thread count (``bench_common.gemm_rates``).
On a shared machine the figures are noisy: compare ratios within one run, not across runs.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))


def worker(args: argparse.Namespace) -> None:
    """One measurement with the code under ``args.code`` (printed as one JSON line)."""
    sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != ROOT]
    sys.path.insert(0, args.code)
    import numpy as np
    import torch
    import yaml

    try:  # the config module's name at the measured commit
        from elmo_tasks.pretrain.settings import config_from_dict
    except ImportError:
        from elmo_tasks.pretrain.config import config_from_dict
    from elmo_tasks.pretrain.trainer import Trainer

    torch.set_num_threads(args.threads)
    data = yaml.safe_load(Path(args.config).read_text())
    data["corpus"] = {"train": [args.text]}
    data["training"].update(batch_size=args.batch_size[0], threads=args.threads, max_steps=10**6,
                            eval_every_steps=10**6, checkpoint_every_steps=10**6, checkpoint_every_minutes=10**6)
    data["training"]["amp"] = bool(args.amp)  # (the earlier trainer ignores it on a CPU)
    config = config_from_dict(data, "speed", base=ROOT)
    with tempfile.TemporaryDirectory() as out:
        trainer = Trainer(config, Path(out) / "run", device="cpu", progress=False)

        def batch(step):
            epoch, k = divmod(step, trainer.batches_per_epoch)
            return trainer._train_streams(epoch).batch(k, trainer.per_sentence)

        for _ in range(3):
            trainer.train_step(batch(trainer.step))
        tokens, steps, distinct, start = 0, 0, 0, time.perf_counter()
        while time.perf_counter() - start < args.seconds:
            b = batch(trainer.step)
            trainer.train_step(b)
            tokens += b.fwd_targets.size
            distinct += len(np.unique(np.concatenate([b.fwd_inputs, b.bwd_inputs])))
            steps += 1
        elapsed = time.perf_counter() - start
    print(json.dumps({"tokens_per_s": tokens / elapsed, "steps": steps, "tokens": tokens,
                      "distinct_per_token": distinct / tokens}))


def training_flops_per_token(config_path: str, batch_size: int, distinct_per_token: float) -> float:
    """3 x the forward products per token (forward + the two backward products)."""
    import yaml
    from bench_common import flops_per_token

    from elmo_tasks.bilm.options import BiLMOptions

    data = yaml.safe_load(Path(config_path).read_text())
    m, t = data["model"], data["training"]
    options = BiLMOptions(lstm_dim=m["lstm_dim"], projection_dim=m["projection_dim"], n_layers=m["n_layers"],
                          char_embedding_dim=m["char_embedding_dim"], filters=m["filters"], n_highway=m["n_highway"])
    f = flops_per_token(options)
    softmax = 2 * 2 * (t.get("n_negative_samples", 8192) + 1) * m["projection_dim"]  # both directions
    encoder = (f["cnn"] + f["highway"] + f["projection"]) * distinct_per_token
    return 3 * (f["lstm"] + softmax + encoder)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base", default="f8dac9d", help="the commit whose trainer is the baseline")
    parser.add_argument("--config", default=str(ROOT / "configs" / "pretrain" / "default.yaml"))
    parser.add_argument("--text", help="training text (default: the built corpus's train.txt, else WordNet glosses)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch-size", type=int, nargs="+", default=[64])
    parser.add_argument("--json", help="also write the results here")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--code", help=argparse.SUPPRESS)
    parser.add_argument("--amp", type=int, default=0, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return 0

    import torch
    from bench_common import gemm_rates, machine_description

    from elmo_tasks.device import bf16_supported

    scratch = Path(tempfile.mkdtemp(prefix="pretrain-speed-"))
    text = args.text
    if text is None:
        from bench_common import default_sentence_file, wordnet_glosses

        built = default_sentence_file(large=True)
        if built is not None:
            text = str(built)
        else:
            text = str(scratch / "wordnet.txt")
            Path(text).write_text("\n".join(wordnet_glosses()[:60000]) + "\n")
    base_tree = scratch / "base"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(base_tree), args.base],
                   check=True, capture_output=True)
    arms = [("base", str(base_tree), 0), ("new fp32", str(ROOT), 0)]
    if bf16_supported(torch.device("cpu")):
        arms.append(("new bf16", str(ROOT), 1))
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads), "PYTHONPATH": ""}
    results: dict[tuple[str, int], list[dict]] = {}
    try:
        for round_number in range(args.rounds):
            for batch_size in args.batch_size:
                for name, code, amp in arms:
                    command = [sys.executable, __file__, "--worker", "--code", code, "--config", args.config,
                               "--text", text, "--threads", str(args.threads), "--seconds", str(args.seconds),
                               "--batch-size", str(batch_size), "--amp", str(amp)]
                    done = subprocess.run(command, capture_output=True, text=True, env=env, cwd=code)
                    if done.returncode != 0:
                        print(done.stderr[-2000:], file=sys.stderr)
                        raise SystemExit(f"pretrain_speed: the {name} worker failed")
                    row = json.loads(done.stdout.strip().splitlines()[-1])
                    results.setdefault((name, batch_size), []).append(row)
                    print(f"round {round_number + 1}, batch {batch_size}, {name}: {row['tokens_per_s']:,.0f} tokens/s",
                          flush=True)
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(base_tree)], capture_output=True)

    torch.set_num_threads(args.threads)
    rate = max(gemm_rates().values())
    print(f"\n{machine_description(args.threads)}; float32 GEMM limit {rate / 1e9:.1f} GFLOP/s")
    print("(a shared machine: the ratios within this run are the figure; absolute rates vary with the load)")
    print(f"{'batch':>5}  {'arm':<9} {'tokens/s':>9} {'x base':>7} {'MFLOP/token':>11} {'share of GEMM limit':>19}")
    table = []
    for batch_size in args.batch_size:
        base_rate = statistics.median(r["tokens_per_s"] for r in results[("base", batch_size)])
        for name, _, _ in arms:
            rows = results[(name, batch_size)]
            median = statistics.median(r["tokens_per_s"] for r in rows)
            flops = training_flops_per_token(args.config, batch_size, statistics.mean(r["distinct_per_token"] for r in rows))
            share = median * flops / rate
            table.append({"batch_size": batch_size, "arm": name, "tokens_per_s": round(median),
                          "ratio_to_base": round(median / base_rate, 3), "mflop_per_token": round(flops / 1e6, 2),
                          "share_of_gemm_limit": round(share, 3), "rounds": [round(r["tokens_per_s"]) for r in rows]})
            print(f"{batch_size:>5}  {name:<9} {median:>9,.0f} {median / base_rate:>6.2f}x {flops / 1e6:>11.1f} {share:>18.0%}")
    # the headline: the fastest new arm at any measured batch size against the base trainer at the
    # config's own batch size (the trainer as a user ran it before)
    import yaml

    own = yaml.safe_load(Path(args.config).read_text())["training"]["batch_size"]
    reference = next((r for r in table if r["arm"] == "base" and r["batch_size"] == own), None)
    best = max((r for r in table if r["arm"] != "base"), key=lambda r: r["tokens_per_s"])
    headline = None
    if reference is not None:
        headline = {"best_arm": best["arm"], "best_batch_size": best["batch_size"], "base_batch_size": own,
                    "ratio": round(best["tokens_per_s"] / reference["tokens_per_s"], 3)}
        print(f"\nfastest: {best['arm']} at batch {best['batch_size']}, {best['tokens_per_s']:,} tokens/s = "
              f"{headline['ratio']:.2f}x the base trainer at the config's batch {own} ({reference['tokens_per_s']:,})")
    if args.json:
        Path(args.json).write_text(json.dumps({"threads": args.threads, "seconds": args.seconds, "rounds": args.rounds,
                                               "base": args.base, "gemm_flops": rate, "rows": table,
                                               "headline": headline}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
