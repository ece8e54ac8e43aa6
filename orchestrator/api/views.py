"""Execution views: the JSON shape of an execution in the HTTP API (and ``executions show``),
for one in the log or one still in the burst buffer (``queued``, every field present)."""

from __future__ import annotations

from typing import Any

from orchestrator.domain.correlation import iso_utc
from orchestrator.domain.records import ExecutionStatus
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
    """A buffer entry in the shape of an execution record (``queued``, not started)."""
    return dict(
        execution_id=entry.execution_id, request_id=entry.request_id,
        source=entry.source.value, workflow=entry.workflow, environment=entry.environment,
        workflow_version=None, status=ExecutionStatus.QUEUED.value, outcome=None,
        trigger_id=entry.trigger_id, scheduled_for=None, idempotency_key=entry.idempotency_key,
        parent_execution_id=entry.parent_execution_id, payload=entry.payload,
        dagster_run_id=None, attempts=0, error=None, output=None, finalized_by=None,
        created_at=iso_utc(entry.created_at), started_at=None, finished_at=None,
        heartbeat_at=None, batch_id=entry.batch_id, blocks=[])
