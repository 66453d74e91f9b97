"""Load on ``elmo-tasks serve`` with the default model, against in-process ``Embedder`` throughput.

Starts real servers on 127.0.0.1 (free ports) and measures, then prints:

1. in-process ``Embedder`` tokens/s on the benchmark's sentences in batches of 64 (the token cache cold,
   then warm, as the server's is after warm-up), the model alone vs the JSON / base64 encoding of its
   answers, and (full run) tokens/s by batch size in tokens, which sizes ``--max-batch-tokens``;
2. N = 1, 8, 64 concurrent clients, each sending one real sentence at a time (``{"tokens": [s]}``),
   for ``"output": "top"`` and ``"layers"``: requests/s, tokens/s, p50/p99 latency, client and server
   CPU seconds; the same at N = 64 ``top`` against a server started with ``--max-batch-requests 1``;
3. 10,000 requests (``--quick``: 2,000), one in ten malformed, cycling through every client-mistake
   class (400, 401, 404, 405, 413 bytes, 413 tokens, 422): every good answer checked against the
   in-process vectors, every bad one its status, 0 5xx; the server's RSS at the end vs after warm-up;
   then a burst over ``--max-concurrent-requests``: 200 or 429, never a 5xx;
4. one request of 10 million tokens, declared (Content-Length) and streamed (chunked): 413 at once,
   the server's peak RSS before and after;
5. SIGTERM with 64 requests in flight: all answered correctly, exit 0, within 10 s.

The sentences are WordNet 3.0 glosses (``bench_common.load_sentences``: the corpus held-out split
when ``elmo-tasks data corpus`` has built it). Client and server share this machine's cores: the
client's CPU time is printed next to the server's. Every loop is bounded in count and in time.

    python benchmarks/serve_load.py            # full, about 5 minutes on 2 cores
    python benchmarks/serve_load.py --quick    # about 2 minutes
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_common import load_sentences  # noqa: E402

from elmo_tasks.dump import reduce_layers  # noqa: E402
from elmo_tasks.embedder import Embedder  # noqa: E402
from elmo_tasks.serve.models import EMBED  # noqa: E402
from elmo_tasks.serve.payloads import EmbedItem, decode_base64, encode_embeddings  # noqa: E402

API_KEY = "bench-key"
TOLERANCE = 1e-5  # a server answer vs the in-process batch of 64 (different batch mates; the tests hold 1e-6 alone)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ServerProcess:
    """``elmo-tasks serve`` in a child process on 127.0.0.1; its RSS and CPU time from /proc."""

    def __init__(self, *args: str, threads: int, ready_within: float = 120, env: dict | None = None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.args = args
        command = [sys.executable, "-m", "elmo_tasks.cli", "serve", "--host", "127.0.0.1", "--port", str(self.port),
                   "--threads", str(threads), *args]
        self.process = subprocess.Popen(command, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + ready_within
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise SystemExit(f"the server exited {self.process.returncode}: {self.process.stderr.read()[-2000:]}")
            try:
                if httpx.get(f"{self.url}/health", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        self.process.kill()
        raise SystemExit(f"the server was not ready within {ready_within:g} s")

    def pids(self) -> list[int]:
        """The server process and its children (the model process)."""
        pids, i = [self.process.pid], 0
        while i < len(pids):
            for task in Path(f"/proc/{pids[i]}/task").iterdir():
                children = (task / "children").read_text().split()
                pids.extend(int(c) for c in children if int(c) not in pids)
            i += 1
        return pids

    def status(self, key: str) -> int:
        """A ``/proc/PID/status`` field in KiB (VmRSS, VmHWM), summed over the server and its model process."""
        total = 0
        for pid in self.pids():
            for line in Path(f"/proc/{pid}/status").read_text().splitlines():
                if line.startswith(key + ":"):
                    total += int(line.split()[1])
        return total

    def cpu_seconds(self) -> float:
        """User + system CPU seconds of the server and its model process."""
        total = 0
        for pid in self.pids():
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])
        return total / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 30) -> tuple[int, float]:
        """SIGTERM; the exit code and the seconds to exit."""
        start = time.monotonic()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            code = self.process.wait(timeout)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(10)
            code = -9
        return code, time.monotonic() - start


def client_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


# -- in-process ---------------------------------------------------------------------------------------


def in_process(embedder: Embedder, sentences: list[list[str]]) -> dict:
    """Tokens/s of ``embed_sentences`` in batches of 64, the token cache cold then warm; the top layers."""
    tokens = sum(map(len, sentences))
    embedder.engine.clear_caches()
    start = time.perf_counter()
    arrays = list(embedder.embed_sentences(sentences))
    cold = tokens / (time.perf_counter() - start)
    start = time.perf_counter()
    for _ in embedder.embed_sentences(sentences):
        pass
    warm = tokens / (time.perf_counter() - start)
    # as a server meets them: consecutive batches of 64 in arrival order, not sorted by length (warm cache)
    start = time.perf_counter()
    for i in range(0, len(sentences), 64):
        embedder.embed_batch(sentences[i:i + 64])
    arrival = tokens / (time.perf_counter() - start)
    return {"tokens": tokens, "cold_tokens_per_s": cold, "warm_tokens_per_s": warm,
            "arrival_order_tokens_per_s": arrival, "top": [a[-1].copy() for a in arrays]}


def encoding_cost(embedder: Embedder, sentences: list[list[str]], repeats: int) -> dict:
    """Seconds per 64-sentence batch: the model, and encoding its answers as JSON numbers or base64."""
    batches = [sentences[i:i + 64] for i in range(0, len(sentences), 64)][:repeats]
    out: dict[str, float] = {}
    model = 0.0
    encoded: dict[str, float] = {}
    for batch in batches:
        start = time.perf_counter()
        arrays = embedder.embed_batch(batch)
        model += time.perf_counter() - start
        for output, layers in (("top", "top"), ("layers", "all")):
            items = [EmbedItem(s, layers, "none") for s in batch]
            reduced = [reduce_layers(a, layers, "none") for a in arrays]
            for encoding in ("float", "base64"):
                start = time.perf_counter()
                encode_embeddings(items, reduced, encoding)
                encoded[f"{output}/{encoding}"] = encoded.get(f"{output}/{encoding}", 0.0) + \
                    time.perf_counter() - start
    out["model"] = model / len(batches)
    out.update({k: v / len(batches) for k, v in encoded.items()})
    return out


def batch_token_sweep(embedder: Embedder, sentences: list[list[str]], sizes: tuple[int, ...]) -> list[tuple]:
    """(tokens per batch, tokens/s, seconds per batch) of ``embed_batch`` on consecutive sentences."""
    rows = []
    for size in sizes:
        batches, batch, count = [], [], 0
        for s in sentences:
            batch.append(s)
            count += len(s)
            if count >= size:
                batches.append(batch)
                batch, count = [], 0
        batches = batches[:max(2, 8192 // size)]
        embedder.embed_batch(batches[0])  # warm
        start = time.perf_counter()
        total = 0
        for b in batches:
            embedder.embed_batch(b)
            total += sum(map(len, b))
        seconds = time.perf_counter() - start
        rows.append((size, total / seconds, seconds / len(batches)))
    return rows


# -- load ---------------------------------------------------------------------------------------------


@dataclass
class Load:
    clients: int
    output: str
    requests: int = 0
    tokens: int = 0
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    failures: dict[int, int] = field(default_factory=dict)
    client_cpu: float = 0.0
    server_cpu: float = 0.0
    batch_requests: float = 0.0  # requests per model batch (the server's metrics)

    def row(self) -> dict:
        lat = np.array(self.latencies) * 1000
        return {"clients": self.clients, "output": self.output, "requests": self.requests,
                "requests_per_s": self.requests / self.seconds, "tokens_per_s": self.tokens / self.seconds,
                "p50_ms": float(np.percentile(lat, 50)), "p99_ms": float(np.percentile(lat, 99)),
                "client_cpu_s": self.client_cpu, "server_cpu_s": self.server_cpu, "seconds": self.seconds,
                "requests_per_batch": self.batch_requests,
                "failures": self.failures}


class Connection:
    """One keep-alive HTTP/1.1 connection over asyncio streams: a light client, so that the client's own CPU
    time (it shares the cores with the server) stays small next to the server's (httpx's async pool spent ~10 ms
    of CPU per request at 64 connections here). Answers must carry Content-Length (the server's all do)."""

    def __init__(self, port: int) -> None:
        self.port = port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, path: str, body: bytes, timeout: float = 60) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                          f"Content-Length: {len(body)}\r\n\r\n".encode() + body)
        head = await asyncio.wait_for(self.reader.readuntil(b"\r\n\r\n"), timeout)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
        headers = {k.strip().lower(): v.strip() for k, v in headers.items()}
        content = await asyncio.wait_for(self.reader.readexactly(int(headers["content-length"])), timeout)
        if headers.get("connection", "").lower() == "close":
            await self.close()
        return status, content

    async def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
            self.writer = None


