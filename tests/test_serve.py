"""``elmo-tasks serve`` against real server processes on 127.0.0.1 (the tiny fixture biLM and a small trained
tagger): every route and status code, batch invariance under concurrent mixed-length load, bounds checked
before work, auth, SIGTERM with requests in flight, and a failing batch answered 500 while the server goes on."""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import socket
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from serve_util import Server
from tasks_util import fixture_config

from elmo_tasks import TaskModel
from elmo_tasks.data.tokenize import tokenize
from elmo_tasks.dump import reduce_layers
from elmo_tasks.embedder import Embedder
from elmo_tasks.serve.batcher import Batcher
from elmo_tasks.serve.errors import ApiError
from elmo_tasks.serve.limits import Limits
from elmo_tasks.serve.payloads import decode_base64
from elmo_tasks.training import trainer

WORDS = ("the bank of the river flooded after the storm while the bank raised its rates and "
         "John Smith visited Paris on Monday with a friend from Google").split()
SENTENCES = ["The bank raised its rates.", "We sat on the bank of the river.", "John Smith visited Paris on Monday."]


@pytest.fixture(scope="module")
def tagger(tmp_path_factory):
    """A small finished ELMo + GloVe CRF tagger run (the task-model tests' fixture config)."""
    run = tmp_path_factory.mktemp("runs") / "ner"
    config = fixture_config("wnut16_elmo", tmp_path_factory.mktemp("elmo-cache"), **{
        "dataset.max_examples": 40, "trainer.epochs": 1, "trainer.patience": 5})
    trainer.run(config, run, progress=False, echo=False)
    return run


@pytest.fixture(scope="module")
def server(tagger):
    server = Server("--model", "fixture", "--task", f"ner={tagger}", "--max-request-tokens", "300",
                    "--max-request-bytes", "20000", "--max-wait-ms", "5")
    yield server
    assert server.stop() == 0


@pytest.fixture(scope="module")
def embedder():
    return Embedder.from_dir("fixture")


def sentence(rng: random.Random) -> list[str]:
    return [rng.choice(WORDS) for _ in range(rng.randint(1, 40))]


def test_embed_shapes_outputs_and_encodings(server, embedder):
    with server.client() as client:
        answer = client.post("/v1/embed", json={"inputs": SENTENCES[:2]}).json()
        assert answer["tokens"] == [tokenize(s) for s in SENTENCES[:2]]
        alone = embedder.embed_batch([answer["tokens"][0]])[0]
        got = np.array(answer["embeddings"][0], dtype=np.float32)
        assert got.shape == (3, 6, 32) and np.abs(got - alone).max() <= 1e-6
        for output, pool, shape in (("top", "none", (6, 32)), ("average", "none", (6, 32)), ("top", "mean", (32,)),
                                    ("layers", "mean", (3, 32))):
            body = {"tokens": [answer["tokens"][0]], "output": output, "pool": pool}
            got = np.array(client.post("/v1/embed", json=body).json()["embeddings"][0], dtype=np.float32)
            layers = {"layers": "all"}.get(output, output)
            assert got.shape == shape and np.abs(got - reduce_layers(alone, layers, pool)).max() <= 1e-6
        packed = client.post("/v1/embed", json={"tokens": [["a", "b"], []], "encoding_format": "base64"}).json()
        arrays = [decode_base64(t, s) for t, s in zip(packed["embeddings"], packed["shapes"])]
        assert arrays[0].shape == (3, 2, 32) and arrays[1].shape == (3, 0, 32)
        assert np.abs(arrays[0] - embedder.embed_batch([["a", "b"]])[0]).max() <= 1e-6


@pytest.mark.parametrize("body, status, field", [
    ('{"inputs": ', 400, "body"),
    ("[1, 2]", 422, "body"),
    ('{"inputs": [3]}', 422, "inputs[0]"),
    ('{"inputs": []}', 422, "inputs"),
    ('{"inputs": ["a"], "tokens": [["a"]]}', 422, "inputs"),
    ('{"tokens": [["a", ""]]}', 422, "tokens[0][1]"),
    ('{"inputs": ["a"], "output": "middle"}', 422, "output"),
    ('{"inputs": ["a"], "colour": 1}', 422, "colour"),
    (json.dumps({"tokens": [["w"] * 301]}), 413, "tokens"),
    (json.dumps({"inputs": ["w " * 11000]}), 413, "body"),
])
def test_bad_embed_requests_get_their_status_naming_the_field(server, body, status, field):
    with server.client() as client:
        response = client.post("/v1/embed", content=body, headers={"content-type": "application/json"})
    assert response.status_code == status, response.text
    assert response.json()["field"] == field and response.json()["error"], response.text


