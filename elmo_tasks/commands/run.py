"""``elmo-tasks run CONFIG [--set KEY=VALUE]... [--seed N] [--out DIR]``: train a head as the config says,
keep the best dev checkpoint, evaluate it on test and write the run folder (see elmo_tasks.training.trainer)."""

from __future__ import annotations

import argparse
from pathlib import Path

from elmo_tasks.commands._runtime import add_runtime_arguments, apply_runtime, help_epilog
from elmo_tasks.errors import UserError

HELP = "train and evaluate one experiment config (resumes an interrupted run in the same folder)"

EPILOG = help_epilog(
    "A config (YAML) has these sections:",
    "  dataset:   where the examples come from: source prepared | files | hub; name; format conll | word_tag |",
    "             csv | tsv | table | jsonl; files {train, dev, test}; options (the reader's); tokenize",
    "             whitespace | ptb; max_examples; normalize; sense_frequencies",
    "  features:  glove, elmo, chars (the head's input is their concatenation)",
    "  head:      name tagger | classifier | wsd | probe, and that head's options",
    "  trainer:   epochs, patience, batch_size, lr, weight_decay, grad_norm, seed, device, threads, amp",
    "  name, description, output, extends (another config this one builds on)",
    "--set KEY=VALUE changes one key without editing the file, e.g. --set trainer.epochs=5",
    "--set features.elmo.model=fixture --set head.hidden=64 (values are YAML: null removes a key).",
)


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("config", metavar="CONFIG", help="experiment YAML (configs/tasks/*.yaml; sections below)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="assignments",
                        help="set a dotted config key (repeatable; the value is YAML), checked like the file")
    parser.add_argument("--seed", type=int, metavar="N", help="random seed (default: trainer.seed of the config)")
    parser.add_argument("--out", metavar="DIR", help="run folder (default: the config's output/seedN)")
    parser.add_argument("--restart", action="store_true", help="discard what the run folder holds and start over")
    add_runtime_arguments(parser, device_help="auto, cpu, cuda or cuda:N (default: the config's trainer.device)")


def run_folder(config, seed: int, out: str | None) -> Path:
    """``--out``, else the config's output folder / seedN; a config name that climbs out of runs/ is refused."""
    from elmo_tasks.errors import UserError
    from elmo_tasks.paths import check_output_dir

    if out:
        return check_output_dir(out, "--out")
    folder = Path(config.output) / f"seed{seed}"
    if config.output == str(Path("runs") / config.name) and (Path(config.name).is_absolute() or ".." in Path(config.name).parts):
        raise UserError(f"{config.path}: name: {config.name!r} would put the run folder outside runs/ "
                        f"({folder}); use a plain name, or give output: or --out")
    return check_output_dir(folder, f"{config.path}: output: run folder")


def run(args: argparse.Namespace) -> int:
    # imported when the command runs, not at the top: the CLI builds every command's parser at start-up,
    # and these pull in torch, pandas or datasets
    from elmo_tasks.experiment import load_config
    from elmo_tasks.schema import parse_assignments
    from elmo_tasks.training.trainer import run as run_experiment

    runtime = apply_runtime(args, config_decides_device=True)
    overrides = parse_assignments(args.assignments, "--set")
    if "trainer.seed" in overrides and args.seed is not None:
        raise UserError("--seed and --set trainer.seed both set the seed: give one of them")
    origins = {key: "--set" for key in overrides}
    if args.seed is not None:
        overrides["trainer.seed"], origins["trainer.seed"] = args.seed, "--seed"
    if runtime.device is not None:
        overrides["trainer.device"], origins["trainer.device"] = str(runtime.device), "--device"
    config = load_config(args.config, overrides, origin=origins)
    runtime.detail(f"config {args.config}" + "".join(f", {origins[k]} {k}={v!r}" for k, v in overrides.items()))
    folder = run_folder(config, config.trainer.seed, args.out)  # checked before any work
    metrics = run_experiment(config, folder, progress=runtime.progress, restart=args.restart, echo=not runtime.quiet,
                             threads=args.threads)
    main = metrics["main_metric"]
    print(f"{config.name} seed {metrics['seed']}: dev {main} {metrics['dev'][main]:.4f}, "
          f"test {main} {metrics['test'][main]:.4f} -> {folder}")
    return 0
