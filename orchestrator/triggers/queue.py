"""One tick of the queued-trigger dispatcher (triggers from ``orchestrator trigger``,
``schedules trigger`` and the HTTP API): dispatch before mark, fair across environments.

1. Entries buffered longer than ``stuck_after`` raise a ``buffer_stuck`` alert through the
   :class:`~orchestrator.alerts.Alerter` (a row, an ERROR line, the webhook when set), once
   each; then the burst buffer is drained into the queue (bounded by ``limit``, round robin
   across environments).
2. A page of at most ``limit`` queued triggers is read round robin across environments (each
   environment's oldest first), so one tenant's burst delays another's trigger by at most a
   tick. Debounced triggers wait for their ``available_at``.
3. A trigger whose run exists is marked dispatched; others are requested (again, if the daemon
   died before the run was submitted). Run key ``trigger:<execution_id>``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta

from orchestrator.alerts import Alerter
from orchestrator.domain.correlation import trigger_run_key
from orchestrator.store import Store
from orchestrator.store.fairness import FairQueue
from orchestrator.triggers.dispatch import Dispatch, RunLookup, RunState, correlation_of

DEFAULT_STUCK_AFTER = timedelta(minutes=10)


@dataclass(kw_only=True)
class QueueTick:
    dispatches: list[Dispatch] = field(default_factory=list)
    marked: int = 0
    drained: int = 0
    stuck_alerts: int = 0


def dispatch_queued_triggers(store: Store, *, now: datetime, limit: int, runs: RunLookup,
                             alerter: Alerter,
                             stuck_after: timedelta = DEFAULT_STUCK_AFTER) -> QueueTick:
    tick = QueueTick()
    fair = FairQueue(store)
    for entry in fair.stuck(now, stuck_after):
        alerter.buffer_stuck(entry)
        tick.stuck_alerts += 1
    tick.drained = len(fair.drain(limit))
    # Triggers already running are marked first so they stop occupying the page.
    for _ in range(2):
        queued = fair.queued(now, limit)
        keys = {q.execution_id: trigger_run_key(q.execution_id) for q in queued}
        states = runs(list(keys.values()))
        started = [e for e, k in keys.items() if states.get(k) is RunState.SUBMITTED]
        tick.marked += store.mark_dispatched(started, now)
        if not started:
            break
    pending = [q.execution_id for q in queued
               if states.get(keys[q.execution_id]) is not RunState.SUBMITTED]
    records = store.executions_by_id(pending)
    for execution_id in pending:
        tick.dispatches.append(Dispatch(run_key=keys[execution_id],
                                        correlation=correlation_of(records[execution_id])))
    return tick
