"""Response bodies, as models: what the handlers answer, for the OpenAPI document (the handlers
build these bodies as dicts, on the hot path without a model; ``tests/api/test_fuzz.py``
checks every response against the document).

The execution and schedule models are derived from their records
(:class:`~orchestrator.domain.records.ExecutionRecord`,
:class:`~orchestrator.domain.records.ScheduleRecord`), so a field added to a record is
documented without an edit here.
"""

from __future__ import annotations

import dataclasses
import typing
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, create_model
from pydantic.json_schema import SkipJsonSchema

from orchestrator.domain.records import BackfillRecord, ExecutionRecord, ScheduleRecord


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


def _from_record(name: str, record: type[Any], doc: str, *, optional: frozenset[str] = frozenset(),
                 drop: frozenset[str] = frozenset(), **extra: Any) -> type[_Body]:
    """A model with every field of the dataclass ``record`` (required: the view always has
    them, except ``optional``; without ``drop``) and the ``extra`` fields."""
    hints = typing.get_type_hints(record)
    fields: dict[str, Any] = {
        f.name: (hints[f.name], None if f.name in optional else ...)
        for f in dataclasses.fields(record) if f.name not in drop}
    return create_model(name, __base__=_Body, __doc__=doc, **fields, **extra)


class Accepted(_Body):
    """A trigger accepted (202): queued, or answered by the execution its idempotency key
    already names (``deduplicated``)."""

    execution_id: str
    request_id: str
    status: Literal["queued"]
    deduplicated: bool


class Replayed(Accepted):
    """A replay accepted (202): the new execution, queued, and the one it replays."""

    replayed_from: str


class AcceptedBatch(_Body):
    items: list[Accepted]


_EXECUTION_EXTRA: dict[str, Any] = {
    "buffered": (bool, Field(description="still in the burst buffer (status queued)")),
    "idempotency_key_expires_at": (datetime | None, ...),
}
Execution = _from_record(
    "Execution", ExecutionRecord, "One execution with its block entries.",
    optional=frozenset({"run_batch_id"}), **_EXECUTION_EXTRA)
ExecutionSummary = _from_record(
    "ExecutionSummary", ExecutionRecord, "One execution of a listing (no block entries).",
    optional=frozenset({"run_batch_id"}), drop=frozenset({"blocks"}), **_EXECUTION_EXTRA)


class ExecutionList(_Body):
    executions: list[ExecutionSummary]  # type: ignore[valid-type]


_UPCOMING: Any = (list[datetime], Field(description="the next fire times; the first is the next "
                                                      "occurrence that will run"))
_UPCOMING_JITTER: Any = (str | None, Field(description="with jitter: says that upcoming shows "
                                                      "nominal times"))
Schedule = _from_record("Schedule", ScheduleRecord, "A schedule with its next fire times.",
                        upcoming=_UPCOMING, upcoming_jitter=_UPCOMING_JITTER)
ScheduleCreated = _from_record(
    "ScheduleCreated", ScheduleRecord, "A schedule created (201) or updated by its key (200).",
    upcoming=_UPCOMING, upcoming_jitter=_UPCOMING_JITTER, created=(bool, ...))
Backfill = _from_record(
    "Backfill", BackfillRecord, "A backfill: its range, what it created, found existing and "
    "skipped, and its executions counted by status (its progress).")


class BackfillList(_Body):
    backfills: list[Backfill]  # type: ignore[valid-type]


class ScheduleList(_Body):
    schedules: list[Schedule]  # type: ignore[valid-type]


class Health(_Body):
    status: Literal["ok"]


class FieldProblem(_Body):
    field: str
    message: str


class ErrorDetail(_Body):
    code: str = Field(description="stable, machine-readable")
    message: str = Field(description="what was wrong and what to do")
    field: Annotated[str, Field(min_length=1)] | SkipJsonSchema[None] = Field(
        default=None, description="422 only: the first invalid field (dotted path, or a "
                                  "header or query parameter's name)")
    problems: list[FieldProblem] | SkipJsonSchema[None] = Field(
        default=None, description="422: every invalid field")
    execution_id: str | SkipJsonSchema[None] = Field(
        default=None, description="409 of a replayed webhook delivery: the execution its first "
                                  "delivery made")


class Error(_Body):
    """Every rejection: ``{"error": {"code", "message"}}``."""

    error: ErrorDetail
