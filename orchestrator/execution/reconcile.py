"""The reconciler: settles what no hook saw.

Failure hooks do not run when a resource fails to initialize, when a run is terminated, or when
its worker process is killed. Every tick, the reconciler

1. reads the runs of ``execute_workflow`` that ended since its cursor (one indexed query per
   page of Dagster's run storage, one query of ours per page) and settles each execution still
   open: ``cancelled`` for a cancelled run, ``pipeline_fault`` plus one alert for a failed one
   (unless Dagster will retry it), and raises the alert a crashed hook left out;
2. finds running executions whose heartbeat lease expired (their worker died): marks the Dagster
   run failed and settles the execution as a pipeline fault;
3. finds started runs that have reported nothing for a lease while none of their executions
   holds one: their worker died before the op took its first heartbeat, or after the executions
   were finalized and before the run reported its end (a killed Celery worker: no code server
   watches that process). The run is failed; step 1 settles what it left open;
4. stops executions with a cancel request (``orchestrator executions cancel`` while they ran):
   a member of a batch run is finalized ``cancelled`` alone (the run goes on with the others);
   an execution with a run of its own has that run terminated, and step 1 settles it
   ``cancelled`` (no alert) once the run has ended;
5. retries alert webhooks that are due.

Everything it does is idempotent, so a tick that fails halfway (the store down) is simply done
again by the next one; the cursor only moves past runs that are settled.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from enum import Enum
from typing import Protocol

from orchestrator.alerts import Alerter
from orchestrator.domain.records import (
    CANCELLED_ERROR,
    FINALIZED_BY_CANCEL,
    ExecutionRecord,
    ExecutionStatus,
    Outcome,
)
from orchestrator.execution.settle import RunEnd, Settlement, settle, settle_batch
from orchestrator.store import Store

log = logging.getLogger(__name__)
FINALIZED_BY = "reconciler"
PAGE = 200
# Dagster's run update timestamps may be whole seconds (its SQLite run storage).
UPDATE_RESOLUTION = timedelta(seconds=1)


class RunPhase(str, Enum):
    ACTIVE = "active"  # queued, starting, started, canceling
    SUCCESS = "success"
    FAILURE = "failure"
    CANCELED = "canceled"


@dataclass(frozen=True, kw_only=True)
class RunInfo:
    run_id: str
    execution_id: str | None
    phase: RunPhase
    updated_at: datetime  # the run storage's update timestamp: the cursor
    will_retry: bool | None = None  # for failures: None while Dagster has not decided
    retry_run_id: str | None = None  # the run Dagster launched to retry this one
    has_outcome_tag: bool = False
    batch_id: str | None = None  # a batch run: settled as a whole


class RunSource(Protocol):
    """What the reconciler needs from Dagster's run storage."""

    def ended_since(self, after: datetime, limit: int) -> Sequence[RunInfo]:
        """Ended runs of the job updated strictly after ``after``, oldest update first."""

    def by_id(self, run_ids: Sequence[str]) -> dict[str, RunInfo]: ...

    def silent_since(self, before: datetime, limit: int) -> Sequence[RunInfo]:
        """Started runs of the jobs whose run record was last updated before ``before``."""

    def mark_failed(self, run_id: str, message: str) -> None: ...

    def tag_outcome(self, run_id: str, outcome: str) -> None: ...

    def terminate(self, run_id: str) -> bool:
        """Ask Dagster to stop the run; False when it is not running or was asked already."""
        ...


@dataclass(kw_only=True)
class ReconcileTick:
    cursor: datetime
    settled: list[Settlement] = field(default_factory=list)
    expired_leases: int = 0
    silent_runs: int = 0
    cancelled: int = 0  # batch members finalized, or runs asked to stop, on a cancel request
    delivered: int = 0

    @property
    def finalized(self) -> list[ExecutionRecord]:
        return [s.execution for s in self.settled if s.finalized]


def reconcile(store: Store, runs: RunSource, alerter: Alerter, *, now: datetime,
              cursor: datetime | None, lease_timeout: timedelta,
              lookback: timedelta = timedelta(days=1)) -> ReconcileTick:
    tick = ReconcileTick(cursor=cursor if cursor is not None else now - lookback)
    _fail_silent_runs(store, runs, tick, now=now, lease_timeout=lease_timeout)
    _settle_ended_runs(store, runs, alerter, tick)
    _expire_leases(store, runs, alerter, tick, now=now, lease_timeout=lease_timeout)
    _stop_cancelled(store, runs, tick, now=now)
    tick.delivered = alerter.deliver_due()
    return tick


