"""Correlation ids, run tags and run keys: constants in one place.

Correlation is assigned once, where a trigger enters the system, and never regenerated. For
schedules the ids derive deterministically from the run key, so a repeated dispatch of the same
occurrence reuses them.
"""

from __future__ import annotations

import uuid
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import Enum
from typing import Any

TAG_PREFIX = "orchestrator/"
TAG_EXECUTION_ID = "orchestrator/execution_id"
TAG_REQUEST_ID = "orchestrator/request_id"
TAG_SOURCE = "orchestrator/source"
TAG_TRIGGER_ID = "orchestrator/trigger_id"
TAG_SCHEDULED_FOR = "orchestrator/scheduled_for"
TAG_WORKFLOW = "orchestrator/workflow"
TAG_ENVIRONMENT = "orchestrator/environment"
TAG_IDEMPOTENCY_KEY = "orchestrator/idempotency_key"
TAG_PARENT_EXECUTION_ID = "orchestrator/parent_execution_id"
TAG_OUTCOME = "orchestrator/outcome"
TAG_JOB = "orchestrator/job"  # every run of our jobs (the jobs' own tags)
# A batch run (many executions, one run): its batch, how many it carries, and when it ends the
# count of each outcome ("success=48,user_error=1,pipeline_fault=1").
TAG_BATCH_ID = "orchestrator/batch_id"
TAG_BATCH_SIZE = "orchestrator/batch_size"
TAG_OUTCOMES = "orchestrator/outcomes"

# Dagster's own tag holding a sensor run request's run key.
DAGSTER_RUN_KEY_TAG = "dagster/run_key"

_NAMESPACE = uuid.UUID("5b0f5c6e-8f0e-4c1e-9a51-0c6f2d7a9e11")


class Source(str, Enum):
    """Where an execution's trigger entered the system."""

    SCHEDULE = "schedule"
    API = "api"
    WEBHOOK = "webhook"
    MANUAL = "manual"
    BACKFILL = "backfill"
    CHILD = "child"


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, second precision (the form used in keys and tags)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def schedule_run_key(schedule_id: str, scheduled_for: datetime) -> str:
    return f"schedule:{schedule_id}:{iso_utc(scheduled_for)}"


def trigger_run_key(execution_id: str) -> str:
    return f"trigger:{execution_id}"


def batch_run_key(batch_id: str) -> str:
    return f"batch:{batch_id}"


def derived_id(kind: str, run_key: str) -> str:
    """A stable uuid for ``run_key``: the same occurrence always gets the same id."""
    return str(uuid.uuid5(_NAMESPACE, f"{kind}:{run_key}"))


def new_id() -> str:
    return str(uuid.uuid4())


@dataclass(frozen=True, kw_only=True)
class Correlation:
    """The ids that travel with one execution: queue row, run tags and config, execution log."""

    execution_id: str
    request_id: str
    source: Source
    workflow: str
    environment: str
    trigger_id: str | None = None
    scheduled_for: datetime | None = None
    idempotency_key: str | None = None
    parent_execution_id: str | None = None
    payload: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def for_schedule(
        cls,
        *,
        schedule_id: str,
        scheduled_for: datetime,
        workflow: str,
        environment: str,
        payload: dict[str, Any],
    ) -> Correlation:
        key = schedule_run_key(schedule_id, scheduled_for)
        return cls(
            execution_id=derived_id("execution", key),
            request_id=derived_id("request", key),
            source=Source.SCHEDULE,
            workflow=workflow,
            environment=environment,
            trigger_id=schedule_id,
            scheduled_for=scheduled_for,
            payload=payload,
        )

    def tags(self) -> dict[str, str]:
        """Dagster run tags (strings only; absent fields are left out)."""
        tags = {
            TAG_EXECUTION_ID: self.execution_id,
            TAG_REQUEST_ID: self.request_id,
            TAG_SOURCE: self.source.value,
            TAG_WORKFLOW: self.workflow,
            TAG_ENVIRONMENT: self.environment,
        }
        optional = {
            TAG_TRIGGER_ID: self.trigger_id,
            TAG_SCHEDULED_FOR: iso_utc(self.scheduled_for) if self.scheduled_for else None,
            TAG_IDEMPOTENCY_KEY: self.idempotency_key,
            TAG_PARENT_EXECUTION_ID: self.parent_execution_id,
        }
        tags.update({k: v for k, v in optional.items() if v})
        return tags

    def log_fields(self) -> dict[str, str]:
        """The fields every log line of the execution carries."""
        return {"execution_id": self.execution_id, "request_id": self.request_id}

    def to_config(self) -> dict[str, Any]:
        """Plain values for the job's run config."""
        data = asdict(self)
        data["source"] = self.source.value
        data["scheduled_for"] = iso_utc(self.scheduled_for) if self.scheduled_for else None
        return data
