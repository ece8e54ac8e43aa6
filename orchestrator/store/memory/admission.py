"""Trigger admission and reads with buffer fallback, in memory (the SQL twin: ``ingest.py``,
whose docstring states the rules; this follows it step by step)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from datetime import datetime
from functools import partial
from types import SimpleNamespace

from orchestrator.domain.burst import BurstWindow
from orchestrator.domain.ingest import (
    Admission,
    AdmissionJob,
    Debounce,
    DebounceMode,
    TriggerRequest,
)
from orchestrator.domain.records import ExecutionStatus, Outcome, TriggerStatus
from orchestrator.exceptions import (
    InvalidInput,
    NotFound,
    OrchestratorError,
    Problem,
    StoreError,
)
from orchestrator.store.ingest import (
    RECEIPT_RETENTION,
    buffer_row,
    buffered_visible,
    replayed,
    to_buffer,
)
from orchestrator.store.interfaces import JobResult, Visible
from orchestrator.store.memory.executions import (
    MemoryExecutions,
    insert_execution,
    newest_first,
)
from orchestrator.store.memory.state import Duplicate, MemoryState, Refused, Row, fresh


def _buffered(row: Row) -> Visible:
    return buffered_visible(SimpleNamespace(**{**row, "payload": fresh(row["payload"])}))


class MemoryAdmission:
    def __init__(self, state: MemoryState, executions: MemoryExecutions) -> None:
        self.state = state
        self.executions = executions

    def admit(self, requests: Sequence[TriggerRequest], now: datetime, *,
              buffer: Sequence[bool] | None = None,
              receipt: tuple[str, str] | None = None) -> list[Admission]:
        c = requests[0].correlation
        job = AdmissionJob(environment=c.environment, workflow=c.workflow,
                           requests=tuple(requests), now=now, receipt=receipt,
                           buffer=tuple(buffer) if buffer is not None else (False,) * len(requests))
        [result] = self.admit_jobs([job])
        if isinstance(result, OrchestratorError):
            raise result
        return result

    def warm_up(self, now: datetime) -> None:
        """Nothing to prepare in memory."""

    def writer_turn(self) -> AbstractContextManager[object]:
        """No other process writes here."""
        return nullcontext()

    def admit_jobs(self, jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        try:
            with self.state.transaction():
                return self._admit_jobs(jobs)
        except OrchestratorError as exc:
            if len(jobs) != 1:
                raise
            return [exc]
        except Refused:
            if len(jobs) == 1:
                return [StoreError("accept the trigger", transient=False)]
        return [result for job in jobs for result in self.admit_jobs([job])]

    def _admit_jobs(self, jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        results: list[JobResult | None] = [None] * len(jobs)
        workflows = self.state.table("workflows")
        for i, job in enumerate(jobs):
            row = workflows.get((job.environment, job.workflow))
            if row is None or row["deleted_at"] is not None:
                results[i] = NotFound("workflow", f"{job.environment}/{job.workflow}")
        windows = self._windows([job for i, job in enumerate(jobs) if results[i] is None],
                                jobs[0].now)
        for i, job in enumerate(jobs):
            if results[i] is not None:
                continue
            if job.plain:
                results[i] = [self._admit_one(request, job.now,
                                              partial(to_buffer, windows, job, index))
                              for index, request in enumerate(job.requests)]
                continue
            try:
                with self.state.transaction():
                    results[i] = self._admit_job(job, windows)
            except OrchestratorError as exc:
                if len(jobs) == 1:
                    raise
                results[i] = exc
        trips, counts = self.state.table("burst_trips"), self.state.table("burst_counts")
        for environment, window in windows.items():
            if window.admitted:
                key = (environment, window.policy.bucket(window.now))
                counts[key] = {"bucket": key[1], "count": counts.get(key, {"count": 0})["count"]
                               + window.admitted}
            until = window.trip_to_store()
            stored = trips.get(environment)
            if until is not None and (stored is None or stored["tripped_until"] < until):
                trips[environment] = {"tripped_until": until}
        return [result for result in results if result is not None]

    def _windows(self, jobs: Sequence[AdmissionJob], now: datetime) -> dict[str, BurstWindow]:
        """As ``store/burst.py``'s: the sum of the environment's counters in the window (one
        server here, which reads it in every transaction)."""
        windows = {}
        counts = self.state.table("burst_counts")
        for environment, policy in sorted({j.environment: j.gate for j in jobs
                                           if j.gate is not None}.items()):
            first = BurstWindow.first_bucket(policy, now)
            for key in [key for key in counts if key[0] == environment and key[1] < first]:
                del counts[key]
            buckets = [(bucket, row["count"]) for (env, bucket), row in counts.items()
                       if env == environment]
            trip = self.state.table("burst_trips").get(environment)
            windows[environment] = BurstWindow(
                policy, now, counted=BurstWindow.count(policy, now, buckets),
                tripped_until=trip["tripped_until"] if trip else None)
        return windows

    def _admit_job(self, job: AdmissionJob, windows: dict[str, BurstWindow]) -> list[Admission]:
        if job.receipt is not None:
            self._record_receipt(job)
        for index, request in enumerate(job.requests):
            parent = request.correlation.parent_execution_id
            if parent is not None and not self._exists(parent, job.environment):
                field = f"items.{index}.parent_execution_id" if job.batched \
                    else "parent_execution_id"
                raise InvalidInput(Problem(field=field, message=f"no execution {parent!r} in "
                                           "this environment"), subject="trigger")
        return [self._admit_one(request, job.now, partial(to_buffer, windows, job, index))
                for index, request in enumerate(job.requests)]

    def _exists(self, execution_id: str, environment: str) -> bool:
        return any((row := self.state.table(table).get(execution_id)) is not None
                   and row["environment"] == environment for table in ("executions", "buffer"))

    def _record_receipt(self, job: AdmissionJob) -> None:
        assert job.receipt is not None
        receipts, now = self.state.table("receipts"), job.now
        for key in [k for k, r in receipts.items()
                    if r["received_at"] < now - RECEIPT_RETENTION]:
            del receipts[key]
        try:
            self.state.insert("receipts", job.receipt, {
                "received_at": now, "execution_id": job.requests[0].correlation.execution_id})
        except Duplicate:
            raise replayed(receipts[job.receipt]["execution_id"]) from None

    def _admit_one(self, request: TriggerRequest, now: datetime,
                   buffering: Callable[[], bool]) -> Admission:
        c = request.correlation
        if c.idempotency_key is not None:
            existing = self._claim(request, now)
            if existing is not None:
                return existing
        buffered = buffering()
        if request.debounce is not None:
            admission = self._debounce(request, request.debounce, now)
            if c.idempotency_key is not None and admission.execution_id != c.execution_id:
                self.state.update("idempotency", (c.environment, c.workflow, c.idempotency_key),
                                  execution_id=admission.execution_id)
            return admission
        if buffered:
            self.state.insert("buffer", c.execution_id, buffer_row(request, now))
            return Admission(execution_id=c.execution_id, request_id=c.request_id,
                             buffered=True)
        insert_execution(self.state, c, now, enqueue=True, batch_id=request.batch_id,
                         not_before=request.not_before, expires_at=request.expires_at,
                         priority=request.priority, concurrency_key=request.concurrency_key,
                         pinned_version=request.pinned_version)
        return Admission(execution_id=c.execution_id, request_id=c.request_id)

    def _claim(self, request: TriggerRequest, now: datetime) -> Admission | None:
        """None when this request now holds the key; else the holder's admission."""
        c = request.correlation
        key = (c.environment, c.workflow, c.idempotency_key)
        claim = dict(execution_id=c.execution_id, expires_at=now + request.idempotency_ttl,
                     created_at=now)
        row = self.state.table("idempotency").get(key)
        if row is not None:
            holder = self._holder(row["execution_id"])
            # Expiry is honoured here, on the write side: an expired claim is taken over.
            if row["expires_at"] > now and holder is not None \
                    and holder[1] != Outcome.PIPELINE_FAULT.value:
                return Admission(execution_id=row["execution_id"], request_id=holder[0],
                                 deduplicated=True)
        self.state.put("idempotency", key, claim)
        return None

    def _holder(self, execution_id: str) -> tuple[str, str | None] | None:
        row = self.state.table("executions").get(execution_id)
        if row is not None:
            return row["request_id"], row["outcome"]
        entry = self.state.table("buffer").get(execution_id)
        return (entry["request_id"], None) if entry is not None else None

    def _debounce(self, request: TriggerRequest, debounce: Debounce, now: datetime
                  ) -> Admission:
        c = request.correlation
        key = (c.environment, c.workflow, debounce.key)
        row = self.state.table("debounces").get(key)
        if row is not None:
            start, _ = debounce.due(row["first_at"], now)
            queued = self.state.table("queued").get(row["execution_id"])
            # Only a window whose execution is still waiting (not yet due) is joined.
            if queued is not None and queued["status"] == TriggerStatus.QUEUED.value \
                    and queued["available_at"] is not None and queued["available_at"] > now:
                self.state.update("queued", row["execution_id"], available_at=start)
                execution = self.state.table("executions")[row["execution_id"]]
                if debounce.mode is DebounceMode.TRAILING \
                        and execution["status"] == ExecutionStatus.QUEUED.value:
                    self.state.update("executions", row["execution_id"], payload=c.payload)
                self.state.update("debounces", key, updated_at=now)
                return Admission(execution_id=row["execution_id"],
                                 request_id=execution["request_id"], debounced=True)
        start, latest = debounce.due(now, now)
        insert_execution(self.state, c, now, enqueue=True, available_at=start,
                         batch_id=request.batch_id)
        self.state.put("debounces", key, dict(
            execution_id=c.execution_id, mode=debounce.mode.value, first_at=now,
            latest_at=latest, updated_at=now))
        return Admission(execution_id=c.execution_id, request_id=c.request_id)

    # --------------------------------------------------------------------------------- reads

    def _expiry(self, execution_id: str) -> datetime | None:
        return next((r["expires_at"] for r in self.state.table("idempotency").values()
                     if r["execution_id"] == execution_id), None)

    def find(self, execution_id: str, environment: str | None) -> Visible:
        with self.state.lock:
            row = self.state.table("executions").get(execution_id)
            if row is not None and environment in (None, row["environment"]):
                return Visible(execution=self.executions.get_execution(execution_id),
                               key_expires_at=self._expiry(execution_id))
            entry = self.state.table("buffer").get(execution_id)
            if entry is None or environment not in (None, entry["environment"]):
                raise NotFound("execution", execution_id)
            return _buffered(entry)

    def visible(self, environment: str, *, workflow: str | None = None,
                status: str | None = None, limit: int = 50) -> list[Visible]:
        with self.state.lock:
            records = self.executions.list_executions(environment=environment,
                                                      workflow=workflow, status=status,
                                                      limit=limit)
            found = [Visible(execution=r, key_expires_at=self._expiry(r.execution_id)
                             if r.idempotency_key is not None else None) for r in records]
            if status in (None, ExecutionStatus.QUEUED.value):
                entries = [r for r in self.state.table("buffer").values()
                           if r["environment"] == environment and workflow in (None,
                                                                               r["workflow"])]
                found.extend(_buffered(r) for r in newest_first(entries)[:limit])
        found.sort(key=lambda v: (v.execution.created_at, v.execution.execution_id),
                   reverse=True)
        return found[:limit]
