"""Request bodies and query parameters (Pydantic, at the HTTP edge only) and their conversion
to domain inputs."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    WithJsonSchema,
    field_validator,
)

from orchestrator.api.operations import Query
from orchestrator.domain.ingest import (
    DEFAULT_IDEMPOTENCY_TTL,
    DURATION_PATTERN,
    MAX_BATCH_ITEMS,
    PRIORITY_RANGE,
    Debounce,
    DebounceMode,
    parse_duration,
    parse_idempotency_ttl,
)
from orchestrator.domain.records import ExecutionStatus
from orchestrator.domain.schedules import KEY_PATTERN
from orchestrator.exceptions import InvalidInput, Problem
from orchestrator.services.executions import DEFAULT_LIMIT, MAX_LIMIT, STATUSES
from orchestrator.services.triggers import TriggerInput

# What parse_duration accepts (not ISO 8601, which Pydantic would document for a timedelta).
Duration = Annotated[timedelta, WithJsonSchema({
    "anyOf": [{"type": "number", "exclusiveMinimum": 0},
              {"type": "string", "pattern": DURATION_PATTERN.pattern}],
    "description": "seconds, or a number with a unit: ms, s, m, h, d (e.g. \"30s\", \"5m\")"})]

KeyStr = Field(default=None, min_length=1, max_length=200, pattern=KEY_PATTERN.pattern)


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DebounceBody(_Body):
    key: str = Field(min_length=1, max_length=200, pattern=KEY_PATTERN.pattern)
    delay: Duration
    mode: Literal["leading", "trailing"] = "trailing"
    max_delay: Duration | None = None

    _durations = field_validator("delay", "max_delay", mode="before")(
        lambda cls, v: None if v is None else parse_duration(v))

    @field_validator("delay")
    @classmethod
    def _delay_bound(cls, v: timedelta) -> timedelta:
        if v > timedelta(days=1):
            raise ValueError("must be at most 1 day")
        return v


class TriggerBody(_Body):
    """``POST /v1/workflows/{name}/trigger``."""

    payload: dict[str, Any] = Field(default_factory=dict)
    idempotency_key: str | None = KeyStr
    idempotency_key_ttl: Duration | None = None
    debounce: DebounceBody | None = None
    parent_execution_id: str | None = Field(default=None, min_length=1, max_length=36)
    delay: Duration | None = Field(default=None, description="start no earlier than this "
                                   "after the trigger (at most a year)")
    run_at: AwareDatetime | None = Field(default=None, description="start no earlier than "
                                         "this instant (ISO-8601 with an offset; not with "
                                         "delay)")
    ttl: Duration | None = Field(default=None, description="not started this long after it "
                                 "may start, the execution ends `expired` (at most a year)")
    priority: int = Field(default=0, ge=PRIORITY_RANGE.start, le=PRIORITY_RANGE.stop - 1,
                          description="higher starts first within the environment")
    concurrency_key: str | None = Field(
        default=None, min_length=1, max_length=200, pattern=KEY_PATTERN.pattern,
        description="executions of this workflow sharing the key run at most the workflow's "
                    "concurrency.key_limit (default 1) at once")

    @field_validator("idempotency_key_ttl", mode="before")
    @classmethod
    def _ttl(cls, v: Any) -> timedelta | None:
        return None if v is None else parse_idempotency_ttl(v)

    _timing = field_validator("delay", "ttl", mode="before")(
        lambda cls, v: None if v is None else parse_duration(v))

    def to_input(self) -> TriggerInput:
        debounce = None
        if self.debounce is not None:
            debounce = Debounce(key=self.debounce.key, delay=self.debounce.delay,
                                mode=DebounceMode(self.debounce.mode),
                                max_delay=self.debounce.max_delay)
        return TriggerInput(payload=self.payload, idempotency_key=self.idempotency_key,
                            idempotency_ttl=self.idempotency_key_ttl or DEFAULT_IDEMPOTENCY_TTL,
                            debounce=debounce, parent_execution_id=self.parent_execution_id,
                            delay=self.delay, run_at=self.run_at, ttl=self.ttl,
                            priority=self.priority, concurrency_key=self.concurrency_key)


class BatchBody(_Body):
    """``POST /v1/workflows/{name}/trigger-batch``: items without their own key get
    ``<idempotency_key>:<index>``."""

    items: list[TriggerBody] = Field(min_length=1, max_length=MAX_BATCH_ITEMS)
    idempotency_key: str | None = KeyStr


class ReplayBody(_Body):
    """``POST /v1/executions/{execution_id}/replay``."""

    payload: dict[str, Any] | None = Field(default=None, description="the replay's payload "
                                           "(default: the original's)")
    same_version: bool = Field(default=False, description="run the workflow version the "
                               "original ran (default: the latest)")
Overlap = Literal["skip", "buffer_one", "buffer_all", "cancel_other", "allow_all"]


class ScheduleBody(_Body):
    """``POST /v1/schedules``: the CLI's ``schedules create`` fields."""

    workflow: str
    cron: str | None = None
    timezone: str = "UTC"
    run_at: str | None = None
    payload: dict[str, Any] = Field(default_factory=dict)
    key: str | None = None
    overlap: Overlap = Field(default="allow_all", description="while an execution of the "
                             "schedule is queued or running, an occurrence is skipped, held "
                             "(buffer_one: at most one; buffer_all: every one), cancels it "
                             "(cancel_other) or starts anyway (allow_all)")
    jitter: Duration | None = Field(default=None, description="each occurrence starts at a "
                                    "deterministic offset below this (at most 1h, less than "
                                    "the cron's shortest interval)")
    priority: int = Field(default=0, ge=PRIORITY_RANGE.start, le=PRIORITY_RANGE.stop - 1,
                          description="its executions' priority (higher starts first within "
                                      "the environment)")

    _jitter = field_validator("jitter", mode="before")(
        lambda cls, v: None if v is None else parse_duration(v))


