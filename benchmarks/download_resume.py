"""The downloader's figures: a killed download resumed, and the cold start of a cached model by name.

1. A 100 MB file of random bytes served on 127.0.0.1 (tests/http_util.py, a real HTTP server);
   ``download.fetch`` runs in a child process that is killed (SIGKILL) once half the file is on
   disk; a fresh process fetches again. Prints the bytes each transfer sent, the rerun's Range
   header, whether the result's sha256 equals the source's, and whether any temporary is left.
2. ``elmo-tasks embed --model small`` with the model cached (the shipped default model's files,
   served at the registry's ``small`` paths through ``ELMO_TASKS_MODEL_MIRROR`` and downloaded
   once) against ``--model DIR`` on the same files; the mirror then points at a closed port, so any
   network call would fail the run. Fresh processes, alternated, medians.

    flock /tmp/heavy.lock python benchmarks/download_resume.py [--mb 100] [--runs 7]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))
sys.path.insert(0, str(ROOT / "tests"))
from bench_common import machine_description  # noqa: E402
from http_util import FileServer  # noqa: E402

from elmo_tasks.errors import run_script  # noqa: E402

DEMO = ["embed", "I love to watch TV", "I am wearing a wrist watch", "--word", "watch", "--threads", "1"]


def child(code: str, env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code], cwd=ROOT, env=env, stdout=subprocess.PIPE, text=True)


def resume(megabytes: int, env: dict) -> None:
    from elmo_tasks import download

    data = os.urandom(megabytes << 20)
    source_sha = hashlib.sha256(data).hexdigest()
    with FileServer() as server:
        url = server.add("/big.bin", data)
        server.delay_s = 0.002  # 64 KiB per 2 ms at most: about 30 MB/s, so the kill lands near half
        code = f"from elmo_tasks import download; print(download.fetch({url!r}))"
        first = child(code, env)
        partial = download.entry_dir(url) / ("big.bin" + download.PARTIAL_SUFFIX)
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and (not partial.is_file() or partial.stat().st_size < len(data) // 2):
            time.sleep(0.005)
        first.send_signal(signal.SIGKILL)
        first.wait()
        kept = partial.stat().st_size
        server.delay_s = 0.0
        start = time.perf_counter()
        second = child(code, env)
        path = Path(second.communicate(timeout=300)[0].strip())
        seconds = time.perf_counter() - start
        killed, rerun = server.requests("/big.bin")
        left = [p.name for p in download.entry_dir(url).iterdir() if ".partial" in p.name or ".tmp-" in p.name]
        print(f"file: {len(data):,} bytes, sha256 {source_sha[:16]}...")
        print(f"killed run: sent {killed['sent']:,} bytes (status {killed['status']}); partial file kept {kept:,} bytes")
        print(f"rerun: {rerun['range']} -> status {rerun['status']}, sent {rerun['sent']:,} bytes "
              f"({rerun['sent'] / len(data):.1%} of the file), {seconds:.2f} s with its process start")
        print(f"result sha256 equal to the source: {hashlib.sha256(path.read_bytes()).hexdigest() == source_sha}; "
              f"temporary files left: {left or 'none'}")


def wall_time(command: list[str], env: dict) -> float:
    start = time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT)
    seconds = time.perf_counter() - start
    if result.returncode != 0:
        raise SystemExit(f"download_resume: {' '.join(command)} failed:\n{result.stderr}")
    return seconds


def cold_start(runs: int, env: dict) -> None:
    from elmo_tasks.model_folder import DEFAULT_MODEL_DIR
    from elmo_tasks.models.registry import MODELS

    small = MODELS["small"]
    with FileServer() as server:
        for url, name in ((small.options, "options.json"), (small.weights, "weights.hdf5")):
            server.add("/" + url.split("://", 1)[1].split("/", 1)[1], DEFAULT_MODEL_DIR / name)
        env = {**env, "ELMO_TASKS_MODEL_MIRROR": server.url}
        cli = [sys.executable, "-m", "elmo_tasks.cli"]
        folder = subprocess.run([*cli, "models", "download", "small"], env=env, capture_output=True, text=True,
                                check=True).stdout.strip()
        print(f"downloaded once through the mirror: {len(server.log)} requests -> {folder}")
    env["ELMO_TASKS_MODEL_MIRROR"] = "http://127.0.0.1:9"  # nothing listens: a network call would fail the run
    by_name, by_dir = [*cli, *DEMO, "--model", "small"], [*cli, *DEMO, "--model", str(DEFAULT_MODEL_DIR)]
    wall_time(by_name, env), wall_time(by_dir, env)  # unmeasured: the files into the OS cache
    named, local = [], []
    for _ in range(runs):
        named.append(wall_time(by_name, env))
        local.append(wall_time(by_dir, env))
    print(f"elmo-tasks {' '.join(DEMO[:1])} ... --model small (cached), {runs} runs (s): {', '.join(f'{t:.3f}' for t in named)}")
    print(f"elmo-tasks {' '.join(DEMO[:1])} ... --model DIR, {runs} runs (s): {', '.join(f'{t:.3f}' for t in local)}")
    print(f"median: by name {statistics.median(named):.3f} s, by folder {statistics.median(local):.3f} s, "
          f"difference {statistics.median(named) - statistics.median(local):+.3f} s")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the resumed file (default 100 MB)")
    parser.add_argument("--runs", type=int, default=7, help="cold-start runs of each command (default 7)")
    args = parser.parse_args(argv)
    print(f"machine: {machine_description(1)}")
    with tempfile.TemporaryDirectory(prefix="download-bench-") as cache:
        os.environ["ELMO_TASKS_CACHE"] = cache  # this process's cache paths, and the children's
        env = {k: v for k, v in os.environ.items() if k not in ("ELMO_TASKS_OFFLINE", "HF_HUB_OFFLINE")}
        env["PYTHONPATH"] = str(ROOT)
        resume(args.mb, env)
        cold_start(args.runs, env)
    return 0


if __name__ == "__main__":
    run_script(main, "download_resume")
