"""``elmo-tasks run CONFIG [--seed N] [--out DIR]``: train a head as the config says, keep the best
dev checkpoint, evaluate it on test and write the run folder (see elmo_tasks.training.trainer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from elmo_tasks.errors import UserError

HELP = "train and evaluate one experiment config (resumes an interrupted run in the same folder)"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML (configs/tasks/*.yaml)")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (default: trainer.seed of the config)")
    parser.add_argument("--out", metavar="DIR", help="run folder (default: the config's output/seedN)")
    parser.add_argument("--restart", action="store_true", help="discard what the run folder holds and start over")
    parser.add_argument("--threads", type=int, default=1, metavar="N",
                        help="torch threads (default 1: the task models are small; a WNUT-16 epoch took 2 s on one "
                        "thread and 14-26 s on two on a busy 2-core machine); a config's trainer.threads wins")
    parser.add_argument("--quiet", action="store_true", help="no progress bars or log lines on stderr")


def run_folder(config, seed: int, out: str | None) -> Path:
    return Path(out) if out else Path(config.output) / f"seed{seed}"


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    import torch

    from elmo_tasks.experiment import load_config
    from elmo_tasks.training.trainer import run as run_experiment

    if args.threads < 1:
        raise UserError(f"--threads: must be at least 1, got {args.threads}")
    torch.set_num_threads(args.threads)

    overrides = {"trainer.seed": args.seed} if args.seed is not None else None
    config = load_config(args.config, overrides)
    folder = run_folder(config, config.trainer.seed, args.out)
    metrics = run_experiment(config, folder, progress=not args.quiet, restart=args.restart, echo=not args.quiet)
    main = metrics["main_metric"]
    print(f"{config.name} seed {metrics['seed']}: dev {main} {metrics['dev'][main]:.4f}, "
          f"test {main} {metrics['test'][main]:.4f} -> {folder}")
    return 0
