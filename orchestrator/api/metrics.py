"""Prometheus metrics of one API app (its own registry): triggers accepted, deduplicated,
buffered and rejected; read from the store at scrape time, the dispatch lag (age of the oldest
trigger waiting, per environment) and the rows pruned so far, per kind."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client import CollectorRegistry, Counter, Histogram
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from orchestrator.exceptions import StoreError
from orchestrator.store.interfaces import QueueRepository, RetentionRepository


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


class _PrunedCollector(Collector):
    def __init__(self, retention: RetentionRepository) -> None:
        self.retention = retention

    def collect(self) -> Iterator[Metric]:
        counter = CounterMetricFamily("orchestrator_pruned_rows", "Rows removed by retention "
                                      "pruning (executions, blocks, alerts, keys, ...)",
                                      labels=["kind"])
        try:
            for kind, count in self.retention.prune_totals().items():
                counter.add_metric([kind], count)
        except StoreError:
            pass
        yield counter


class ApiMetrics:
    def __init__(self, queue: QueueRepository, clock: Callable[[], datetime],
                 retention: RetentionRepository | None = None) -> None:
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
        if retention is not None:
            self.registry.register(_PrunedCollector(retention))
