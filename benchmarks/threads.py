"""Which ``--threads`` default: the real commands at 1 thread and at N, interleaved in rounds.

Two workloads, each run through the command line in a fresh process per measurement (torch's thread
count is process-wide), alternating thread counts round by round so that both see the same load:

* ``embed-file`` of real sentences with the default model (wall seconds of the whole command,
  start-up and model loading included, the same for every arm);
* ``run`` of a task config for a few epochs (``seconds_per_epoch`` from its metrics.json: training
  passes only; the ELMo cache is built once beforehand).

    python benchmarks/threads.py                     # 1 and 2 threads, 3 rounds
    python benchmarks/threads.py --quick             # 1 round, fewer sentences and epochs
    python benchmarks/threads.py --threads 1 2 4 --config configs/benchmarks/wnut16_glove_elmo.yaml

The default config reads the prepared ``polarity`` set (``elmo-tasks data prepare polarity``). Run it
on a quiet machine and say how loaded it was: the load average is printed with the figures.
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
sys.path.insert(0, str(ROOT))


def cli(*args: str, threads: int) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_DATASETS_OFFLINE": "1", "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run([sys.executable, "-m", "elmo_tasks.cli", *args, "--threads", str(threads), "--quiet"],
                          capture_output=True, text=True, env=env, cwd=ROOT)
    if done.returncode != 0:
        raise SystemExit(f"threads: elmo-tasks {' '.join(args)} failed:\n{done.stderr[-2000:]}")
    return done


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts to compare (default 1 2)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sentences", type=int, default=6000, help="sentences for embed-file (default 6000)")
    parser.add_argument("--config", default=str(ROOT / "configs/benchmarks/polarity_glove_elmo.yaml"))
    parser.add_argument("--epochs", type=int, default=3, help="epochs of each run (default 3)")
    parser.add_argument("--quick", action="store_true", help="1 round, 2000 sentences, 2 epochs")
    parser.add_argument("--json", metavar="FILE", help="also write the figures as JSON")
    args = parser.parse_args()
    if args.quick:
        args.rounds, args.sentences, args.epochs = 1, 2000, 2

    from bench_common import load_sentences, machine_description

    from elmo_tasks.device import cpu_kind

    scratch = Path(tempfile.mkdtemp(prefix="threads-"))
    sentences, origin = load_sentences(None, args.sentences)
    text = scratch / "sentences.txt"
    text.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
    tokens = sum(len(s) for s in sentences)
    cache = ["--set", f"features.elmo.cache_dir={scratch / 'cache'}"] if "elmo" in Path(args.config).name else []
    cli("run", args.config, *cache, "--set", "trainer.epochs=1", "--out", str(scratch / "warm"), threads=1)  # the cache

    embed: dict[int, list[float]] = {n: [] for n in args.threads}
    epoch: dict[int, list[float]] = {n: [] for n in args.threads}
    for round_number in range(args.rounds):
        for n in args.threads:
            tick = time.perf_counter()
            cli("embed-file", str(text), str(scratch / f"o{n}.hdf5"), threads=n)
            embed[n].append(time.perf_counter() - tick)
            folder = scratch / f"run-{n}-{round_number}"
            cli("run", args.config, *cache, "--set", f"trainer.epochs={args.epochs}", "--set", "trainer.patience=100",
                "--out", str(folder), threads=n)
            epoch[n].append(json.loads((folder / "metrics.json").read_text())["seconds_per_epoch"])
            print(f"round {round_number + 1}, {n} thread(s): embed-file {embed[n][-1]:.2f} s, "
                  f"epoch {epoch[n][-1]:.2f} s", flush=True)

    base = args.threads[0]
    print(f"\n{machine_description(base)}; CPU kind {cpu_kind()}")
    print(f"embed-file: {len(sentences):,} sentences ({tokens:,} tokens; {origin}), default model, whole command;")
    print(f"run: {Path(args.config).name}, median seconds per training epoch of {args.epochs}-epoch runs; "
          f"median of {args.rounds} interleaved round(s)")
    print(f"{'threads':>7} {'embed-file s':>13} {'x':>6} {'epoch s':>9} {'x':>6}")
    rows = []
    for n in args.threads:
        e, t = statistics.median(embed[n]), statistics.median(epoch[n])
        e0, t0 = statistics.median(embed[base]), statistics.median(epoch[base])
        rows.append({"threads": n, "embed_file_seconds": round(e, 3), "embed_speedup": round(e0 / e, 3),
                     "epoch_seconds": round(t, 3), "epoch_speedup": round(t0 / t, 3),
                     "embed_rounds": [round(x, 3) for x in embed[n]], "epoch_rounds": epoch[n]})
        print(f"{n:>7} {e:>13.2f} {e0 / e:>5.2f}x {t:>9.2f} {t0 / t:>5.2f}x")
    if args.json:
        Path(args.json).write_text(json.dumps({"machine": machine_description(base), "cpu": cpu_kind(),
                                               "config": args.config, "rows": rows}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    from elmo_tasks.errors import run_script

    run_script(main, "threads")
