"""What the trigger sensors share: the state of a run key in Dagster and one dispatch."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from enum import Enum

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.records import ExecutionRecord


class RunState(str, Enum):
    """Where a run key stands in Dagster's run storage."""

    NOT_STARTED = "not_started"  # the run exists but was never submitted (daemon died between)
    SUBMITTED = "submitted"  # queued, starting, running or finished


# Given run keys, the state of those that exist (absent keys have no run).
RunLookup = Callable[[Sequence[str]], dict[str, RunState]]


@dataclass(frozen=True, kw_only=True)
class Dispatch:
    """One run to request: its run key and the execution's correlation."""

    run_key: str
    correlation: Correlation


def correlation_of(record: ExecutionRecord) -> Correlation:
    """The correlation as first stored: never regenerated downstream."""
    return Correlation(
        execution_id=record.execution_id, request_id=record.request_id,
        source=Source(record.source), workflow=record.workflow,
        environment=record.environment, trigger_id=record.trigger_id,
        scheduled_for=record.scheduled_for, idempotency_key=record.idempotency_key,
        parent_execution_id=record.parent_execution_id, payload=record.payload)
