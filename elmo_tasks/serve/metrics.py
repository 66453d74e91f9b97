"""The Prometheus metrics of one server (its own registry, so several apps in one process do not clash)."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)


class Metrics:
    """Requests by route and status, latency, queue depth, batch sizes and tokens."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter("elmo_requests", "HTTP requests answered", ["route", "status"], registry=self.registry)
        self.latency = Histogram("elmo_request_seconds", "time from request to answer", ["route"],
                                 buckets=LATENCY_BUCKETS, registry=self.registry)
        self.queue_depth = Gauge("elmo_queue_depth", "requests admitted and not yet answered", registry=self.registry)
        self.batch_requests = Histogram("elmo_batch_requests", "requests sharing a model batch", ["kind"],
                                        buckets=BATCH_BUCKETS, registry=self.registry)
        self.tokens = Counter("elmo_tokens", "tokens run through a model", ["kind"], registry=self.registry)
        self.batches = Counter("elmo_batches", "model batches run", ["kind"], registry=self.registry)

    def on_batch(self, kind: str, requests: int, tokens: int) -> None:
        self.batch_requests.labels(kind).observe(requests)
        self.tokens.labels(kind).inc(tokens)
        self.batches.labels(kind).inc()

    def render(self) -> bytes:
        return generate_latest(self.registry)
