"""What a run's page says about its executions: the op's output metadata, its log lines and
whether the run fails, for one execution or a batch; what a failure hook logs once it settled.
Plain Python: the Dagster adapters (``orchestrator/dagster/jobs.py``, ``batch_job.py``) only
hand these to Dagster."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from orchestrator.domain.records import Outcome
from orchestrator.execution.batch import BatchResult, summary_rows
from orchestrator.execution.core import ExecutionResult
from orchestrator.execution.settle import Settlement

OPEN = "open"  # a batch member the run left unfinished


@dataclass(frozen=True, kw_only=True)
class RunReport:
    """The run's ``orchestrator/outcome`` tag (and for a batch ``orchestrator/outcomes``), the
    op's output metadata, an error line to log, and the failure to raise (None: the op
    succeeds)."""

    outcome: str
    metadata: dict[str, Any]
    error_line: str | None = None
    info_line: str | None = None
    failure: str | None = None
    summary: str | None = None
    markdown: str | None = None
    counts: dict[str, int] = field(default_factory=dict)


def execution_report(result: ExecutionResult, *, fail_run: bool) -> RunReport:
    """One execution: a user error is logged on the run (no alert) and fails the run only with
    ``fail_run_on_user_error``."""
    outcome = result.outcome or Outcome.SUCCESS
    record = result.record
    metadata: dict[str, Any] = {
        "execution_id": record.execution_id, "request_id": record.request_id,
        "attempt": record.attempts, "status": record.status.value, "outcome": outcome.value}
    if outcome is not Outcome.USER_ERROR or not result.error:
        return RunReport(outcome=outcome.value, metadata=metadata)
    message = result.error.get("message", "")
    metadata["error"] = message
    if result.error.get("block"):
        metadata["block"] = result.error["block"]
    return RunReport(outcome=outcome.value, metadata=metadata,
                     error_line=f"workflow error (user_error, no alert): {message}",
                     failure=f"workflow error: {message}" if fail_run else None)


def batch_outcome(counts: dict[str, int]) -> str:
    """The batch's ``orchestrator/outcome`` tag: the worst outcome among its executions."""
    for outcome in (OPEN, Outcome.PIPELINE_FAULT.value, Outcome.USER_ERROR.value,
                    Outcome.CANCELLED.value, Outcome.EXPIRED.value):
        if counts.get(outcome):
            return Outcome.PIPELINE_FAULT.value if outcome == OPEN else outcome
    return Outcome.SUCCESS.value


def _markdown(rows: list[dict[str, Any]]) -> str:
    lines = ["| execution_id | workflow | outcome | error |", "|---|---|---|---|"]
    for row in rows:
        error = str(row["error"]).replace("|", "\\|").replace("\n", " ")[:200]
        lines.append(f"| {row['execution_id']} | {row['workflow']} | {row['outcome']} | "
                     f"{error} |")
    return "\n".join(lines)


def batch_report(result: BatchResult) -> RunReport:
    """A batch: few Dagster events whatever its size (one log line listing every execution,
    a table in the metadata); the run fails when a member faulted."""
    counts = result.counts()
    summary = ",".join(f"{k}={v}" for k, v in counts.items()) or "none"
    rows = summary_rows(result)
    listing = "\n".join(f"{r['execution_id']} {r['workflow']} {r['outcome']}" for r in rows)
    failure = None
    if result.fail_run:
        faults = ", ".join(r.execution_id for r in result.faults) or "none"
        failure = (f"batch {result.batch_id}: {summary} (pipeline faults: {faults}; each "
                   "finalized and alerted on its own)")
    return RunReport(
        outcome=batch_outcome(counts), counts=counts, summary=summary,
        markdown=_markdown(rows), failure=failure,
        metadata={"batch_id": result.batch_id, "executions": len(rows)},
        info_line=f"batch {result.batch_id}: {len(rows)} execution(s), {summary}\n{listing}")


def settled_line(settlement: Settlement, execution_id: str,
                 message: str) -> tuple[int, str] | None:
    """What the failure hook logs (level, text) once it settled ``execution_id``."""
    if settlement.left_for_retry:
        return logging.INFO, (f"pipeline fault ({message}); Dagster will retry the run, "
                              f"execution {execution_id} stays open")
    record = settlement.execution
    if record.outcome is Outcome.USER_ERROR:
        return logging.INFO, "run failed on a user error (fail_run_on_user_error); no alert"
    if record.outcome is Outcome.CANCELLED:
        return logging.INFO, f"execution {execution_id} cancelled; no alert"
    if record.outcome is not Outcome.PIPELINE_FAULT:
        return None
    alert = settlement.alert.id if settlement.alert else "?"
    return logging.ERROR, (f"pipeline fault, alert {alert}: "
                           f"{(record.error or {}).get('message', message)}")
