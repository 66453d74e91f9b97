"""Peak memory of ``elmo-tasks embed-file`` on a 100,000-sentence file, and whether it stays flat.

Runs the real command in a subprocess on the first N distinct lines of the corpus training split
(``elmo-tasks data corpus``; else WordNet glosses), samples the process's resident memory
(``/proc/PID/status``) every 0.2 s and reads its progress from the progress bar, then prints the
resident memory at every 10% of the file and the peak (``VmHWM``). Flat means the memory after
10,000 sentences and after 100,000 are about the same.

    python benchmarks/embed_file_memory.py                      # default model, 100,000 sentences
    python benchmarks/embed_file_memory.py --lines 20000 --model DIR
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import load_sentences, machine_description  # noqa: E402

from elmo_tasks.errors import UserError, run_script  # noqa: E402


def read_status(pid: int) -> dict[str, float]:
    values = {}
    try:
        with open(f"/proc/{pid}/status") as handle:
            for line in handle:
                if line.startswith(("VmRSS:", "VmHWM:")):
                    values[line.split(":")[0]] = int(line.split()[1]) / 1024
    except OSError:
        pass
    return values


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--lines", type=int, default=100_000, help="sentences in the input file (default 100000)")
    parser.add_argument("--sentences", metavar="FILE", help="source of the lines (default: the corpus training split, "
                        "else WordNet glosses)")
    parser.add_argument("--model", metavar="DIR", help="model folder (default: the toolkit's default model)")
    parser.add_argument("--layers", default="all", choices=["all", "top", "average"])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--keep", metavar="DIR", help="write the input and output here instead of a temporary folder")
    args = parser.parse_args(argv)

    sentences, source = load_sentences(args.sentences, args.lines, large=True)
    print(f"machine: {machine_description(args.threads)}")
    print(f"input: {args.lines} distinct lines of {source}, {sum(map(len, sentences))} tokens")
    with tempfile.TemporaryDirectory(prefix="embed-file-memory-") as tmp:
        folder = Path(args.keep) if args.keep else Path(tmp)
        folder.mkdir(parents=True, exist_ok=True)
        source_file, output = folder / "input.txt", folder / "vectors.hdf5"
        source_file.write_text("\n".join(" ".join(s) for s in sentences) + "\n", encoding="utf-8")
        command = [sys.executable, "-m", "elmo_tasks.cli", "embed-file", str(source_file), str(output),
                   "--layers", args.layers] + (["--model", args.model] if args.model else [])
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        print(f"command: OMP_NUM_THREADS={args.threads} {' '.join(['elmo-tasks'] + command[3:])}")
        start = time.perf_counter()
        process = subprocess.Popen(command, stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, env=env)
        progress = {"done": 0}
        stderr_lines: list[str] = []

        def follow_progress() -> None:  # tqdm redraws with \r; keep the latest sentence count
            buffer = b""
            while chunk := process.stderr.read1(4096):
                buffer += chunk
                parts = re.split(rb"[\r\n]", buffer)
                buffer = parts.pop()
                for part in parts:
                    text = part.decode("utf-8", "replace")
                    match = re.search(r"embed-file:\s+(?:\d+%\|[^|]*\|\s*)?(\d+)", text)
                    if match:
                        progress["done"] = int(match.group(1))
                    elif text.strip():
                        stderr_lines.append(text)

        reader = threading.Thread(target=follow_progress, daemon=True)
        reader.start()
        samples = []  # (seconds, sentences done, RSS MiB)
        while True:
            pid, status_code, usage = os.wait4(process.pid, os.WNOHANG)
            if pid:  # finished: the kernel's own peak for the child
                peak = usage.ru_maxrss / 1024
                process.returncode = os.waitstatus_to_exitcode(status_code)
                break
            status = read_status(process.pid)
            if "VmRSS" in status:
                samples.append((time.perf_counter() - start, progress["done"], status["VmRSS"]))
            time.sleep(0.2)
        reader.join(timeout=5)
        seconds = time.perf_counter() - start
        if process.returncode != 0:
            raise UserError(f"embed-file failed (exit {process.returncode}): {' | '.join(stderr_lines[-3:])}")
        size = output.stat().st_size / 2**30

    print(f"finished in {seconds:.0f} s ({args.lines / seconds:.0f} sentences/s), output {size:.2f} GiB")
    print("\n| sentences done | seconds | RSS MiB |")
    print("| --- | --- | --- |")
    rows = [next((s for s in samples if s[1] >= args.lines * k // 10), None) for k in range(1, 10)]
    rows.append(samples[-1] if samples else None)  # the last sample before the process ended
    for row in rows:
        if row:
            print(f"| {row[1]} | {row[0]:.0f} | {row[2]:.0f} |")
    print(f"\npeak RSS of the embed-file process (ru_maxrss): {peak:.0f} MiB")
    if rows[0] and rows[-1]:
        print(f"RSS after {rows[0][1]} sentences: {rows[0][2]:.0f} MiB; at the end ({rows[-1][1]}): {rows[-1][2]:.0f} MiB")
    return 0


if __name__ == "__main__":
    run_script(main, "embed_file_memory")
