"""Pruning: what retention lets go, removed in small bounded batches.

1. Terminal executions finished longer ago than their environment's retention
   (``orchestrator environments set-retention``, else ``ORCHESTRATOR_RETENTION_DAYS``), with
   their block entries, queue rows, idempotency keys and alerts, ``batch_size`` at a time, each
   batch one short transaction. Their Dagster runs (an execution's own runs, and a batch run
   once none of its executions is left) are deleted first, through Dagster's own API, so a
   prune killed between the two leaves an execution whose run is gone, never a run nobody can
   find: the next prune selects the same executions again and finishes.
2. Housekeeping rows nothing can read any more (expired idempotency keys, closed debounce
   windows, queue rows of terminal executions, materialized burst-buffer rows), ``batch_size``
   of each kind at a time.

Queued and running executions are never selected, whatever their age. The work of one call is
bounded by ``max_batches`` and ``budget`` seconds, so the sensor's tick stays short and a
backlog of millions drains over many ticks without one long transaction.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from orchestrator.store import Store

DEFAULT_BATCH = 1000
# The sensor prunes half of the time at most (a pause as long as each batch took after it), so
# writes beside it keep their latency; `orchestrator db prune` by hand does not pause.
SENSOR_DUTY = 0.5


class RunPruner(Protocol):
    def delete_runs(self, execution_ids: Sequence[str], batch_ids: Sequence[str]) -> int:
        """Delete the finished Dagster runs of these executions and batches; returns how many."""
        ...


@dataclass(kw_only=True)
class PruneReport:
    removed: Counter[str] = field(default_factory=Counter)  # rows per kind
    dagster_runs: int = 0
    dry_run: bool = False
    more: bool = False  # stopped by its bounds with work left

    def as_dict(self) -> dict[str, object]:
        return {"dry_run": self.dry_run, "removed": dict(sorted(self.removed.items())),
                "dagster_runs": self.dagster_runs, "more": self.more}


def prune(store: Store, *, now: datetime, default_retention: timedelta,
          runs: RunPruner | None = None, batch_size: int = DEFAULT_BATCH,
          max_batches: int = 1_000_000, budget: float | None = None, dry_run: bool = False,
          duty: float = 1.0, monotonic: Callable[[], float] = time.monotonic,
          sleep: Callable[[float], None] = time.sleep) -> PruneReport:
    """Prune what retention lets go as of ``now`` (``dry_run``: count it, remove nothing).
    ``duty`` < 1 pauses after each batch so pruning takes at most that share of the time."""
    retention = store.retention
    report = PruneReport(dry_run=dry_run)
    if dry_run:
        report.removed["executions"] = retention.count_expired(now, default_retention)
        report.removed.update(retention.prune_housekeeping(now, batch_size, dry_run=True))
        return report
    deadline = None if budget is None else monotonic() + budget

    def bounded(batches: int) -> bool:
        return batches >= max_batches or (deadline is not None and monotonic() >= deadline)

    batches = 0
    while True:
        if bounded(batches):
            report.more = True
            return report
        expired = retention.expired(now, default_retention, batch_size)
        if not expired:
            break
        ids = [e.execution_id for e in expired]
        started = monotonic()
        if runs is not None:
            report.dagster_runs += runs.delete_runs(ids, retention.emptied_batches(ids))
        report.removed.update(retention.delete_executions(ids))
        batches += 1
        if duty < 1:
            sleep((monotonic() - started) * (1 / duty - 1))
    while True:
        if bounded(batches):
            report.more = True
            return report
        removed = retention.prune_housekeeping(now, batch_size)
        report.removed.update(removed)
        batches += 1
        if not removed or max(removed.values()) < batch_size:
            return report
