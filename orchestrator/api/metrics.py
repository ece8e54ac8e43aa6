"""Prometheus metrics of one API app (its own registry): triggers accepted, deduplicated,
buffered and rejected, and dispatch lag (age of the oldest trigger waiting, per environment,
read from the store at scrape time)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator.exceptions import StoreError
from orchestrator.store.interfaces import QueueRepository


class _LagCollector(Collector):
    def __init__(self, queue: QueueRepository, clock: Callable[[], datetime]) -> None:
        self.queue = queue
        self.clock = clock

    def collect(self) -> Iterator[Metric]:
        gauge = GaugeMetricFamily("orchestrator_dispatch_lag_seconds",
                                  "Age of the oldest trigger waiting for dispatch (queue or "
                                  "burst buffer)", labels=["environment"])
        try:
            for environment, seconds in sorted(self.queue.lag(self.clock()).items()):
                gauge.add_metric([environment], seconds)
        except StoreError:
            pass  # store down: no sample rather than a failed scrape
        yield gauge


class ApiMetrics:
    def __init__(self, queue: QueueRepository, clock: Callable[[], datetime]) -> None:
        self.registry = CollectorRegistry()
        self.accepted = Counter("orchestrator_triggers_accepted", "Triggers accepted (a new "
                                "execution)", ["environment", "source"], registry=self.registry)
        self.deduplicated = Counter("orchestrator_triggers_deduplicated", "Triggers answered "
                                    "with an existing execution (idempotency key or debounce)",
                                    ["environment"], registry=self.registry)
        self.buffered = Counter("orchestrator_triggers_buffered", "Triggers sent to the burst "
                                "buffer", ["environment"], registry=self.registry)
        self.rejected = Counter("orchestrator_requests_rejected", "Requests answered with an "
                                "error", ["code"], registry=self.registry)
        self.latency = Histogram("orchestrator_api_request_seconds", "Request handling time",
                                 ["route"], registry=self.registry)
        self.registry.register(_LagCollector(queue, clock))
