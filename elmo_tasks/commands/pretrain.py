"""``elmo-tasks pretrain CONFIG.yaml [--resume | --init-from MODEL_DIR] [--device cpu|cuda] [--out DIR]``: train a
biLM (from scratch, from a checkpoint, or from an exported model), export it."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime
from elmo_tasks.errors import UserError

HELP = "pretrain a biLM on plain text (forward + backward LM) and export options.json + weights.hdf5"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG.yaml", help="pretraining config (see configs/pretrain/)")
    parser.add_argument("--out", metavar="DIR", help="run folder for checkpoints, logs and the exported model "
                        "(default: runs/pretrain/<config name>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out from its last checkpoint")
    parser.add_argument("--init-from", metavar="MODEL_DIR", help="start from this model (a folder with options.json + "
                        "weights.hdf5, and its softmax.hdf5 + vocab.txt when present; 'default' for the shipped "
                        "model; any --model source): continued pretraining")
    parser.add_argument("--export-only", action="store_true", help="with --resume: export the last checkpoint "
                        "to DIR/model (options.json + weights.hdf5) without training further")
    add_runtime_arguments(parser, device_help="auto, cpu, cuda or cuda:N (default: the config's training.device, "
                          "auto: the GPU when there is one); under torchrun each process takes its GPU")


def run(args: argparse.Namespace) -> int:
    from contextlib import nullcontext

    from elmo_tasks.distributed import current_rank
    from elmo_tasks.lock import LOCK_NAME, hold
    from elmo_tasks.paths import check_output_dir
    from elmo_tasks.pretrain.settings import load_config

    runtime = apply_runtime(args, config_decides_device=True)
    config = load_config(args.config)
    out = Path(args.out) if args.out else Path("runs") / "pretrain" / Path(args.config).stem
    if args.export_only and not args.resume:
        raise UserError("--export-only exports an existing run: give --resume too")
    check_output_dir(out, "--out" if args.out else "run folder")
    if args.resume and not out.is_dir():
        raise UserError(f"--resume: no run folder {out}")
    try:
        out.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the run folder {out}: {exc.strerror or exc}") from None
    # one process per run folder; under torchrun rank 0 holds the lock for all ranks
    lock = hold(out / LOCK_NAME, f"pretraining folder {out}") if current_rank().is_main else nullcontext()
    with lock:
        return _pretrain(args, runtime, config, out)


def _pretrain(args: argparse.Namespace, runtime, config, out: Path) -> int:
    # imported when the command runs, not at the top: it pulls in torch
    from elmo_tasks.pretrain.trainer import Trainer

    trainer = Trainer(config, out, device=str(runtime.device) if runtime.device is not None else None,
                      resume=args.resume, progress=runtime.progress, init_from=args.init_from, threads=args.threads)
    main_process = trainer.parallel.is_main  # under torchrun, rank 0 reports and exports
    if args.export_only:
        if main_process:
            trainer.export(out / "model")
            runtime.result(f"exported step {trainer.step} of {out} to {out / 'model'} (options.json + weights.hdf5)")
        trainer.parallel.finish()
        return 0
    if main_process:
        runtime.say(f"pretrain: {trainer.data.train.n_tokens:,} training tokens, vocabulary {len(trainer.data.vocab):,}, "
              f"{trainer.total_steps:,} steps of {config.training.batch_size} x {config.training.unroll_steps} "
              f"({trainer.batches_per_epoch:,} per epoch), device {trainer.device}, run folder {out}"
              + (f", {trainer.parallel.world} processes" if trainer.parallel.world > 1 else "")
              + (f", resuming at step {trainer.step}" if args.resume else "")
              + (f", starting from {args.init_from}" if args.init_from else ""))
    summary = trainer.train()
    final = summary["final_heldout"]
    if main_process:
        if final:
            runtime.say(json.dumps({k: round(v, 2) if isinstance(v, float) else v for k, v in final.items()}))
        runtime.result(f"exported the biLM to {out / 'model'} (options.json + weights.hdf5)")
    return 0
