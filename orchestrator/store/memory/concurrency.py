"""Concurrency limits in memory (the SQL twin: ``concurrency.py``): one transaction at a time,
so a grant's count and marks are atomic as the SQL store's are."""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import suppress
from datetime import datetime

from orchestrator.domain.concurrency import Candidate, KeyScope, grantable, key_limit
from orchestrator.domain.records import ExecutionStatus, QueuedTrigger, TriggerStatus
from orchestrator.exceptions import NotFound
from orchestrator.store.memory.catalog import read_workflow
from orchestrator.store.memory.state import MemoryState, Row


def in_flight(row: Row) -> bool:
    """Running, or queued and handed to a run (a slot granted, or claimed by a batch run)."""
    return row["status"] == ExecutionStatus.RUNNING.value or (
        row["status"] == ExecutionStatus.QUEUED.value
        and (row["slot_at"] is not None or row["run_batch_id"] is not None))


class MemoryConcurrency:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    def set_limit(self, environment: str, max_concurrent: int | None, now: datetime) -> None:
        with self.state.transaction() as s:
            row = s.table("environments").get(environment, {"retention_seconds": None})
            s.put("environments", environment, {**row, "environment": environment,
                                                 "max_concurrent": max_concurrent,
                                                 "updated_at": now})

    def limits(self) -> dict[str, int]:
        with self.state.lock:
            return {name: row["max_concurrent"]
                    for name, row in self.state.table("environments").items()
                    if row.get("max_concurrent") is not None}

    def in_flight(self) -> dict[str, int]:
        with self.state.lock:
            return dict(Counter(r["environment"] for r in self.state.table("executions").values()
                                if in_flight(r)))

    def held(self, limit: int) -> list[QueuedTrigger]:
        with self.state.lock:
            executions = self.state.table("executions")
            rows = [q for q in self.state.table("queued").values()
                    if q["status"] == TriggerStatus.QUEUED.value and q["run_batch_id"] is None
                    and (e := executions.get(q["execution_id"])) is not None
                    and e["status"] == ExecutionStatus.QUEUED.value and e["slot_at"] is not None
                    and e["run_batch_id"] is None]
        rows.sort(key=lambda r: (-r["priority"], r["created_at"], r["execution_id"]))
        return [QueuedTrigger(**{**r, "status": TriggerStatus(r["status"])})
                for r in rows[:limit]]

    def grant(self, candidates: Sequence[QueuedTrigger], *, env_limits: Mapping[str, int],
              now: datetime) -> list[str]:
        with self.state.transaction() as s:
            executions = s.table("executions")
            waiting = [Candidate(execution_id=c.execution_id, environment=c.environment,
                                 workflow=c.workflow, concurrency_key=c.concurrency_key,
                                 holds_slot=executions[c.execution_id]["slot_at"] is not None)
                       for c in candidates if c.execution_id in executions
                       and executions[c.execution_id]["status"] == ExecutionStatus.QUEUED.value]
            flying = [r for r in executions.values() if in_flight(r)]
            key_counts: Counter[KeyScope] = Counter(
                (r["environment"], r["workflow"], r["concurrency_key"]) for r in flying
                if r["concurrency_key"] is not None)
            pairs = {(c.environment, c.workflow) for c in waiting if c.concurrency_key}
            key_limits = {}
            for env, name in pairs:
                # a missing workflow: its executions fail alone when they start
                with suppress(NotFound):
                    key_limits[(env, name)] = key_limit(read_workflow(s, env, name).document)
            granted = grantable(waiting, env_limits=env_limits,
                                key_limits=key_limits,
                                env_in_flight=Counter(r["environment"] for r in flying),
                                key_in_flight=key_counts)
            chosen = set(granted)
            for c in waiting:
                if c.execution_id in chosen and not c.holds_slot:
                    s.update("executions", c.execution_id, slot_at=now)
        return granted
