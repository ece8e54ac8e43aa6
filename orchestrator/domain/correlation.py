"""Correlation ids, run tags and run keys: constants in one place, and the one codec of the
correlation fields.

Correlation is assigned once, where a trigger enters the system, and never regenerated. For
schedules the ids derive deterministically from the run key, so a repeated dispatch of the same
occurrence reuses them.

The fields of :class:`Correlation` are the one list of correlation fields. Every carrier is
derived from it: run config (:meth:`Correlation.to_config` / :meth:`Correlation.from_config`),
run tags (:meth:`~Correlation.tags` / :meth:`~Correlation.from_tags`), store rows
(:meth:`~Correlation.to_row` / :meth:`~Correlation.from_row`), alert payloads
(:meth:`~Correlation.to_json` / :meth:`~Correlation.from_json`) and log fields
(:meth:`~Correlation.log_fields`). Adding a field is one edit here (its tag, how it is encoded,
whether the burst buffer carries it) plus a migration adding its column;
``tests/unit/test_correlation_codec.py`` walks every carrier from this list.
"""

from __future__ import annotations

import copy
import uuid
from collections.abc import Mapping
from dataclasses import MISSING, dataclass, field, fields
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
TAG_REPLAYED_FROM = "orchestrator/replayed_from"
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
    REPLAY = "replay"  # `executions replay`: a new execution of another one's workflow


def iso_utc(moment: datetime) -> str:
    """ISO-8601 in UTC with a ``Z`` suffix, second precision (the form used in keys and tags)."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_iso(text: str) -> datetime:
    """An ISO-8601 instant as written by :func:`iso_utc` or a caller (``Z`` or an offset; a
    naive text stays naive for the caller to refuse). The one ISO parser of the package;
    raises ``ValueError``."""
    return datetime.fromisoformat(text)


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


class Kind(str, Enum):
    """How a correlation field is encoded in the carriers that hold only strings (tags, JSON)."""

    TEXT = "text"
    SOURCE = "source"  # a :class:`Source`; its value in tags, config, rows and JSON
    INSTANT = "instant"  # an aware datetime; ISO-8601 UTC (``Z``) in tags, config and JSON


@dataclass(frozen=True, kw_only=True)
class CorrelationField:
    """One correlation field: its name (attribute, config key, column, JSON key, log field), its
    run tag, its encoding, and whether the burst buffer carries it."""

    name: str
    tag: str
    kind: Kind = Kind.TEXT
    required: bool = False  # always set (no default)
    buffered: bool = True  # a column of ``orch_burst_buffer`` too

    def encode(self, value: Any) -> str | None:
        """The field's value as a string (tags, config, JSON, log fields); None stays None."""
        if value is None:
            return None
        if self.kind is Kind.SOURCE:
            return Source(value).value
        if self.kind is Kind.INSTANT:
            return iso_utc(value)
        return str(value)

    def decode(self, value: Any) -> Any:
        """The inverse of :meth:`encode` (a datetime or :class:`Source` passes as is)."""
        if value is None or value == "":
            return None
        if self.kind is Kind.SOURCE:
            return Source(value)
        if self.kind is Kind.INSTANT:
            moment = value if isinstance(value, datetime) else parse_iso(str(value))
            return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
        return value


def _carried(tag: str, kind: Kind = Kind.TEXT, *, buffered: bool = True) -> dict[str, Any]:
    """A correlation field's metadata: how the carriers hold it."""
    return {"tag": tag, "kind": kind, "buffered": buffered}


