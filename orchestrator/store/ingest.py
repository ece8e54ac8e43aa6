"""Admitting triggers: the idempotency claim, debounce, the burst buffer and the queue. A call's
triggers (one, or a whole batch) are admitted all or none, so a failure leaves nothing half
written; several calls' jobs may share one transaction (group commit, each job in a savepoint,
plain ones inserted in bulk). While an environment is tripped with more than half its hold to
go, its plain jobs are buffered by one statement, guarded by what the full transaction would
read (the workflows live, the trip in the store), with no other round trip; on PostgreSQL,
plain jobs are queued so too while nothing trips (the workflows live, no trip, room in the
window), and the full transaction decides whenever a guard does not hold. Reads of executions
fall back to the burst buffer, so a buffered execution is visible at once.

The idempotency claim is the primary key of ``orch_idempotency_keys``: of concurrent requests
with one key, one insert wins and every other caller reads the winner's execution. An expired
claim, or one whose execution ended in a pipeline fault, is taken over with a compare-and-set.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager
from datetime import datetime, timedelta
from functools import partial
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from orchestrator.domain.burst import BurstPolicy, BurstWindow
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.ingest import (
    Admission,
    AdmissionJob,
    Debounce,
    DebounceMode,
    TriggerRequest,
)
from orchestrator.domain.records import ExecutionStatus, Outcome, TriggerStatus
from orchestrator.domain.retry import CLAIM_DELAYS, retry_call
from orchestrator.exceptions import (
    Conflict,
    InvalidInput,
    NotFound,
    OrchestratorError,
    Problem,
    StoreError,
)
from orchestrator.store import prepared
from orchestrator.store import tables as t
from orchestrator.store.burst import (
    BurstCounts,
    PendingCounts,
    live_with_windows,
    read_windows,
    store_windows,
    warm_up_counts,
)
from orchestrator.store.executions import execution_row, insert_execution, queued_row
from orchestrator.store.guarded import (
    GUARDED_PAIRS_MAX,
    GUARDED_ROWS_MAX,
    buffer_while_tripped,
    queue_while_open,
)
from orchestrator.store.interfaces import (
    BufferedTrigger,
    ExecutionRepository,
    JobResult,
    Visible,
)
from orchestrator.store.prepared import INSERT_ROWS_MAX
from orchestrator.store.uow import Database, store_error, translated

__all__ = ["RECEIPT_RETENTION", "IngestStore", "JobResult", "replayed"]

# A delivery's webhook-id is refused for this long after it was accepted: a sender's retries
# (a fresh timestamp, the same webhook-id) within it are answered 409 with the first execution.
RECEIPT_RETENTION = timedelta(hours=24)


def replayed(execution_id: str | None) -> Conflict:
    """A delivery whose webhook-id (legacy: signature) was accepted before."""
    made = f"; the first delivery made execution {execution_id}" if execution_id else ""
    return Conflict(f"this webhook delivery was already accepted (replay refused: its "
                    f"webhook-id was seen before){made}", execution_id=execution_id)


def _contended() -> StoreError:
    """A claim that lost a race (transient: tried again, and the caller may retry)."""
    return StoreError("claim the idempotency key (too much contention)")


class IngestStore:
    """The admission repository (trigger admission, and execution reads with buffer fallback)
    on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database, executions: ExecutionRepository) -> None:
        self.db = db
        self.executions = executions
        # The trip ends this process last read, by environment: a hint that the next plain
        # triggers may be buffered by one guarded statement (which checks the store).
        self._tripped: dict[str, datetime] = {}
        self._counts = BurstCounts()  # this process's burst-gate counters

    # ----------------------------------------------------------------------------- admission

    def admit(self, requests: Sequence[TriggerRequest], now: datetime, *,
              buffer: Sequence[bool] | None = None,
              receipt: tuple[str, str] | None = None) -> list[Admission]:
        """Admit ``requests`` (of one environment and workflow) in one transaction.
        ``buffer[i]`` sends request ``i`` to the burst buffer (when it does not bypass the
        gate). ``receipt`` = (webhook id, message id) is recorded in the same transaction; a
        message id seen before raises :class:`Conflict` naming the first execution."""
        c = requests[0].correlation
        job = AdmissionJob(environment=c.environment, workflow=c.workflow,
                           requests=tuple(requests), now=now, receipt=receipt,
                           buffer=tuple(buffer) if buffer is not None else (False,) * len(requests))
        [result] = self.admit_jobs([job])
        if isinstance(result, OrchestratorError):
            raise result
        return result

    def admit_jobs(self, jobs: Sequence[AdmissionJob]) -> list[JobResult]:
        """Admit several calls' jobs in one transaction (group commit); each job's result is its
        admissions or the error that refused it (unknown workflow, replayed delivery, …), and
        a refused job writes nothing. A store failure refuses every job."""
        try:
            if self._while_tripped(jobs):
                with self._counts.transaction() as counts, self.db.single() as conn:
                    buffered = self._buffer_while_tripped(conn, jobs, counts)
                if buffered is not None:
                    return buffered
            elif self._while_open(jobs):
                with self.db.single() as conn:
                    queued = self._queue_while_open(conn, jobs)
                if queued is not None:
                    return queued
            with self._counts.transaction() as counts, self.db.write() as conn:
                return self._admit_jobs(conn, jobs, counts)
        except OrchestratorError as exc:  # a lone job refused: its writes rolled back
            if len(jobs) != 1:
                raise
            return [exc]
        except SQLAlchemyError as exc:
            error = store_error("accept the trigger", exc)
            if len(jobs) == 1 or error.transient:  # the database is away: refuse them all
                return [error] * len(jobs)
        # One job's trouble (a value the database refuses, a constraint) must not refuse the
        # others: each again, alone.
        return [result for job in jobs for result in self.admit_jobs([job])]

    def _admit_jobs(self, conn: sa.Connection, jobs: Sequence[AdmissionJob],
                    counts: PendingCounts) -> list[JobResult]:
        results: list[JobResult | None] = [None] * len(jobs)
        now = jobs[0].now
        rows = live_with_windows(conn, jobs, counts)
        live = {(row.environment, row.name) for row in rows}
        for i, job in enumerate(jobs):
            if (job.environment, job.workflow) not in live:
                results[i] = NotFound("workflow", f"{job.environment}/{job.workflow}")
        windows = read_windows(conn, rows, jobs, now, counts)
        involved = sorted((i for i, job in enumerate(jobs)
                           if results[i] is None and not job.plain),
                          key=lambda i: jobs[i].lock_order)
        for i in involved:
            if len(jobs) == 1:  # an error rolls back the whole transaction: no savepoint
                results[i] = self._admit_job(conn, jobs[i], windows)
                continue
            try:
                with conn.begin_nested():
                    results[i] = self._admit_job(conn, jobs[i], windows)
            except OrchestratorError as exc:
                results[i] = exc
        plain = [i for i, result in enumerate(results) if result is None]
        for i, admissions in zip(plain, self._insert_plain(conn, [jobs[i] for i in plain],
                                                           windows), strict=True):
            results[i] = admissions
        store_windows(conn, windows, counts)
        self._tripped.update((environment, window.tripped_until)
                             for environment, window in windows.items()
                             if window.tripped_until is not None)
        return [result for result in results if result is not None]

    def writer_turn(self) -> AbstractContextManager[object]:
        """(SQLite: the file's write lock, :meth:`Database.write_turn
        <orchestrator.store.uow.Database.write_turn>`.)"""
        return self.db.write_turn()

    @translated("warm up trigger admission")
    def warm_up(self, now: datetime) -> None:
        """Run every plain admission statement once in a transaction that is rolled back (a
        synthetic workflow of an environment of this process's own, queued by the full path
        and by each shape of the open statement, tripped, then buffered by each shape of the
        guarded statement): a server process
        compiles them and opens a connection before its first request. A process that first
        met them in a burst spent 60-80 ms of CPU on them, and its event loop stalled up to
        220 ms. Nothing is kept."""
        environment = f"_warm_up_{os.getpid()}"
        gate = BurstPolicy(enabled=True, environments=frozenset({environment}), threshold=0,
                           window=timedelta(seconds=1), hold=timedelta(minutes=1))

        def job(requests: int, gated: bool = True) -> AdmissionJob:
            return AdmissionJob(
                environment=environment, workflow="warm-up", now=now, buffer=(False,) * requests,
                gate=gate if gated else None, requests=tuple(TriggerRequest(
                    correlation=Correlation(execution_id=new_id(), request_id=new_id(),
                                            source=Source.API, workflow="warm-up",
                                            environment=environment, payload={}))
                    for _ in range(requests)))

        with self.db.rolled_back() as conn, BurstCounts().transaction() as counts:
            conn.execute(t.workflows.insert().values(
                environment=environment, name="warm-up", current_version=1, created_at=now,
                updated_at=now))
            # each shape of insert (one per power of two rows), queued; then tripped, buffered
            # by the full path and by the guarded statement
            shapes = sorted({prepared.slots_for(n)
                             for n in range(1, max(GUARDED_ROWS_MAX, INSERT_ROWS_MAX) + 1)})
            for rows in shapes:
                self._admit_jobs(conn, [job(rows, gated=False)], counts)
                if conn.dialect.name == "postgresql":  # (and by the one statement, open)
                    self._queue_while_open(conn, [job(rows, gated=False)])
                    self._queue_while_open(conn, [job(rows)])
            self._admit_jobs(conn, [job(1, gated=False), job(1, gated=False), job(1), job(1)],
                             counts)
            for rows in shapes:
                self._admit_jobs(conn, [job(rows)], counts)
                self._buffer_while_tripped(conn, [job(rows)], counts)
            warm_up_counts(conn, environment, counts.server, now, gate)
        self._tripped.pop(environment, None)

    def _while_tripped(self, jobs: Sequence[AdmissionJob]) -> bool:
        """Whether every job is plain, gated in every request, and of an environment last seen
        tripped with more than half its hold to go: then its triggers all go to the buffer,
        uncounted (as :func:`~orchestrator.store.burst.read_windows` decides), and
        :meth:`_buffer_while_tripped` may write them in one statement."""
        now = jobs[0].now
        if not _one_statement(jobs):
            return False
        for job in jobs:
            until = self._tripped.get(job.environment)
            if job.gate is None or until is None or until - now <= job.gate.hold / 2 \
                    or not job.plain or not all(map(job.gated, range(len(job.requests)))):
                return False
        return True

    def _while_open(self, jobs: Sequence[AdmissionJob]) -> bool:
        """Whether the jobs may be queued by :meth:`_queue_while_open`'s one statement
        (PostgreSQL): every job plain and none of its triggers sent to the buffer by its
        caller, few enough rows and workflows, at most one environment gated (by one policy),
        and for it nothing this process still has to write (counters buffered uncounted, the
        sweep of old ones) nor a trip it last saw."""
        if self.db.engine.dialect.name != "postgresql" or not _one_statement(jobs) \
                or not all(job.plain and not any(map(job.to_buffer, range(len(job.requests))))
                           for job in jobs):
            return False
        gated = {(job.environment, job.gate) for job in jobs if job.gate is not None}
        if not gated:
            return True
        if len(gated) > 1:
            return False
        [(environment, policy)] = gated
        now = jobs[0].now
        until = self._tripped.get(environment)
        return (until is None or until <= now) and not self._counts.pending(environment) \
            and not self._counts.sweep_pending(environment, now, policy)

    def _queue_while_open(self, conn: sa.Connection, jobs: Sequence[AdmissionJob]
                          ) -> list[JobResult] | None:
        """Queue the jobs of :meth:`_while_open` with one statement guarded by what the full
        path would read (:func:`~orchestrator.store.guarded.queue_while_open`); None, having
        written nothing, when the guard does not hold."""
        now = jobs[0].now
        rows = [_plain_rows(request, job.now) for job in jobs for request in job.requests]
        gate = None
        for job in jobs:
            if job.gate is not None:
                n = sum(len(j.requests) for j in jobs if j.environment == job.environment)
                gate = (job.environment, job.gate, n)
                break
        if not queue_while_open(conn, [e for e, _ in rows], [q for _, q in rows],
                                sorted({(job.environment, job.workflow) for job in jobs}),
                                gate, now, self._counts.server):
            return None
        return [[Admission(execution_id=r.correlation.execution_id,
                           request_id=r.correlation.request_id, buffered=False)
                 for r in job.requests] for job in jobs]

    def _buffer_while_tripped(self, conn: sa.Connection, jobs: Sequence[AdmissionJob],
                              counts: PendingCounts) -> list[JobResult] | None:
        """Buffer the jobs of :meth:`_while_tripped` with one statement guarded by what the
        full path would read (every workflow live, every environment tripped beyond half its
        hold), counting them in ``counts`` (to be written by the next transaction that reads
        their window); None, having written nothing, when the guard does not hold."""
        rows = [buffer_row(request, job.now) for job in jobs for request in job.requests]
        pairs = sorted({(job.environment, job.workflow) for job in jobs})
        until = max(jobs[0].now + job.gate.hold / 2 for job in jobs if job.gate)
        if not buffer_while_tripped(conn, rows, pairs, until):
            for environment, _ in pairs:  # nothing written: the full path decides
                self._tripped.pop(environment, None)
            return None
        for job in jobs:
            assert job.gate is not None  # (_while_tripped)
            counts.leave(job.environment, job.gate.bucket(job.now), len(job.requests))
        return [[Admission(execution_id=r.correlation.execution_id,
                           request_id=r.correlation.request_id, buffered=True)
                 for r in job.requests] for job in jobs]

    def _admit_job(self, conn: sa.Connection, job: AdmissionJob,
                   windows: dict[str, BurstWindow]) -> list[Admission]:
        if job.receipt is not None:
            self._record_receipt(conn, job)
        for index, request in enumerate(job.requests):
            parent = request.correlation.parent_execution_id
            if parent is not None and not _exists(conn, parent, job.environment):
                field = f"items.{index}.parent_execution_id" if job.batched \
                    else "parent_execution_id"
                raise InvalidInput(Problem(field=field, message=f"no execution {parent!r} in "
                                           "this environment"), subject="trigger")
        return [self._admit_one(conn, request, job.now, partial(to_buffer, windows, job, index))
                for index, request in enumerate(job.requests)]

    @staticmethod
    def _insert_plain(conn: sa.Connection, jobs: Sequence[AdmissionJob],
                      windows: dict[str, BurstWindow]) -> list[list[Admission]]:
        """Plain jobs' rows, one multi-row insert per table."""
        executions: list[dict[str, Any]] = []
        queued: list[dict[str, Any]] = []
        buffered: list[dict[str, Any]] = []
        results = []
        for job in jobs:
            admissions = []
            for index, request in enumerate(job.requests):
                c, gated = request.correlation, to_buffer(windows, job, index)
                if gated:
                    buffered.append(buffer_row(request, job.now))
                else:
                    execution, queue = _plain_rows(request, job.now)
                    executions.append(execution)
                    queued.append(queue)
                admissions.append(Admission(execution_id=c.execution_id,
                                            request_id=c.request_id, buffered=gated))
            results.append(admissions)
        # (the executions with their queue entries in one statement, of as many shapes as either
        # alone: a shape met first in a burst costs a compile, as warm_up says)
        prepared.insert_tables(conn, [(t.executions, executions), (t.queued_triggers, queued)])
        if buffered:
            prepared.insert_rows(conn, t.burst_buffer, buffered)
        return results

    def _record_receipt(self, conn: sa.Connection, job: AdmissionJob) -> None:
        assert job.receipt is not None
        webhook_id, message_id = job.receipt
        r, now = t.webhook_receipts, job.now
        conn.execute(r.delete().where(r.c.received_at < now - RECEIPT_RETENTION))
        try:
            with conn.begin_nested():
                conn.execute(r.insert().values(
                    webhook_id=webhook_id, message_id=message_id, received_at=now,
                    execution_id=job.requests[0].correlation.execution_id))
        except IntegrityError:
            first = conn.execute(sa.select(r.c.execution_id).where(
                r.c.webhook_id == webhook_id, r.c.message_id == message_id)).scalar()
            raise replayed(first) from None

    def _admit_one(self, conn: sa.Connection, request: TriggerRequest, now: datetime,
                   buffering: Callable[[], bool]) -> Admission:
        c = request.correlation
        expires_at = now + request.idempotency_ttl
        if c.idempotency_key is not None:
            existing = self._claim(conn, c, now, expires_at)
            if existing is not None:
                return existing
        buffered = buffering()  # counted by the gate once it is no duplicate
        if request.debounce is not None:
            admission = self._debounce(conn, request, request.debounce, now)
            if c.idempotency_key is not None and admission.execution_id != c.execution_id:
                k = t.idempotency_keys
                conn.execute(k.update().where(*_key_of(c)).values(
                    execution_id=admission.execution_id))
            return admission
        if buffered:
            conn.execute(t.burst_buffer.insert().values(buffer_row(request, now)))
            return Admission(execution_id=c.execution_id, request_id=c.request_id,
                             buffered=True)
        insert_execution(conn, c, now, enqueue=True, batch_id=request.batch_id,
                         not_before=request.not_before, expires_at=request.expires_at,
                         priority=request.priority, concurrency_key=request.concurrency_key,
                         pinned_version=request.pinned_version)
        return Admission(execution_id=c.execution_id, request_id=c.request_id)

    def _claim(self, conn: sa.Connection, c: Correlation, now: datetime,
               expires_at: datetime) -> Admission | None:
        """None when this request now holds the key; else the holder's admission. A lost race
        with a concurrent request is tried again (the retry policy, within this transaction)."""
        return retry_call(lambda: self._claim_once(conn, c, now, expires_at), CLAIM_DELAYS,
                          what="idempotency claim")

    def _claim_once(self, conn: sa.Connection, c: Correlation, now: datetime,
                    expires_at: datetime) -> Admission | None:
        k = t.idempotency_keys
        try:
            with conn.begin_nested():
                conn.execute(k.insert().values(
                    environment=c.environment, workflow=c.workflow, key=c.idempotency_key,
                    execution_id=c.execution_id, expires_at=expires_at, created_at=now))
            return None
        except IntegrityError:
            pass  # held (or just claimed by a concurrent request, now committed)
        row = conn.execute(sa.select(k).where(*_key_of(c))).first()
        if row is None:
            raise _contended()  # released between our insert and our read
        holder = self._holder(conn, row.execution_id)
        # Expiry is honoured here, on the write side: an expired claim is taken over.
        if row.expires_at > now and holder is not None \
                and holder[1] != Outcome.PIPELINE_FAULT.value:
            return Admission(execution_id=row.execution_id, request_id=holder[0],
                             deduplicated=True)
        taken = conn.execute(k.update().where(
            *_key_of(c), k.c.execution_id == row.execution_id,
            k.c.expires_at == row.expires_at).values(
                execution_id=c.execution_id, expires_at=expires_at, created_at=now))
        if taken.rowcount == 1:
            return None
        raise _contended()  # another request took it over first

    @staticmethod
    def _holder(conn: sa.Connection, execution_id: str) -> tuple[str, str | None] | None:
        """(request_id, outcome) of an execution, in the log or in the buffer."""
        e, b = t.executions, t.burst_buffer
        row = conn.execute(sa.select(e.c.request_id, e.c.outcome)
                           .where(e.c.execution_id == execution_id)).first()
        if row is not None:
            return row.request_id, row.outcome
        rid = conn.execute(sa.select(b.c.request_id)
                           .where(b.c.execution_id == execution_id)).scalar()
        return (rid, None) if rid is not None else None

    def _debounce(self, conn: sa.Connection, request: TriggerRequest, debounce: Debounce,
                  now: datetime) -> Admission:
        c = request.correlation
        d, q, e = t.debounces, t.queued_triggers, t.executions
        where = (d.c.environment == c.environment, d.c.workflow == c.workflow,
                 d.c.key == debounce.key)
        row = conn.execute(sa.select(d).where(*where).with_for_update()).first()
        if row is not None:
            start, _ = debounce.due(row.first_at, now)
            # Only a window whose execution is still waiting (not yet due, so no sensor can
            # have read it) is joined; otherwise a new window opens.
            moved = conn.execute(q.update().where(
                q.c.execution_id == row.execution_id,
                q.c.status == TriggerStatus.QUEUED.value, q.c.available_at > now)
                .values(available_at=start)).rowcount
            if moved == 1:
                if debounce.mode is DebounceMode.TRAILING:
                    conn.execute(e.update().where(
                        e.c.execution_id == row.execution_id,
                        e.c.status == ExecutionStatus.QUEUED.value).values(payload=c.payload))
                conn.execute(d.update().where(*where).values(updated_at=now))
                request_id = conn.execute(sa.select(e.c.request_id).where(
                    e.c.execution_id == row.execution_id)).scalar_one()
                return Admission(execution_id=row.execution_id, request_id=request_id,
                                 debounced=True)
        start, latest = debounce.due(now, now)
        values = dict(execution_id=c.execution_id, mode=debounce.mode.value, first_at=now,
                      latest_at=latest, updated_at=now)
        try:
            with conn.begin_nested():
                insert_execution(conn, c, now, enqueue=True, available_at=start,
                                 batch_id=request.batch_id, priority=request.priority,
                                 concurrency_key=request.concurrency_key)
                if row is None:
                    conn.execute(d.insert().values(environment=c.environment,
                                                   workflow=c.workflow, key=debounce.key,
                                                   **values))
                else:
                    conn.execute(d.update().where(*where, d.c.execution_id == row.execution_id)
                                 .values(**values))
        except IntegrityError:
            if row is not None:
                raise
            return self._debounce(conn, request, debounce, now)  # a concurrent first trigger
        return Admission(execution_id=c.execution_id, request_id=c.request_id)

    # --------------------------------------------------------------------------------- reads

    @translated("read the execution")
    def find(self, execution_id: str, environment: str | None) -> Visible:
        """The execution, in the log or still in the buffer (shown as ``queued``, every field).
        Another environment's execution is :class:`NotFound`, like a missing one (None: any
        environment, the operator's view)."""
        try:
            record = self.executions.get_execution(execution_id)
        except NotFound:
            record = None
        with self.db.read() as conn:
            if record is not None and environment in (None, record.environment):
                expires = conn.execute(sa.select(t.idempotency_keys.c.expires_at).where(
                    t.idempotency_keys.c.execution_id == execution_id)).scalar()
                return Visible(execution=record, key_expires_at=expires)
            b = t.burst_buffer
            query = sa.select(b).where(b.c.execution_id == execution_id)
            if environment is not None:
                query = query.where(b.c.environment == environment)
            row = conn.execute(query).first()
        if row is None:
            raise NotFound("execution", execution_id)
        return buffered_visible(row)

    @translated("list executions")
    def visible(self, environment: str, *, workflow: str | None = None,
                status: str | None = None, limit: int = 50) -> list[Visible]:
        """Most recent first, buffered executions included (as ``queued``)."""
        records = self.executions.list_executions(environment=environment, workflow=workflow,
                                                  status=status, limit=limit)
        k = t.idempotency_keys
        keyed = [r.execution_id for r in records if r.idempotency_key is not None]
        with self.db.read() as conn:
            expiries: dict[str, datetime] = {
                r.execution_id: r.expires_at for r in conn.execute(
                    sa.select(k.c.execution_id, k.c.expires_at)
                    .where(k.c.execution_id.in_(keyed)))} if keyed else {}
        found = [Visible(execution=r, key_expires_at=expiries.get(r.execution_id))
                 for r in records]
        if status in (None, ExecutionStatus.QUEUED.value):
            b = t.burst_buffer
            query = (sa.select(b).where(b.c.environment == environment)
                     .order_by(b.c.created_at.desc()).limit(limit))
            if workflow is not None:
                query = query.where(b.c.workflow == workflow)
            with self.db.read() as conn:
                found.extend(buffered_visible(row) for row in conn.execute(query))
        found.sort(key=lambda v: (v.execution.created_at, v.execution.execution_id),
                   reverse=True)
        return found[:limit]