async def load(server: ServerProcess, sentences: list[list[str]], clients: int, output: str, count: int,
               seconds: float, encoding: str = "float") -> Load:
    """``clients`` concurrent clients, each one sentence per request, until ``count`` requests or ``seconds``."""
    result = Load(clients, output if encoding == "float" else f"{output}/{encoding}")
    next_index = 0
    connections = [Connection(server.port) for _ in range(clients)]

    async def worker(connection: Connection, deadline: float, limit: int, record: bool) -> None:
        nonlocal next_index
        while next_index < limit and time.monotonic() < deadline:
            i = next_index
            next_index += 1
            sentence = sentences[i % len(sentences)]
            body = json.dumps({"tokens": [sentence], "output": output, "encoding_format": encoding}).encode()
            start = time.perf_counter()
            status, _ = await connection.post("/v1/embed", body)
            elapsed = time.perf_counter() - start
            if not record:
                continue
            if status == 200:
                result.requests += 1
                result.tokens += len(sentence)
                result.latencies.append(elapsed)
            else:
                result.failures[status] = result.failures.get(status, 0) + 1

    warm = max(2 * clients, 16)  # connections opened, the batcher and the token cache warm
    await asyncio.gather(*(worker(c, time.monotonic() + 30, warm, False) for c in connections))
    batches0 = batch_metrics(server)
    cpu0, server0, start = client_cpu(), server.cpu_seconds(), time.perf_counter()
    deadline = time.monotonic() + seconds
    await asyncio.gather(*(worker(c, deadline, next_index + count, True) for c in connections))
    result.seconds = time.perf_counter() - start
    result.client_cpu, result.server_cpu = client_cpu() - cpu0, server.cpu_seconds() - server0
    batches1 = batch_metrics(server)
    result.batch_requests = (batches1[0] - batches0[0]) / max(1.0, batches1[1] - batches0[1])
    for c in connections:
        await c.close()
    return result


