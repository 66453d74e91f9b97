"""``elmo-tasks package RUN_DIR OUT.tar.gz``: a finished run as one archive that predicts anywhere, offline."""

from __future__ import annotations

import argparse
import sys

from elmo_tasks.errors import UserError

HELP = "package a finished run folder as a self-contained .tar.gz task model"


def configure(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("run_dir", metavar="RUN_DIR", help="a finished run folder "
                        "(metrics.json, config.yaml, checkpoints/best.pt)")
    parser.add_argument("output", metavar="OUT.tar.gz", help="the archive to write")
    parser.add_argument("--bilm-ref", metavar="NAME", help="store only the biLM's name (e.g. default) and content "
                        "digest, not its files: the receiver resolves NAME and the digest is checked")


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from elmo_tasks.paths import check_output_file

    run_dir = Path(args.run_dir)
    if not run_dir.is_dir():
        raise UserError(f"run folder not found: {run_dir}")
    out = check_output_file(args.output, "output archive")
    if not out.name.endswith(".tar.gz"):
        raise UserError(f"output archive {out}: the name must end in .tar.gz")
    from elmo_tasks.model_folder import resolve_model
    from elmo_tasks.task_model.archive import write_archive
    from elmo_tasks.task_model.parts import from_run_folder

    parts = from_run_folder(run_dir)
    if args.bilm_ref is not None:
        if parts.bilm is None:
            raise UserError("--bilm-ref: this model uses no biLM (no ELMo feature)")
        if resolve_model(args.bilm_ref).digest() != parts.bilm.digest():
            raise UserError(f"--bilm-ref {args.bilm_ref}: that biLM is not the one the run was trained with (digests differ)")
    meta = write_archive(parts, out, args.bilm_ref)
    size = out.stat().st_size
    print(f"wrote {out} ({size / 1e6:.1f} MB, {len(meta['members']) + 1} members)", file=sys.stderr)
    return 0
