"""One tick of the queued-trigger dispatcher (triggers from ``orchestrator trigger``,
``schedules trigger`` and, later, the HTTP API): dispatch before mark, oldest first.

A queued trigger's run key is ``trigger:<execution_id>``. A trigger whose run exists is marked
dispatched; others are requested (again, if the daemon died before the run was submitted).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime

from orchestrator.domain.correlation import trigger_run_key
from orchestrator.store import Store
from orchestrator.triggers.dispatch import Dispatch, RunLookup, RunState, correlation_of


@dataclass(kw_only=True)
class QueueTick:
    dispatches: list[Dispatch] = field(default_factory=list)
    marked: int = 0


def dispatch_queued_triggers(store: Store, *, now: datetime, limit: int,
                             runs: RunLookup) -> QueueTick:
    tick = QueueTick()
    # Triggers already running are marked first so they stop occupying the page.
    for _ in range(2):
        queued = store.queued_triggers(limit)
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
