"""A batch run: many executions carried by one Dagster run, each exactly as if it had a run of
its own (its correlation, execution-log row and block entries, log lines, outcome and alerts).

The batch is opened in one transaction (every open member marked running by this run), then the
members run ``concurrency`` at a time on threads, each through the execution core with its own
logging session and ``timeout_seconds``. One heartbeat renews every running member's lease. What
happens to one member never reaches another:

- a user error is recorded by the core and stays silent;
- a pipeline fault of one member (its workflow deleted, its terminal write refused, a bug) is
  finalized for that member alone, with its own alert; the others go on;
- a member already finalized (a retried or re-executed run) is not run again.

If the run dies as a whole, its hook or the reconciler settles what is left open
(:func:`~orchestrator.execution.settle.settle_batch`: one alert for the incident).
"""

from __future__ import annotations

import logging
import threading
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from orchestrator.alerts import Alerter
from orchestrator.domain.records import ExecutionRecord, Outcome, WorkflowRecord
from orchestrator.domain.workflow import WorkflowSpec, parse_workflow
from orchestrator.exceptions import NotFound
from orchestrator.execution.blocks import block_types
from orchestrator.execution.core import run_workflow
from orchestrator.execution.session import Clock, Heartbeat, LoggingSession, with_store_retries
from orchestrator.execution.settle import FINALIZED_BY_BATCH, RunEnd, fault_message, settle
from orchestrator.store import Store

log = logging.getLogger(__name__)


@dataclass(frozen=True, kw_only=True)
class MemberResult:
    record: ExecutionRecord
    fail_run: bool = False  # a user error of a workflow with fail_run_on_user_error


@dataclass(frozen=True, kw_only=True)
class BatchResult:
    batch_id: str
    results: list[MemberResult]  # the members this attempt ran, in batch order
    skipped: list[ExecutionRecord]  # already finalized before this attempt

    @property
    def records(self) -> list[ExecutionRecord]:
        return [r.record for r in self.results]

    def counts(self) -> dict[str, int]:
        """Outcomes of every member (``open`` for one no settler could finalize yet)."""
        counter = Counter((r.outcome.value if r.outcome else "open")
                          for r in [*self.records, *self.skipped])
        return dict(sorted(counter.items()))

    @property
    def faults(self) -> list[ExecutionRecord]:
        return [r for r in self.records if r.outcome is Outcome.PIPELINE_FAULT]

    @property
    def fail_run(self) -> bool:
        """Whether the Dagster run should end FAILURE: a member faulted (finalized and alerted
        on its own), or a user error asked for it (``fail_run_on_user_error``)."""
        return bool(self.faults) or any(r.fail_run for r in self.results)


class _Specs:
    """Parsed workflow versions, shared by the members (parsed once per version)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._specs: dict[tuple[str, str, int], WorkflowSpec] = {}

    def get(self, workflow: WorkflowRecord) -> WorkflowSpec:
        key = (workflow.environment, workflow.name, workflow.version)
        with self._lock:
            if key not in self._specs:
                self._specs[key] = parse_workflow(workflow.document, block_types())
            return self._specs[key]


def run_batch(store: Store, alerter: Alerter, batch_id: str, *, dagster_run_id: str,
              concurrency: int, heartbeat_interval: float, clock: Clock) -> BatchResult:
    """Run every open member of ``batch_id`` inside the Dagster run ``dagster_run_id``."""
    opening = store.batches.open(batch_id, dagster_run_id=dagster_run_id, now=clock())
    specs = _Specs()

    def one(record: ExecutionRecord) -> MemberResult:
        return _run_member(store, alerter, record,
                           opening.workflows.get((record.environment, record.workflow)),
                           specs, dagster_run_id=dagster_run_id, clock=clock)

    beat = Heartbeat(lambda now: store.batches.heartbeat(batch_id, dagster_run_id, now),
                     name=batch_id, interval=heartbeat_interval, clock=clock)
    with beat, ThreadPoolExecutor(max_workers=max(1, concurrency),
                                  thread_name_prefix=f"batch-{batch_id}") as pool:
        results = list(pool.map(one, opening.running))
    return BatchResult(batch_id=batch_id, results=results, skipped=opening.finalized)


def _run_member(store: Store, alerter: Alerter, record: ExecutionRecord,
                workflow: WorkflowRecord | None, specs: _Specs, *, dagster_run_id: str,
                clock: Clock) -> MemberResult:
    correlation = record.correlation()
    fields = correlation.log_fields()
    try:
        if workflow is None:
            raise NotFound("workflow", f"{record.environment}/{record.workflow}")
        spec = specs.get(workflow)
        session = LoggingSession(store, correlation, clock=clock, attempt=record.attempts)
        result = run_workflow(spec, session)
        return MemberResult(record=result.record, fail_run=(
            spec.fail_run_on_user_error and result.outcome is Outcome.USER_ERROR))
    except Exception as exc:  # this member's pipeline fault: settled and alerted alone
        message = fault_message(exc)
        log.error("pipeline fault in execution %s (batch run %s): %s", record.execution_id,
                  dagster_run_id, message, extra=fields)
        try:
            settled = with_store_retries(lambda: settle(
                store, alerter, record.execution_id, run_id=dagster_run_id,
                run_end=RunEnd.FAILED, message=message, finalized_by=FINALIZED_BY_BATCH),
                delays=(0.5, 1.0, 2.0), context=fields)
        except Exception as settle_exc:  # the reconciler settles it once the run has ended
            log.warning("could not settle execution %s (%s); the reconciler will",
                        record.execution_id, type(settle_exc).__name__, extra=fields)
            return MemberResult(record=record)
        return MemberResult(record=settled.execution)


def summary_rows(result: BatchResult) -> list[dict[str, Any]]:
    """One row per member for the run's page: id, workflow, outcome, error."""
    rows = []
    for record in [*result.records, *result.skipped]:
        error = (record.error or {}).get("message", "")
        rows.append({"execution_id": record.execution_id, "workflow": record.workflow,
                     "outcome": record.outcome.value if record.outcome else "open",
                     "error": error})
    return rows