def _run_end(run: RunInfo) -> RunEnd | None:
    """None: not decided yet (Dagster has not said whether it retries this failure)."""
    if run.phase is RunPhase.CANCELED:
        return RunEnd.CANCELED
    if run.phase is RunPhase.SUCCESS:
        return RunEnd.SUCCEEDED
    if run.will_retry is None:
        return None
    return RunEnd.FAILED_WILL_RETRY if run.will_retry else RunEnd.FAILED


def _message(run: RunInfo) -> str:
    if run.phase is RunPhase.CANCELED:
        return "the Dagster run was cancelled before the execution finished"
    if run.phase is RunPhase.SUCCESS:
        return "the Dagster run ended without finalizing the execution"
    return "the Dagster run failed before the execution was finalized (see the run's logs)"


def _settle_ended_runs(store: Store, runs: RunSource, alerter: Alerter,
                       tick: ReconcileTick) -> None:
    """Settle the runs that ended since the cursor, page by page. Dagster may keep a run's
    update time to the whole second (SQLite): a run can end within the cursor's second after
    the previous tick read it, so a tick reads from a second before its cursor (settling is
    idempotent). A full page is followed by one from just before its last instant (a page may
    cut between runs of one instant); a full page whose runs all share one instant is read
    again, twice as large, until it holds that whole instant. Each read starts later than the
    one before, or is larger: the loop ends."""
    after = tick.cursor - UPDATE_RESOLUTION
    limit = PAGE
    while True:
        page = runs.ended_since(after, limit)
        if len(page) == limit and page[0].updated_at == page[-1].updated_at:
            limit *= 2
            continue
        executions = store.executions_by_id(
            [r.execution_id for r in page if r.execution_id is not None])
        for run in page:
            execution = executions.get(run.execution_id or "")
            if run.batch_id is not None:
                settled = _settle_batch_run(store, runs, alerter, tick, run)
            else:
                settled = execution is None or _settle_run(store, runs, alerter, tick, run,
                                                           execution)
            if not settled:
                return  # not decided yet: the cursor stays before this run for the next tick
            tick.cursor = max(tick.cursor, run.updated_at)
        if len(page) < limit:
            return
        after, limit = page[-1].updated_at - timedelta(microseconds=1), PAGE


def _settle_run(store: Store, runs: RunSource, alerter: Alerter, tick: ReconcileTick,
                run: RunInfo, execution: ExecutionRecord, message: str | None = None) -> bool:
    """False when the run cannot be settled yet."""
    if not execution.status.terminal and execution.dagster_run_id not in (None, run.run_id):
        return True  # a later run (a retry, a re-execution) owns the execution now
    if execution.status.terminal and execution.outcome is not Outcome.PIPELINE_FAULT:
        return True  # finalized by the core or settled before: nothing to do
    run_end = _run_end(run)
    if run_end is None:
        return False
    if run_end is RunEnd.FAILED_WILL_RETRY and not execution.status.terminal:
        return True  # the retry run settles it; an expired lease catches a retry that never came
    settlement = settle(store, alerter, execution.execution_id, run_id=run.run_id,
                        run_end=run_end, message=message or _message(run),
                        finalized_by=FINALIZED_BY)
    if settlement.finalized:
        tick.settled.append(settlement)
    if settlement.finalized and settlement.execution.outcome and not run.has_outcome_tag:
        runs.tag_outcome(run.run_id, settlement.execution.outcome.value)
    return True


def _settle_batch_run(store: Store, runs: RunSource, alerter: Alerter, tick: ReconcileTick,
                      run: RunInfo, message: str | None = None) -> bool:
    """A batch run ended: settle every member it left open (one alert for the incident).
    False when the run cannot be settled yet."""
    assert run.batch_id is not None
    run_end = _run_end(run)
    if run_end is None:
        return False
    if run_end is RunEnd.FAILED_WILL_RETRY:
        return True  # the retry run opens what is left; an expired lease catches a lost retry
    settlement = settle_batch(store, alerter, run.batch_id, run_id=run.run_id, run_end=run_end,
                              message=message or _message(run), finalized_by=FINALIZED_BY)
    tick.settled.extend(Settlement(execution=e, finalized=True, alert=settlement.alert)
                        for e in settlement.finalized)
    if settlement.finalized and not run.has_outcome_tag:
        outcome = settlement.finalized[0].outcome
        runs.tag_outcome(run.run_id, (outcome or Outcome.PIPELINE_FAULT).value)
    return True