@dataclass(frozen=True, kw_only=True)
class Correlation:
    """The ids that travel with one execution: queue row, run tags and config, execution log,
    alerts and log lines. **The** list of correlation fields: each field's metadata says how
    every carrier holds it. ``payload`` travels with them (run config, rows) but is data, not a
    correlation id: it is never a tag, a log field or part of an alert."""

    execution_id: str = field(metadata=_carried(TAG_EXECUTION_ID))
    request_id: str = field(metadata=_carried(TAG_REQUEST_ID))
    source: Source = field(metadata=_carried(TAG_SOURCE, Kind.SOURCE))
    workflow: str = field(metadata=_carried(TAG_WORKFLOW))
    environment: str = field(metadata=_carried(TAG_ENVIRONMENT))
    trigger_id: str | None = field(default=None, metadata=_carried(TAG_TRIGGER_ID))
    # Schedules never pass the burst gate: a buffered trigger has no occurrence.
    scheduled_for: datetime | None = field(
        default=None, metadata=_carried(TAG_SCHEDULED_FOR, Kind.INSTANT, buffered=False))
    idempotency_key: str | None = field(default=None,
                                        metadata=_carried(TAG_IDEMPOTENCY_KEY))
    parent_execution_id: str | None = field(default=None,
                                            metadata=_carried(TAG_PARENT_EXECUTION_ID))
    # The execution a replay replays (a replay bypasses the burst gate).
    replayed_from: str | None = field(
        default=None, metadata=_carried(TAG_REPLAYED_FROM, buffered=False))
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
        source: Source = Source.SCHEDULE,
    ) -> Correlation:
        """The correlation of one occurrence; ``source=backfill`` for one a backfill creates
        (the same ids: one execution per occurrence, whoever creates it)."""
        key = schedule_run_key(schedule_id, scheduled_for)
        return Correlation(
            execution_id=derived_id("execution", key),
            request_id=derived_id("request", key),
            source=source,
            workflow=workflow,
            environment=environment,
            trigger_id=schedule_id,
            scheduled_for=scheduled_for,
            payload=payload,
        )

    # ------------------------------------------------------------------------------- the codec

    def ids(self) -> dict[str, Any]:
        """The correlation fields' values by name, as held (``Source``, ``datetime``)."""
        return {f.name: getattr(self, f.name) for f in CORRELATION_FIELDS}

    def correlation(self) -> Correlation:
        """This correlation alone (a record that extends it drops its other fields)."""
        return Correlation(**self.ids(), payload=self.payload)

    def tags(self) -> dict[str, str]:
        """Dagster run tags (strings only; absent fields are left out)."""
        encoded = ((f.tag, f.encode(getattr(self, f.name))) for f in CORRELATION_FIELDS)
        return {tag: value for tag, value in encoded if value}

    @classmethod
    def from_tags(cls, tags: Mapping[str, str], *,
                  payload: dict[str, Any] | None = None) -> Correlation:
        """The correlation a run's tags carry (tags hold no payload)."""
        return cls(**{f.name: f.decode(tags.get(f.tag)) for f in CORRELATION_FIELDS},
                   payload=payload or {})

    def to_json(self) -> dict[str, str | None]:
        """The correlation fields as JSON values (alert payloads, views): every field, absent
        ones as null."""
        return {f.name: f.encode(getattr(self, f.name)) for f in CORRELATION_FIELDS}

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *,
                  payload: dict[str, Any] | None = None) -> Correlation:
        return cls(**{f.name: f.decode(data.get(f.name)) for f in CORRELATION_FIELDS},
                   payload=payload or {})

    def log_fields(self) -> dict[str, str | None]:
        """The fields every log line of the execution carries (``extra=`` of a log call)."""
        return self.to_json()

    def to_config(self) -> dict[str, Any]:
        """Plain values for the job's run config (the payload last)."""
        return {**self.to_json(), "payload": copy.deepcopy(self.payload)}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Correlation:
        """The correlation of a run's config. Without ``execution_id`` (a run launched by hand
        from the launchpad) the correlation is fresh, ``source=manual``."""
        payload = dict(config.get("payload") or {})
        values = {f.name: f.decode(config.get(f.name)) for f in CORRELATION_FIELDS}
        if values["execution_id"] is None:
            return cls(execution_id=new_id(), request_id=new_id(), source=Source.MANUAL,
                       workflow=values["workflow"], environment=values["environment"],
                       payload=payload)
        values["request_id"] = values["request_id"] or new_id()
        values["source"] = values["source"] or Source.MANUAL
        return cls(**values, payload=payload)

    def to_row(self, *, buffered: bool = False) -> dict[str, Any]:
        """Column values of a store row (``orch_executions``; with ``buffered``,
        ``orch_burst_buffer``, which has no column for fields that never pass the gate)."""
        row: dict[str, Any] = {}
        for f in CORRELATION_FIELDS:
            value = getattr(self, f.name)
            if buffered and not f.buffered:
                if value is not None:
                    raise ValueError(f"the burst buffer cannot hold {f.name}")
                continue
            row[f.name] = Source(value).value if f.kind is Kind.SOURCE else value
        row["payload"] = self.payload
        return row

    @classmethod
    def row_values(cls, row: Any) -> dict[str, Any]:
        """The correlation fields of a store row (any object with the columns as attributes),
        decoded; fields a table has no column for are None."""
        return {f.name: f.decode(getattr(row, f.name, None)) for f in CORRELATION_FIELDS}

    @classmethod
    def from_row(cls, row: Any) -> Correlation:
        return cls(**cls.row_values(row), payload=row.payload)


def _fields() -> tuple[CorrelationField, ...]:
    return tuple(CorrelationField(name=f.name, required=f.default is MISSING, **f.metadata)
                 for f in fields(Correlation) if f.metadata)


CORRELATION_FIELDS: tuple[CorrelationField, ...] = _fields()
CORRELATION_FIELD_NAMES: tuple[str, ...] = tuple(f.name for f in CORRELATION_FIELDS)