def test_a_huge_declared_body_is_refused_before_it_is_sent(server):
    """10 million tokens' worth of Content-Length: 413 at once, without the body being sent."""
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(b"POST /v1/embed HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                  b"Content-Length: 40000000\r\n\r\n")
        start = time.monotonic()
        head = s.recv(4096).decode()
    assert head.startswith("HTTP/1.1 413") and time.monotonic() - start < 5, head


def test_routes_models_health_metrics_docs_and_404s(server, tagger):
    with server.client() as client:
        assert client.get("/health").json() == {"status": "ready"}
        models = client.get("/v1/models").json()
        assert models["bilm"]["name"] == "fixture" and len(models["bilm"]["digest"]) == 64
        assert models["models"][0]["name"] == "ner" and models["models"][0]["task"] == "tagging"
        assert "O" in models["models"][0]["labels"]
        assert client.get("/docs").status_code == 200
        assert "/v1/embed" in client.get("/openapi.json").json()["paths"]
        missing = client.post("/v1/models/nope:predict", json={"instances": ["a"]})
        assert missing.status_code == 404 and missing.json()["field"] == "name"
        assert client.get("/v1/nothing").status_code == 404
        assert client.get("/v1/embed").status_code == 405
        metrics = client.get("/metrics").text
        assert 'elmo_requests_total{route="/v1/models",status="200"}' in metrics
        assert "elmo_batch_requests_bucket" in metrics and "elmo_queue_depth" in metrics


def test_predict_equals_the_task_model_alone(server, tagger):
    model = TaskModel.load(tagger)
    items = [SENTENCES[2], ["Paris", "is", "nice"], {"text": "Google hired John ."}, {"tokens": ["Monday"]}]
    with server.client() as client:
        answer = client.post("/v1/models/ner:predict", json={"instances": items})
        assert answer.status_code == 200, answer.text
        for item, got in zip(items, answer.json()["predictions"]):
            alone = model.predict([item])[0]
            assert got["tokens"] == alone["tokens"] and got["tags"] == alone["tags"]
            assert np.allclose(np.array(got["tag_probabilities"]), np.array(alone["tag_probabilities"]), atol=1e-6)
            assert [(s["label"], s["start"], s["end"]) for s in got["spans"]] == \
                [(s["label"], s["start"], s["end"]) for s in alone["spans"]]
        bad = client.post("/v1/models/ner:predict", json={"instances": ["fine", {"tokens": 3}]})
        assert bad.status_code == 422 and "item 1" in bad.json()["error"], bad.text
        assert client.post("/v1/models/ner:predict", json={"instances": []}).status_code == 422


def test_answers_do_not_depend_on_batch_mates_under_concurrent_load(server, embedder, tagger):
    """48 embedding and 16 prediction requests of mixed lengths from 16 threads: each equals its input alone."""
    rng = random.Random(0)
    requests = [[sentence(rng) for _ in range(rng.randint(1, 3))] for _ in range(48)]
    model = TaskModel.load(tagger)
    tagged = [sentence(rng) for _ in range(16)]

    def embed(sentences):
        with server.client() as client:
            return client.post("/v1/embed", json={"tokens": sentences}).json()["embeddings"]

    def predict(tokens):
        with server.client() as client:
            return client.post("/v1/models/ner:predict", json={"instances": [tokens]}).json()["predictions"][0]

    with ThreadPoolExecutor(16) as pool:
        embedded = list(pool.map(embed, requests))
        predicted = list(pool.map(predict, tagged))
    worst = 0.0
    for sentences, arrays in zip(requests, embedded):
        for tokens, got in zip(sentences, arrays):
            worst = max(worst, float(np.abs(np.array(got, np.float32) - embedder.embed_batch([tokens])[0]).max()))
    assert worst <= 1e-6
    for tokens, got in zip(tagged, predicted):
        alone = model.predict([tokens])[0]
        assert got["tags"] == alone["tags"]
        assert np.allclose(got["tag_probabilities"], alone["tag_probabilities"], atol=1e-6)
    with server.client() as client:
        metrics = client.get("/metrics").text
    # some batches held several requests (the batching ran), none more than the bound
    sums = [line for line in metrics.splitlines() if line.startswith('elmo_batch_requests_sum{kind="embed"}')]
    counts = [line for line in metrics.splitlines() if line.startswith('elmo_batch_requests_count{kind="embed"}')]
    assert float(sums[0].split()[-1]) > float(counts[0].split()[-1])


def test_auth_queue_bound_and_sigterm_with_requests_in_flight():
    """--api-key: 401 without it on every route but /health. A full queue: 429. SIGTERM with 6 requests in flight:
    all answered 200, exit 0."""
    server = Server("--model", "fixture", "--max-concurrent-requests", "6", "--max-wait-ms", "1500",
                    env={"ELMO_TASKS_API_KEY": "s3cret"})
    try:
        with server.client() as client:
            assert client.get("/health").status_code == 200
            for method, path in (("GET", "/v1/models"), ("GET", "/metrics"), ("POST", "/v1/embed")):
                refused = client.request(method, path, json={"inputs": ["a"]})
                assert refused.status_code == 401 and refused.json()["error_type"] == "unauthorized"
            wrong = client.get("/v1/models", headers={"Authorization": "Bearer nope"})
            assert wrong.status_code == 401
        key = {"Authorization": "Bearer s3cret"}
        answers: list = []

        def send(i):
            with server.client(headers=key) as client:
                answers.append(client.post("/v1/embed", json={"tokens": [["w"] * (i + 1)]}))

        threads = [threading.Thread(target=send, args=(i,)) for i in range(6)]
        for t in threads:
            t.start()
        deadline = time.monotonic() + 10
        with server.client(headers=key) as client:  # the six wait up to 1.5 s for company: the queue is full
            while "elmo_queue_depth 6.0" not in client.get("/metrics").text and time.monotonic() < deadline:
                time.sleep(0.05)
            full = client.post("/v1/embed", json={"inputs": ["a"]})
        assert full.status_code == 429 and full.json()["error_type"] == "queue_full", full.text
        code = server.stop()
        for t in threads:
            t.join(20)
        assert code == 0
        assert sorted(len(r.json()["tokens"][0]) for r in answers) == [1, 2, 3, 4, 5, 6]
    finally:
        if server.process.poll() is None:
            server.process.kill()


def test_a_failing_batch_answers_500_and_the_worker_goes_on():
    """The batcher itself, with a runner that fails on one item: that batch's requests get 500, later ones run;
    a long request is split over batches of at most max_batch_tokens."""
    batches: list[list[str]] = []

    def runner(kind, items):
        batches.append(list(items))
        if "boom" in items:
            raise RuntimeError("boom")
        return [item.upper() for item in items]

    async def main():
        batcher = Batcher(runner, Limits(max_batch_tokens=4, max_wait_ms=0, max_batch_requests=8))
        batcher.start()
        try:
            with pytest.raises(ApiError) as failed:
                await batcher.submit("k", ["boom"], [1])
            assert failed.value.status == 500 and "boom" in failed.value.message
            split = await batcher.submit("k", list("abcdefghij"), [1] * 10)
            assert split == list("ABCDEFGHIJ")
        finally:
            batcher.stop()

    asyncio.run(asyncio.wait_for(main(), 30))
    assert batches[0] == ["boom"] and all(len(b) <= 4 for b in batches[1:]) and len(batches) == 4


def model_process(server: Server) -> int:
    """The pid of the server's model process (its spawned child that is not multiprocessing's resource tracker)."""
    for task in Path(f"/proc/{server.process.pid}/task").iterdir():
        for pid in (task / "children").read_text().split():
            command = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ")
            if b"multiprocessing" in command and b"resource_tracker" not in command:
                return int(pid)
    raise AssertionError("no model process")


def test_the_model_runs_in_its_own_process_and_a_dead_one_is_replaced(embedder):
    """The models live in one child process; killed, the next batch starts a new one and the server goes on."""
    server = Server("--model", "fixture")
    try:
        first = model_process(server)
        os.kill(first, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while Path(f"/proc/{first}").exists() and b"zombie" not in Path(f"/proc/{first}/status").read_bytes() \
                and time.monotonic() < deadline:
            time.sleep(0.05)
        with server.client() as client:
            answer = client.post("/v1/embed", json={"tokens": [["a", "bank"]]})
            assert answer.status_code in (200, 500), answer.text
            again = client.post("/v1/embed", json={"tokens": [["a", "bank"]]})
            assert again.status_code == 200, again.text
            got = np.array(again.json()["embeddings"][0], dtype=np.float32)
            assert np.abs(got - embedder.embed_batch([["a", "bank"]])[0]).max() <= 1e-6
            assert client.get("/health").status_code == 200
        assert model_process(server) != first
    finally:
        assert server.stop() == 0