def batch_metrics(server: ServerProcess) -> tuple[float, float]:
    """The server's (requests in embedding batches, embedding batches) so far, from /metrics."""
    text = httpx.get(f"{server.url}/metrics", timeout=10).text
    values = {}
    for name in ("elmo_batch_requests_sum", "elmo_batch_requests_count"):
        line = next((x for x in text.splitlines() if x.startswith(f'{name}{{kind="{EMBED}"}}')), None)
        values[name] = float(line.split()[-1]) if line else 0.0
    return values["elmo_batch_requests_sum"], values["elmo_batch_requests_count"]


# -- malformed requests ------------------------------------------------------------------------------


def bad_requests(max_request_bytes: int, max_request_tokens: int) -> list[tuple[str, str, str, bytes, dict, int]]:
    """(name, method, path, body, headers, expected status): every client-mistake class."""
    key = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    big = json.dumps({"tokens": [["word"] * (max_request_bytes // 6)]}).encode()
    return [
        ("truncated JSON", "POST", "/v1/embed", b'{"tokens": [["a"]', key, 400),
        ("not UTF-8", "POST", "/v1/embed", b'{"tokens": [["\xff\xfe"]]}', key, 400),
        ("no API key", "POST", "/v1/embed", b'{"tokens": [["a"]]}', {"content-type": "application/json"}, 401),
        ("wrong API key", "POST", "/v1/embed", b'{"tokens": [["a"]]}', {**key, "authorization": "Bearer no"}, 401),
        ("unknown model", "POST", "/v1/models/nope:predict", b'{"instances": ["a"]}', key, 404),
        ("unknown route", "POST", "/v1/embedding", b'{"tokens": [["a"]]}', key, 404),
        ("wrong method", "GET", "/v1/embed", b"", key, 405),
        ("body over the byte limit", "POST", "/v1/embed", big, key, 413),
        ("tokens over the limit", "POST", "/v1/embed",
         json.dumps({"tokens": [["w"] * (max_request_tokens + 1)]}).encode(), key, 413),
        ("wrong type", "POST", "/v1/embed", b'{"tokens": "a sentence"}', key, 422),
        ("empty input", "POST", "/v1/embed", b'{"tokens": []}', key, 422),
        ("empty token", "POST", "/v1/embed", b'{"tokens": [["a", ""]]}', key, 422),
        ("unknown output", "POST", "/v1/embed", b'{"tokens": [["a"]], "output": "middle"}', key, 422),
        ("unknown field", "POST", "/v1/embed", b'{"tokens": [["a"]], "colour": 1}', key, 422),
        ("both inputs and tokens", "POST", "/v1/embed", b'{"inputs": ["a"], "tokens": [["a"]]}', key, 422),
        ("not an object", "POST", "/v1/embed", b"[1, 2]", key, 422),
    ]


async def mixed(server: ServerProcess, sentences: list[list[str]], top: list[np.ndarray], total: int, clients: int,
                seconds: float, max_request_bytes: int, max_request_tokens: int) -> dict:
    """``total`` requests, every tenth malformed; each answer checked; RSS after warm-up and at the end."""
    bad = bad_requests(max_request_bytes, max_request_tokens)
    key = {"authorization": f"Bearer {API_KEY}", "content-type": "application/json"}
    counts = {"good": 0, "good_correct": 0, "bad": 0, "bad_right_status": 0, "5xx": 0, "other": 0}
    wrong: list[str] = []
    by_class: dict[str, int] = {}
    worst = 0.0
    warmup = min(500, total // 10)
    rss: dict[str, int] = {}
    next_index = 0
    deadline = time.monotonic() + seconds
    async with httpx.AsyncClient(base_url=server.url, timeout=60) as client:

        async def one(i: int) -> None:
            nonlocal worst
            if i % 10 == 9:
                name, method, path, body, headers, expected = bad[(i // 10) % len(bad)]
                response = await client.request(method, path, content=body or None, headers=headers)
                counts["bad"] += 1
                ok = response.status_code == expected and "error" in response.json()
                counts["bad_right_status"] += ok
                by_class[name] = by_class.get(name, 0) + 1
                if not ok and len(wrong) < 5:
                    wrong.append(f"{name}: {response.status_code} {response.text[:200]}")
            else:
                s = i % len(sentences)
                encoding = "base64" if i % 4 == 0 else "float"
                response = await client.post("/v1/embed", headers=key, content=json.dumps(
                    {"tokens": [sentences[s]], "output": "top", "encoding_format": encoding}))
                counts["good"] += 1
                if response.status_code == 200:
                    answer = response.json()
                    if encoding == "base64":
                        got = decode_base64(answer["embeddings"][0], answer["shapes"][0])
                    else:
                        got = np.array(answer["embeddings"][0], dtype=np.float32)
                    diff = float(np.abs(got - top[s]).max()) if got.shape == top[s].shape else float("inf")
                    worst = max(worst, diff)
                    if answer["tokens"] == [sentences[s]] and diff <= TOLERANCE:
                        counts["good_correct"] += 1
                    elif len(wrong) < 5:
                        wrong.append(f"sentence {s}: differs by {diff}")
                elif len(wrong) < 5:
                    wrong.append(f"sentence {s}: {response.status_code} {response.text[:200]}")
            if response.status_code >= 500:
                counts["5xx"] += 1

        async def worker() -> None:
            nonlocal next_index
            while next_index < total and time.monotonic() < deadline:
                i = next_index
                next_index += 1
                if i == warmup:
                    rss["after_warmup_kib"] = server.status("VmRSS")
                await one(i)

        start = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(clients)))
        elapsed = time.perf_counter() - start
        rss["end_kib"] = server.status("VmRSS")
        rss["peak_kib"] = server.status("VmHWM")

        # a burst over --max-concurrent-requests: each answer 200 (correct) or 429, never a 5xx
        burst: dict[int, int] = {}

        async def burst_one(i: int) -> None:
            many = [sentences[(i * 8 + j) % len(sentences)] for j in range(8)]
            response = await client.post("/v1/embed", headers=key, content=json.dumps({"tokens": many, "output": "top"}))
            burst[response.status_code] = burst.get(response.status_code, 0) + 1
            if response.status_code == 200:
                for j, got in enumerate(response.json()["embeddings"]):
                    if float(np.abs(np.array(got, np.float32) - top[(i * 8 + j) % len(sentences)]).max()) > TOLERANCE:
                        wrong.append(f"burst request {i}: sentence {j} differs")

        await asyncio.wait_for(asyncio.gather(*(burst_one(i) for i in range(64))), 60)
    return {"requests": next_index, "seconds": elapsed, **counts, "classes": by_class, "worst_diff": worst,
            "wrong": wrong, "rss": rss, "burst": burst}


# -- huge requests, SIGTERM -----------------------------------------------------------------------------


def huge_requests(server: ServerProcess, tokens: int) -> dict:
    """A body of ``tokens`` tokens declared by Content-Length (nothing sent), then streamed in chunks."""
    body_size = len('{"tokens": [[]]}') + 4 * tokens - 1  # '"a",' per token
    hwm0 = server.status("VmHWM")
    out: dict = {"tokens": tokens, "body_bytes": body_size}
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        start = time.perf_counter()
        s.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  + f"Authorization: Bearer {API_KEY}\r\nContent-Length: {body_size}\r\n\r\n".encode())
        head = s.recv(4096).decode(errors="replace")
        out["declared"] = {"status": head.split()[1] if head else "none", "seconds": time.perf_counter() - start}
    # streamed: no Content-Length, chunks of 64 KiB until the server answers (bounded by the body's size)
    chunk = b'"a",' * (1 << 14)
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        start = time.perf_counter()
        s.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  + f"Authorization: Bearer {API_KEY}\r\nTransfer-Encoding: chunked\r\n\r\n".encode()
                  + f"{len(chunk) + 12:x}\r\n".encode() + b'{"tokens": [[' + chunk[:-1] + b"\r\n")
        s.setblocking(False)
        sent, head = len(chunk), b""
        while sent < body_size and time.perf_counter() - start < 30:
            try:
                head += s.recv(4096)
                if head:
                    break
            except BlockingIOError:
                pass
            try:
                s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
                sent += len(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                time.sleep(0.001)
        s.setblocking(True)
        s.settimeout(10)
        while not head and time.perf_counter() - start < 30:
            head += s.recv(4096)
        text = head.decode(errors="replace")
        out["streamed"] = {"status": text.split()[1] if text else "none", "seconds": time.perf_counter() - start,
                           "bytes_sent": sent}
    out["peak_rss_before_kib"], out["peak_rss_after_kib"] = hwm0, server.status("VmHWM")
    return out


async def sigterm_in_flight(server: ServerProcess, sentences: list[list[str]], top: list[np.ndarray],
                            in_flight: int = 64, per_request: int = 8) -> dict:
    """``in_flight`` requests of ``per_request`` sentences admitted, then SIGTERM: all answered? exit code, time."""
    limits = httpx.Limits(max_connections=in_flight + 1, max_keepalive_connections=in_flight + 1)
    async with httpx.AsyncClient(base_url=server.url, timeout=60, limits=limits) as client:
        async def one(i: int):
            rows = [(i * per_request + j) % len(sentences) for j in range(per_request)]
            response = await client.post("/v1/embed", json={"tokens": [sentences[r] for r in rows], "output": "top"})
            if response.status_code != 200:
                return response.status_code, False
            got = response.json()["embeddings"]
            return 200, all(float(np.abs(np.array(g, np.float32) - top[r]).max()) <= TOLERANCE
                            for g, r in zip(got, rows))

        tasks = [asyncio.ensure_future(one(i)) for i in range(in_flight)]
        depth, deadline = 0.0, time.monotonic() + 20
        while time.monotonic() < deadline:  # wait (bounded) until the server holds all of them
            text = (await client.get("/metrics")).text
            depth = next(float(line.split()[-1]) for line in text.splitlines() if line.startswith("elmo_queue_depth "))
            if depth >= in_flight:
                break
            await asyncio.sleep(0.01)
        start = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        answers = await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 30)
        answered = time.monotonic() - start
    code = await asyncio.to_thread(server.process.wait, 30)
    statuses: dict[str, int] = {}
    for a in answers:
        label = str(a[0]) if isinstance(a, tuple) else type(a).__name__
        statuses[label] = statuses.get(label, 0) + 1
    return {"in_flight_at_sigterm": depth, "statuses": statuses,
            "correct": sum(1 for a in answers if isinstance(a, tuple) and a[1]), "exit_code": code,
            "answered_s": answered, "exit_s": time.monotonic() - start}


# -- the run --------------------------------------------------------------------------------------------


def loadavg() -> str:
    return " / ".join(f"{x:.2f}" for x in os.getloadavg())


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer requests (about 2 minutes)")
    parser.add_argument("--threads", type=int, default=2, help="torch threads, in process and in the server")
    parser.add_argument("--sentences", default=None, help="a file of tokenised sentences, one a line")
    parser.add_argument("--json", default=None, help="also write the figures as JSON here")
    parser.add_argument("--server-args", default="", help="extra serve options for the load runs, e.g. "
                        "'--max-wait-ms 2'")
    args = parser.parse_args()
    quick = args.quick
    torch.set_num_threads(args.threads)
    count = 1000 if quick else 3000
    sentences, source = load_sentences(args.sentences, count)
    per_config, per_seconds = (300, 10.0) if quick else (1500, 25.0)
    total = 2000 if quick else 10000
    print(f"serve_load: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch "
          f"{torch.__version__}, {args.threads} threads; load average at start {loadavg()}")
    print(f"sentences: {len(sentences)} from {source}, {sum(map(len, sentences)):,} tokens, "
          f"{np.mean([len(s) for s in sentences]):.1f} per sentence; client and server share the cores")
    figures: dict = {"source": source, "sentences": len(sentences), "threads": args.threads, "quick": quick}

    embedder = Embedder.from_dir(None, batch_size=64)
    inproc = in_process(embedder, sentences)
    top = inproc.pop("top")
    figures["in_process"] = inproc
    print(f"\nin-process Embedder, batches of 64: {inproc['cold_tokens_per_s']:,.0f} tokens/s (token cache cold), "
          f"{inproc['warm_tokens_per_s']:,.0f} (warm); unsorted batches of 64 in arrival order (warm) "
          f"{inproc['arrival_order_tokens_per_s']:,.0f}")
    cost = encoding_cost(embedder, sentences, 4 if quick else 16)
    figures["encoding_ms_per_64"] = {k: v * 1000 for k, v in cost.items()}
    print("per batch of 64 sentences, ms: " + ", ".join(f"{k} {v * 1000:.1f}" for k, v in cost.items()))
    if not quick:
        sweep = batch_token_sweep(embedder, sentences, (128, 256, 512, 1024, 2048, 4096))
        figures["batch_tokens_sweep"] = [{"tokens": t, "tokens_per_s": r, "ms_per_batch": s * 1000}
                                         for t, r, s in sweep]
        print("embed_batch by batch size: " + ", ".join(f"{t} tokens {r:,.0f} tok/s ({s * 1000:.0f} ms)"
                                                       for t, r, s in sweep))
    del embedder

    rows = []
    extra = args.server_args.split()
    header = (f"{'server':>22} {'N':>3} {'output':>14} {'requests':>8} {'req/s':>7} {'tokens/s':>8} {'p50 ms':>7} "
              f"{'p99 ms':>7} {'client cpu':>10} {'server cpu':>10} {'req/batch':>9}")

    def show(name: str, r: Load) -> None:
        row = r.row()
        rows.append({"server": name, **row})
        print(f"{name:>22} {row['clients']:>3} {row['output']:>14} {row['requests']:>8} {row['requests_per_s']:>7.1f} "
              f"{row['tokens_per_s']:>8,.0f} {row['p50_ms']:>7.1f} {row['p99_ms']:>7.1f} {row['client_cpu_s']:>9.1f}s "
              f"{row['server_cpu_s']:>9.1f}s {row['requests_per_batch']:>9.1f}"
              + (f"  failures {row['failures']}" if row["failures"] else ""))

    print("\n" + header)
    server = ServerProcess(*extra, threads=args.threads)
    for output in ("top", "layers"):
        for clients in (1, 8, 64):
            show("default", asyncio.run(load(server, sentences, clients, output, per_config, per_seconds)))
    show("default", asyncio.run(load(server, sentences, 64, "layers", per_config, per_seconds, "base64")))
    huge = huge_requests(server, 10_000_000)
    figures["huge"] = huge
    sigterm = asyncio.run(sigterm_in_flight(server, sentences, top))
    figures["sigterm"] = sigterm

    unbatched = ServerProcess("--max-batch-requests", "1", *extra, threads=args.threads)
    show("--max-batch-requests 1", asyncio.run(load(unbatched, sentences, 64, "top", per_config, per_seconds)))
    unbatched.stop()
    figures["load"] = rows

    n64 = next(r for r in rows if r["server"] == "default" and r["clients"] == 64 and r["output"] == "top")
    one = next(r for r in rows if r["server"] != "default")
    share, speedup = n64["tokens_per_s"] / inproc["warm_tokens_per_s"], n64["tokens_per_s"] / one["tokens_per_s"]
    arrival = n64["tokens_per_s"] / inproc["arrival_order_tokens_per_s"]
    figures["targets"] = {"n64_top_vs_in_process_warm": share, "n64_top_vs_in_process_cold":
                          n64["tokens_per_s"] / inproc["cold_tokens_per_s"], "n64_top_vs_unbatched": speedup,
                          "n64_top_vs_in_process_arrival_order": arrival}
    print(f"\nN=64 top: {share:.0%} of in-process (warm cache; target >= 70%), "
          f"{n64['tokens_per_s'] / inproc['cold_tokens_per_s']:.0%} of in-process cold, "
          f"{arrival:.0%} of in-process unsorted batches of 64, "
          f"{speedup:.1f}x --max-batch-requests 1 (target >= 3x)")

    print(f"\n10 million tokens ({huge['body_bytes']:,} bytes of JSON): declared by Content-Length "
          f"{huge['declared']['status']} in {huge['declared']['seconds'] * 1000:.1f} ms; streamed "
          f"{huge['streamed']['status']} in {huge['streamed']['seconds'] * 1000:.1f} ms after "
          f"{huge['streamed']['bytes_sent']:,} bytes; server peak RSS {huge['peak_rss_before_kib'] / 1024:.0f} -> "
          f"{huge['peak_rss_after_kib'] / 1024:.0f} MiB")
    print(f"SIGTERM with {sigterm['in_flight_at_sigterm']:.0f} requests in flight (8 sentences each): "
          f"answers {sigterm['statuses']}, {sigterm['correct']} correct, exit code {sigterm['exit_code']}, "
          f"all answered {sigterm['answered_s']:.2f} s and exited {sigterm['exit_s']:.2f} s after the signal")

    limits = ("--max-request-bytes", "100000", "--max-concurrent-requests", "16")
    guarded = ServerProcess(*limits, threads=args.threads, env={"ELMO_TASKS_API_KEY": API_KEY})
    result = asyncio.run(mixed(guarded, sentences, top, total, 8, 300.0, 100000, 1024))
    code, exit_s = guarded.stop()
    result["exit_code"], result["exit_s"] = code, exit_s
    figures["mixed"] = result
    rss = result["rss"]
    print(f"\n{result['requests']:,} requests in {result['seconds']:.1f} s ({len(result['classes'])} malformed classes "
          f"of {result['bad']}): good {result['good_correct']}/{result['good']} correct (worst difference "
          f"{result['worst_diff']:.1e}), bad {result['bad_right_status']}/{result['bad']} their 4xx, "
          f"{result['5xx']} 5xx; RSS after warm-up {rss['after_warmup_kib'] / 1024:.0f} MiB, at the end "
          f"{rss['end_kib'] / 1024:.0f} MiB ({rss['end_kib'] / rss['after_warmup_kib'] - 1:+.1%}), peak "
          f"{rss['peak_kib'] / 1024:.0f} MiB; burst of 64 over --max-concurrent-requests 16: {result['burst']}; "
          f"SIGTERM: exit {code} in {exit_s:.2f} s")
    for line in result["wrong"]:
        print(f"  wrong: {line}")
    print(f"\nload average at the end {loadavg()}")
    if args.json:
        Path(args.json).write_text(json.dumps(figures, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