def _expire_leases(store: Store, runs: RunSource, alerter: Alerter, tick: ReconcileTick, *,
                   now: datetime, lease_timeout: timedelta) -> None:
    stale = store.stale_executions(now - lease_timeout)
    known = runs.by_id([e.dagster_run_id for e in stale if e.dagster_run_id])
    seconds = int(lease_timeout.total_seconds())
    message = (f"the run worker stopped (no heartbeat for over {seconds}s); the process was "
               "probably killed")
    batch_runs: set[str] = set()  # a batch's stale members are settled once, together
    for execution in stale:
        run = known.get(execution.dagster_run_id or "")
        if execution.run_batch_id is not None and run is not None:
            if run.run_id in batch_runs:
                continue
            batch_runs.add(run.run_id)
        if run is not None and run.phase is RunPhase.ACTIVE:
            # Dagster still thinks it runs: fail it, so Dagster's own retry policy applies.
            runs.mark_failed(run.run_id, message)
            run = runs.by_id([run.run_id]).get(run.run_id)
            tick.expired_leases += 1
        if run is None:
            settlement = settle(store, alerter, execution.execution_id,
                                run_id=execution.dagster_run_id, run_end=RunEnd.FAILED,
                                message=message, finalized_by=FINALIZED_BY)
            tick.settled.append(settlement)
            continue
        if run.retry_run_id is not None:
            continue  # Dagster launched the retry; its op takes the execution over
        if (run.phase is RunPhase.FAILURE and run.will_retry is not False
                and execution.heartbeat_at and now - execution.heartbeat_at < 2 * lease_timeout):
            continue  # give Dagster's retry daemon time to launch the retry
        if run.batch_id is not None:
            _settle_batch_run(store, runs, alerter, tick, replace(run, will_retry=False),
                              message=message)
        else:
            _settle_run(store, runs, alerter, tick, replace(run, will_retry=False), execution,
                        message=message)


def _fail_silent_runs(store: Store, runs: RunSource, tick: ReconcileTick, *, now: datetime,
                      lease_timeout: timedelta) -> None:
    """Fail started runs that reported nothing for a lease while none of their executions holds
    one (see the module's step 3); the ended-runs pass that follows settles them."""
    alive_after = now - lease_timeout
    silent = list(runs.silent_since(alive_after, PAGE))
    singles = store.executions_by_id([r.execution_id for r in silent
                                      if r.batch_id is None and r.execution_id])
    seconds = int(lease_timeout.total_seconds())
    for run in silent:
        members = (store.batches.members(run.batch_id) if run.batch_id is not None
                   else [singles[run.execution_id]] if run.execution_id in singles else [])
        if any(not m.status.terminal and m.heartbeat_at and m.heartbeat_at >= alive_after
               for m in members):
            continue  # an execution still renews its lease: the worker is alive
        if any(not m.status.terminal and m.heartbeat_at for m in members):
            continue  # an expired lease: _expire_leases owns it (and Dagster's retry policy)
        runs.mark_failed(run.run_id, f"the run worker stopped (no run event and no execution "
                                     f"heartbeat for over {seconds}s); the process was "
                                     "probably killed")
        tick.silent_runs += 1


def _stop_cancelled(store: Store, runs: RunSource, tick: ReconcileTick, *,
                    now: datetime) -> None:
    """Executions with a cancel request (see the module's step 4)."""
    requested = store.cancellation.cancel_requested(PAGE)
    own = runs.by_id([e.dagster_run_id for e in requested
                      if e.run_batch_id is None and e.dagster_run_id])
    for execution in requested:
        run = own.get(execution.dagster_run_id or "") if execution.run_batch_id is None else None
        if run is not None:
            if run.phase is RunPhase.ACTIVE and runs.terminate(run.run_id):
                tick.cancelled += 1
            continue  # once the run has ended, step 1 settles the execution
        _, won = store.finish_execution(execution.execution_id,
                                        status=ExecutionStatus.CANCELLED,
                                        outcome=Outcome.CANCELLED,
                                        finalized_by=FINALIZED_BY_CANCEL, now=now,
                                        error=dict(CANCELLED_ERROR))
        tick.cancelled += int(won)
