"""Does bfloat16 autocast pay on this CPU? float32 against forced autocast, for task heads and pretraining.

``trainer.amp`` / ``training.amp`` use autocast only where ``elmo_tasks.device.bf16_support`` says the
CPU has bfloat16 units oneDNN can use; elsewhere they train in float32 and say so in one line. This
benchmark measures what that decision is about, with autocast forced on whatever the verdict:

* the products alone: a (512 x 1024) @ (1024 x 2048) matrix product and an nn.LSTM step (256 units,
  batch 32, 40 steps, forward + backward);
* a task head: training epochs of a config (default ``configs/benchmarks/polarity_glove_elmo.yaml``,
  the prepared polarity set), two copies of one model on the same batches, arms interleaved;
* pretraining: training steps of ``configs/pretrain/default.yaml`` on WordNet glosses, the same
  trainer with autocast off and on, interleaved.

One thread. To see a CPU without bfloat16 units on one that has them, cap oneDNN's instruction set::

    python benchmarks/amp_speed.py --quick                                   # this CPU
    ONEDNN_MAX_CPU_ISA=AVX512_CORE python benchmarks/amp_speed.py --quick    # AVX-512 without BF16
    ONEDNN_MAX_CPU_ISA=AVX2 ATEN_CPU_CAPABILITY=avx2 python benchmarks/amp_speed.py --quick --products-only

``ATEN_CPU_CAPABILITY=avx2`` alone changes what torch reports, not oneDNN's kernels (the products
stay as fast in bfloat16); under an AVX2 cap oneDNN has no bfloat16 kernels at all (a product takes
~150x its float32 time and the bfloat16 LSTM cannot be built), so there measure the products only.
An emulation is not the CPU itself: on a real AVX2 CPU torch may route bfloat16 elsewhere.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import nullcontext
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT))

from elmo_tasks.device import bf16_support  # noqa: E402


def _time(fn, repeats: int) -> float:
    fn()
    tick = time.perf_counter()
    for _ in range(repeats):
        fn()
    return (time.perf_counter() - tick) / repeats


def products(repeats: int) -> dict[str, float | str]:
    a, b = torch.randn(512, 1024), torch.randn(1024, 2048)
    lstm, x = torch.nn.LSTM(256, 256, batch_first=True), torch.randn(32, 40, 256)

    def mm(amp: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext():
            return a @ b

    def lstm_step(amp: bool):
        with torch.autocast("cpu", dtype=torch.bfloat16) if amp else nullcontext():
            out, _ = lstm(x)
        out.float().sum().backward()

    out: dict[str, float | str] = {}
    for name, fn in (("matmul", mm), ("lstm", lstm_step)):
        for amp in (False, True):
            key = f"{name} {'bfloat16' if amp else 'float32'} ms"
            try:
                out[key] = round(1000 * _time(lambda fn=fn, amp=amp: fn(amp), repeats), 2)
            except RuntimeError as exc:  # oneDNN without bfloat16 kernels cannot build the LSTM
                out[key] = f"fails: {str(exc).splitlines()[0][:90]}"
    return out


def head(config_path: str, epochs: int) -> dict[str, float]:
    from elmo_tasks.experiment import load_config
    from elmo_tasks.training import trainer

    config = load_config(config_path, {"trainer.amp": False})
    _, splits, model, _ = trainer.prepare(config, progress=False, log=lambda m: None)
    models = {False: model, True: copy.deepcopy(model)}
    models[True].amp = True  # forced: whatever bf16_support says
    optimizers = {amp: torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=config.trainer.lr)
                  for amp, m in models.items()}
    seconds: dict[bool, list[float]] = {False: [], True: []}
    for epoch in range(1, epochs + 1):
        for amp in (False, True):
            tick = time.perf_counter()
            trainer.train_epoch(models[amp], splits["train"], config, optimizers[amp], epoch, torch.device("cpu"),
                                progress=False)
            seconds[amp].append(time.perf_counter() - tick)
    return {"float32 s/epoch": round(statistics.median(seconds[False]), 3),
            "bfloat16 s/epoch": round(statistics.median(seconds[True]), 3)}


def pretraining(seconds: float, rounds: int) -> dict[str, float]:
    import yaml
    from bench_common import wordnet_glosses

    from elmo_tasks.pretrain.settings import config_from_dict
    from elmo_tasks.pretrain.trainer import Trainer

    scratch = Path(tempfile.mkdtemp(prefix="amp-speed-"))
    text = scratch / "glosses.txt"
    text.write_text("\n".join(wordnet_glosses()[:20000]) + "\n")
    data = yaml.safe_load((ROOT / "configs" / "pretrain" / "default.yaml").read_text())
    data["corpus"] = {"train": [str(text)]}
    data["training"].update(threads=1, max_steps=10**6, eval_every_steps=10**6, checkpoint_every_steps=10**6,
                            checkpoint_every_minutes=10**6, amp=False)
    trainer = Trainer(config_from_dict(data, "speed", base=ROOT), scratch / "run", device="cpu", progress=False)

    def batch(step):
        epoch, k = divmod(step, trainer.batches_per_epoch)
        return trainer._train_streams(epoch).batch(k, trainer.per_sentence)

    rates: dict[bool, list[float]] = {False: [], True: []}
    for _ in range(rounds):
        for amp in (False, True):
            trainer.amp = amp  # forced: whatever bf16_support says
            trainer.train_step(batch(trainer.step))  # warm-up
            tokens, start = 0, time.perf_counter()
            while time.perf_counter() - start < seconds:
                b = batch(trainer.step)
                trainer.train_step(b)
                tokens += b.fwd_targets.size
            rates[amp].append(tokens / (time.perf_counter() - start))
    return {"float32 tok/s": round(statistics.median(rates[False])), "bfloat16 tok/s": round(statistics.median(rates[True]))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--config", default=str(ROOT / "configs" / "benchmarks" / "polarity_glove_elmo.yaml"))
    parser.add_argument("--epochs", type=int, default=3, help="head epochs per arm (median reported)")
    parser.add_argument("--seconds", type=float, default=20.0, help="pretraining seconds per arm and round")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--quick", action="store_true", help="2 epochs, 8 s x 1 round of pretraining")
    parser.add_argument("--products-only", action="store_true", help="only the matrix product and the LSTM")
    parser.add_argument("--json", metavar="FILE")
    args = parser.parse_args()
    if args.quick:
        args.epochs, args.seconds, args.rounds = 2, 8.0, 1
    torch.set_num_threads(1)
    from bench_common import machine_description

    ok, why = bf16_support(torch.device("cpu"))
    caps = {k: os.environ[k] for k in ("ONEDNN_MAX_CPU_ISA", "ATEN_CPU_CAPABILITY") if k in os.environ}
    result: dict = {"machine": machine_description(1), "caps": caps, "torch_capability": torch.backends.cpu.get_cpu_capability(),
                    "onednn_bf16": bool(torch.ops.mkldnn._is_mkldnn_bf16_supported()), "autocast_used_by_trainers": ok,
                    "why_not": why, "products": products(3 if args.quick else 10)}
    if not args.products_only:
        result["head"] = {"config": Path(args.config).name, **head(args.config, args.epochs)}
        result["pretraining"] = pretraining(args.seconds, args.rounds)
    print(json.dumps(result, indent=1))
    if args.json:
        Path(args.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from elmo_tasks.errors import run_script

    run_script(main, "amp_speed")