def _one_statement(jobs: Sequence[AdmissionJob]) -> bool:
    """Whether ``jobs`` are few enough, in rows and workflows, for one guarded statement."""
    return sum(len(job.requests) for job in jobs) <= GUARDED_ROWS_MAX \
        and len({(job.environment, job.workflow) for job in jobs}) <= GUARDED_PAIRS_MAX


def _plain_rows(request: TriggerRequest, now: datetime) -> tuple[dict[str, Any],
                                                                 dict[str, Any]]:
    """A plain trigger's rows: its execution and its queue entry."""
    c = request.correlation
    return (execution_row(c, now, batch_id=request.batch_id, not_before=request.not_before,
                          expires_at=request.expires_at, priority=request.priority,
                          concurrency_key=request.concurrency_key,
                          pinned_version=request.pinned_version),
            queued_row(c, now, available_at=request.not_before, priority=request.priority,
                       concurrency_key=request.concurrency_key,
                       pinned_version=request.pinned_version))


def to_buffer(windows: dict[str, BurstWindow], job: AdmissionJob, index: int) -> bool:
    """Whether request ``index`` of ``job`` goes to the burst buffer: counted in its
    environment's window when the gate covers it (whether or not it bypasses the gate)."""
    window = windows.get(job.environment)
    tripped = window.admit(job.gated(index)) if window is not None else False
    return job.to_buffer(index) or tripped


