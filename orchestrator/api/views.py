"""Execution views: the JSON shape of an execution in the HTTP API (and ``executions show``),
for one in the log or one still in the burst buffer (``queued``, every field present)."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.correlation import CORRELATION_FIELDS, iso_utc
from orchestrator.domain.records import ExecutionRecord, ExecutionStatus
from orchestrator.store.interfaces import BufferedTrigger, Visible


def execution_view(found: Visible) -> dict[str, Any]:
    """One execution with its block entries."""
    execution = found.execution
    data = (_buffered_view(execution) if isinstance(execution, BufferedTrigger)
            else execution.to_dict())
    data["buffered"] = found.buffered
    data["idempotency_key_expires_at"] = (iso_utc(found.key_expires_at)
                                          if found.key_expires_at else None)
    return data


def list_views(found: list[Visible]) -> list[dict[str, Any]]:
    """A listing: each execution without its block entries."""
    views = [execution_view(f) for f in found]
    for view in views:
        view.pop("blocks", None)
    return views


def _buffered_view(entry: BufferedTrigger) -> dict[str, Any]:
    """A buffer entry in the shape of an execution record (``queued``, not started): its
    correlation fields come from the one field list."""
    fields = {f.name: getattr(entry, f.name) for f in CORRELATION_FIELDS}
    data = ExecutionRecord(
        **fields, payload=entry.payload, workflow_version=None, status=ExecutionStatus.QUEUED,
        outcome=None, dagster_run_id=None, attempts=0, error=None, output=None,
        finalized_by=None, created_at=entry.created_at, started_at=None, finished_at=None,
        batch_id=entry.batch_id, not_before=entry.not_before, expires_at=entry.expires_at,
        priority=entry.priority, concurrency_key=entry.concurrency_key).to_dict()
    del data["run_batch_id"]  # a buffered execution is in no run yet: the key stays absent
    return data