class BackfillBody(_Body):
    """``POST /v1/schedules/{schedule_id}/backfill``: the CLI's ``schedules backfill``."""

    start: str = Field(description="ISO-8601 instant with an offset: the first occurrence "
                                   "covered")
    end: str = Field(description="ISO-8601 instant with an offset, not in the future: the last "
                                 "occurrence covered")
    overlap: Overlap | None = Field(default=None, description="the backfill's own overlap "
                                    "policy (default: the schedule's)")


def parse(model: type[BaseModel], data: Any) -> Any:
    """Validate ``data``; every problem becomes an :class:`InvalidInput` naming its field."""
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            field = ".".join(str(p) for p in error["loc"]) or "body"
            message = error["msg"].removeprefix("Value error, ")
            if error["type"] == "extra_forbidden":
                message = "is not a known field"
            problems.append(Problem(field=field, message=message))
        raise InvalidInput(problems, subject="request body") from None


def _whole_number(value: Any) -> Any:
    """Only ASCII digits (``int()`` also takes "¹", " 5", "+5", "1_000")."""
    if isinstance(value, str):
        if not (value.isascii() and value.isdigit()):
            raise ValueError("not a whole number")
        return int(value)
    return value


class ExecutionQuery(Query):
    """``GET /v1/executions``."""

    workflow: str | None = Field(default=None, description="only this workflow's")
    status: ExecutionStatus | None = Field(default=None, description="only in this status")
    limit: Annotated[int, BeforeValidator(_whole_number)] = Field(
        default=DEFAULT_LIMIT, ge=1, le=MAX_LIMIT, description="at most this many")

    invalid = {"status": f"use one of {', '.join(STATUSES)}",
               "limit": f"use a whole number from 1 to {MAX_LIMIT}"}


class ScheduleQuery(Query):
    """``GET /v1/schedules``."""

    workflow: str | None = Field(default=None, description="only this workflow's")