def buffer_row(request: TriggerRequest, now: datetime) -> dict[str, Any]:
    """The burst-buffer row of ``request`` (its columns; the in-memory twin keeps the same)."""
    c = request.correlation
    return dict(
        c.to_row(buffered=True),
        idempotency_expires_at=now + request.idempotency_ttl if c.idempotency_key else None,
        batch_id=request.batch_id, created_at=now, not_before=request.not_before,
        expires_at=request.expires_at, priority=request.priority,
        concurrency_key=request.concurrency_key)


def _exists(conn: sa.Connection, execution_id: str, environment: str) -> bool:
    """An execution of ``environment``, in the log or still in the burst buffer."""
    return any(conn.execute(sa.select(table.c.execution_id).where(
        table.c.execution_id == execution_id, table.c.environment == environment)).first()
        for table in (t.executions, t.burst_buffer))


def _key_of(c: Correlation) -> tuple[Any, ...]:
    k = t.idempotency_keys
    return (k.c.environment == c.environment, k.c.workflow == c.workflow,
            k.c.key == c.idempotency_key)


def buffered_visible(row: Any) -> Visible:
    """A burst-buffer row (any object with its columns as attributes) as readers see it."""
    return Visible(execution=BufferedTrigger(
        **Correlation.row_values(row), batch_id=row.batch_id, created_at=row.created_at,
        payload=row.payload, idempotency_expires_at=row.idempotency_expires_at,
        not_before=row.not_before, expires_at=row.expires_at, priority=row.priority,
        concurrency_key=row.concurrency_key),
        key_expires_at=row.idempotency_expires_at)
