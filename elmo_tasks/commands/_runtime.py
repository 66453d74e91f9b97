"""The command-line convention every command that runs a model or reports progress follows.

``add_runtime_arguments(parser)`` gives a command ``--device``, ``--threads`` and ``--quiet`` /
``--verbose`` (each can be left out where it means nothing); ``apply_runtime(args)`` checks them,
sets torch's threads and returns a :class:`Runtime` saying where to run and how much to say::

    def configure(parser):
        add_runtime_arguments(parser)

    def run(args):
        runtime = apply_runtime(args)          # before the model loads: a bad --device fails at once
        embedder.to(runtime.device)
        ... progress=runtime.progress ...
        runtime.say("...")                     # a log line, not with --quiet
        runtime.result("wrote ...")            # the closing line, also with --quiet
        runtime.detail("...")                  # only with --verbose

Defaults, the same in every command:

* ``--device auto``: the GPU when there is one, else the CPU; a command that reads a config
  (``run``, ``bench``, ``pretrain``) keeps the config's device unless ``--device`` is given.
* ``--threads``: torch's own default (``OMP_NUM_THREADS`` if set, else one thread per core). On the
  2-core AMD EPYC (AVX512-BF16) of this project's machine (load average 1.0 at the start), two threads ran
  ``embed-file`` of 6,000 sentences 1.20x and a polarity GloVe + ELMo epoch 1.43x faster than one
  (``python benchmarks/threads.py``, ``benchmarks/results/speed/threads.txt``); on a machine busy
  with other jobs one thread per process is faster (``bench --jobs J`` gives each job cores / J).
  Results reproduce exactly for the same thread count.
* neither ``--quiet`` nor ``--verbose``: progress bars and the main log lines on stderr;
  ``--quiet``: errors, the result and the closing line (what was written) only; ``--verbose``: also
  the runtime (device, threads, CPU kind) and each step's details.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import dataclass
from typing import Any

from elmo_tasks.errors import UserError

DOCS_OWN_DATA = "docs/own-data.md"  # the page --help texts point to for data and config keys

THREADS_HELP = ("torch threads (default: torch's, i.e. OMP_NUM_THREADS or one per core: on the project's 2-core AMD EPYC, "
                "2 threads ran embed-file 1.2x and a task epoch 1.4x faster than 1; on a busy machine use 1)")


def add_runtime_arguments(parser: argparse.ArgumentParser, *, device: bool = True, threads: bool = True,
                          progress: bool = True, device_help: str | None = None) -> None:
    """``--device``, ``--threads`` and ``--quiet``/``--verbose`` (each one optional), with the shared defaults."""
    if device:
        parser.add_argument("--device", metavar="D", default=None,
                            help=device_help or "auto (default: the GPU when there is one), cpu, cuda or cuda:N")
    if threads:
        parser.add_argument("--threads", type=int, metavar="N", default=None, help=THREADS_HELP)
    if progress:
        group = parser.add_mutually_exclusive_group()
        group.add_argument("--quiet", action="store_true", help="no progress bars or log lines on stderr")
        group.add_argument("--verbose", action="store_true",
                           help="also print the runtime (device, threads, CPU kind) and each step's details")


@dataclass
class Runtime:
    """What the runtime arguments decided: the device (None: the config's), threads, how much to say."""

    device: Any  # torch.device, or None when --device was not given and a config decides
    threads: int
    quiet: bool = False
    verbose: bool = False

    @property
    def progress(self) -> bool:
        """Whether to show progress bars (not with --quiet)."""
        return not self.quiet

    def say(self, message: str) -> None:
        """A log line on stderr, unless --quiet."""
        if not self.quiet:
            print(message, file=sys.stderr, flush=True)

    def result(self, message: str) -> None:
        """The command's closing line on stderr (what it wrote), also with --quiet."""
        print(message, file=sys.stderr, flush=True)

    def detail(self, message: str) -> None:
        """A detail on stderr, only with --verbose."""
        if self.verbose:
            print(message, file=sys.stderr, flush=True)


def parse_device(text: str):
    """``auto``, ``cpu``, ``cuda`` or ``cuda:N`` -> a torch device that exists here (a one-line error otherwise)."""
    from elmo_tasks.device import resolve_device  # torch: imported when a command runs

    return resolve_device(text, "--device")


def apply_runtime(args: argparse.Namespace, *, config_decides_device: bool = False, sharded: bool = False) -> Runtime:
    """Check the runtime arguments, set torch's threads, and say (with --verbose) what was chosen.

    ``config_decides_device``: without ``--device`` the device stays None (the config's setting);
    otherwise it is ``auto``. ``sharded``: a command that splits its work under torchrun, where each
    process takes its own device (the device is then None, and a ``--device`` other than auto an error)."""
    import torch

    from elmo_tasks.device import cpu_kind
    from elmo_tasks.distributed import current_rank

    if sharded and current_rank().world > 1:
        if getattr(args, "device", None) not in (None, "auto"):
            raise UserError("--device: under torchrun each process takes its own device (GPU LOCAL_RANK, else the "
                            "CPU): leave --device out")
        config_decides_device = True
        args = argparse.Namespace(**{**vars(args), "device": None})

    threads = getattr(args, "threads", None)
    if threads is not None:
        if threads < 1:
            raise UserError(f"--threads: must be at least 1, got {threads}")
        torch.set_num_threads(threads)
    text = getattr(args, "device", None)
    device = None
    if text is not None or (hasattr(args, "device") and not config_decides_device):
        device = parse_device(text or "auto")
    runtime = Runtime(device, torch.get_num_threads(), bool(getattr(args, "quiet", False)),
                      bool(getattr(args, "verbose", False)))
    runtime.detail(f"runtime: device {device if device is not None else 'as the config says'}, "
                   f"{runtime.threads} torch thread(s), CPU {cpu_kind()}, torch {torch.__version__}")
    return runtime


def help_epilog(*lines: str) -> str:
    """A --help epilog (kept as written: see ``add_subcommands``) ending with the docs page for own data."""
    return "\n".join([*lines, f"Your own data, config sections and reader options: {DOCS_OWN_DATA} (in the source tree)."])
