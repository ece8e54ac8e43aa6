"""Workflows, schedules, API keys and webhooks in memory (the SQL twins: ``workflows.py``,
``schedules.py``, ``access.py``)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from orchestrator.domain.access import (
    LAST_USE_RESOLUTION,
    ApiKeyRecord,
    KeyGrant,
    WebhookRecord,
    hash_api_key,
    new_api_key,
)
from orchestrator.domain.correlation import new_id
from orchestrator.domain.records import ExecutionStatus, Outcome, ScheduleRecord, WorkflowRecord
from orchestrator.domain.schedules import FINALIZED_BY_PAUSE, PAUSED_ERROR, ScheduleSpec
from orchestrator.domain.signatures import new_standard_secret
from orchestrator.domain.workflow import WorkflowSpec
from orchestrator.exceptions import NotFound
from orchestrator.store.interfaces import Advance, WorkflowRepository, schedule_controls
from orchestrator.store.memory.state import MemoryState, Row, fresh, refused_as


def read_workflow(state: MemoryState, environment: str, name: str,
                  version: int | None = None) -> WorkflowRecord:
    """The workflow at ``version`` (default: current), deleted or not; raises NotFound."""
    row = state.table("workflows").get((environment, name))
    found = None if row is None else state.table("workflow_versions").get(
        (row["id"], version if version is not None else row["current_version"]))
    if row is None or found is None:
        suffix = f"@v{version}" if version else ""
        raise NotFound("workflow", f"{environment}/{name}{suffix}")
    return WorkflowRecord(name=name, environment=environment, version=found["version"],
                          digest=found["digest"], document=fresh(found["document"]),
                          created_at=row["created_at"], updated_at=row["updated_at"],
                          deleted_at=row["deleted_at"])


class MemoryWorkflows:
    def __init__(self, state: MemoryState) -> None:
        self.state = state

    @refused_as("apply the workflow")
    def apply_workflow(self, spec: WorkflowSpec, now: datetime) -> tuple[WorkflowRecord, bool]:
        with self.state.transaction() as s:
            key = (spec.environment, spec.name)
            row = s.table("workflows").get(key)
            if row is None:
                row = {"id": s.next_id(), "environment": spec.environment, "name": spec.name,
                       "current_version": 1, "created_at": now, "updated_at": now,
                       "deleted_at": None}
                s.insert("workflows", key, row)
                version = 1
            else:
                current = s.table("workflow_versions")[(row["id"], row["current_version"])]
                if current["digest"] == spec.digest and row["deleted_at"] is None:
                    return read_workflow(s, *key), False
                version = max(v for (wid, v) in s.table("workflow_versions")
                              if wid == row["id"]) + 1
                s.update("workflows", key, current_version=version, updated_at=now,
                         deleted_at=None)
            s.insert("workflow_versions", (row["id"], version), {
                "version": version, "digest": spec.digest, "document": spec.document,
                "created_at": now})
            return read_workflow(s, *key), True

    def get_workflow(self, environment: str, name: str, version: int | None = None,
                     *, include_deleted: bool = False) -> WorkflowRecord:
        with self.state.lock:
            record = read_workflow(self.state, environment, name, version)
        if record.deleted_at is not None and not include_deleted and version is None:
            raise NotFound("workflow", f"{environment}/{name}")
        return record

    def list_workflows(self, environment: str | None = None) -> list[WorkflowRecord]:
        with self.state.lock:
            return [read_workflow(self.state, env, name)
                    for (env, name), row in sorted(self.state.table("workflows").items())
                    if row["deleted_at"] is None and environment in (None, env)]

    @refused_as("delete the workflow")
    def delete_workflow(self, environment: str, name: str, now: datetime) -> int:
        with self.state.transaction() as s:
            row = s.table("workflows").get((environment, name))
            if row is None or row["deleted_at"] is not None:
                raise NotFound("workflow", f"{environment}/{name}")
            s.update("workflows", (environment, name), deleted_at=now, updated_at=now)
            paused = [i for i, r in s.table("schedules").items()
                      if (r["environment"], r["workflow"]) == (environment, name) and r["enabled"]]
            for schedule_id in paused:
                s.update("schedules", schedule_id, enabled=False, next_run_at=None,
                         updated_at=now)
            return len(paused)


def _schedule(row: Row) -> ScheduleRecord:
    return ScheduleRecord(**{**row, "payload": fresh(row["payload"])})


class MemorySchedules:
    def __init__(self, state: MemoryState, workflows: WorkflowRepository) -> None:
        self.state = state
        self.workflows = workflows

    @refused_as("create the schedule")
    def create_schedule(self, spec: ScheduleSpec, now: datetime) -> tuple[ScheduleRecord, bool]:
        self.workflows.get_workflow(spec.environment, spec.workflow)  # raises NotFound
        values: Row = dict(environment=spec.environment, workflow=spec.workflow, cron=spec.cron,
                           timezone=spec.timezone, run_at=spec.run_at, payload=spec.payload,
                           key=spec.key, enabled=True, next_run_at=spec.first_run_at(now),
                           updated_at=now, **schedule_controls(spec))
        with self.state.transaction() as s:
            if spec.key is not None:
                existing = next((r for r in s.table("schedules").values()
                                 if (r["environment"], r["key"]) == (spec.environment, spec.key)),
                                None)
                if existing is not None:
                    same_timing = (existing["cron"] == spec.cron and
                                   existing["timezone"] == spec.timezone and
                                   existing["run_at"] == spec.run_at and existing["enabled"])
                    if same_timing:  # keep next_run_at: an upsert must not skip or replay
                        values.pop("next_run_at")
                    return _schedule(s.update("schedules", existing["id"], **values)), False
            schedule_id = "sch_" + new_id().replace("-", "")[:20]
            s.insert("schedules", schedule_id, dict(
                id=schedule_id, created_at=now, last_scheduled_for=None, skipped_superseded=0,
                skipped_outside_window=0, skipped_overlap=0, buffered_overlap=0, **values))
            return _schedule(s.table("schedules")[schedule_id]), True

    def get_schedule(self, schedule_id: str) -> ScheduleRecord:
        row = self.state.table("schedules").get(schedule_id)
        if row is None:
            raise NotFound("schedule", schedule_id)
        return _schedule(row)

    def list_schedules(self, environment: str | None = None,
                       workflow: str | None = None) -> list[ScheduleRecord]:
        with self.state.lock:
            rows = sorted(self.state.table("schedules").values(),
                          key=lambda r: (r["created_at"], r["id"]))
        return [_schedule(r) for r in rows if environment in (None, r["environment"])
                and workflow in (None, r["workflow"])]

    @refused_as("pause the schedule")
    def pause_schedule(self, schedule_id: str, now: datetime) -> ScheduleRecord:
        with self.state.transaction() as s:
            self.get_schedule(schedule_id)
            for row in list(s.table("executions").values()):
                if row["status"] == ExecutionStatus.QUEUED.value and \
                        row["trigger_id"] == schedule_id:
                    s.table("queued").pop(row["execution_id"], None)
                    s.update("executions", row["execution_id"],
                             status=ExecutionStatus.CANCELLED.value,
                             outcome=Outcome.CANCELLED.value, finalized_by=FINALIZED_BY_PAUSE,
                             finished_at=now, error=dict(PAUSED_ERROR))
            return _schedule(s.update("schedules", schedule_id, enabled=False, next_run_at=None,
                                      updated_at=now))

    @refused_as("resume the schedule")
    def resume_schedule(self, schedule_id: str, next_run_at: datetime,
                        now: datetime) -> ScheduleRecord:
        with self.state.transaction() as s:
            if not self.get_schedule(schedule_id).enabled:
                s.update("schedules", schedule_id, enabled=True, next_run_at=next_run_at,
                         updated_at=now)
            return self.get_schedule(schedule_id)

    def delete_schedule(self, schedule_id: str) -> None:
        with self.state.transaction() as s:
            if s.table("schedules").pop(schedule_id, None) is None:
                raise NotFound("schedule", schedule_id)

    def due_schedules(self, now: datetime, limit: int, *,
                      after: tuple[datetime, str] | None = None) -> list[ScheduleRecord]:
        with self.state.lock:
            due = sorted((r for r in self.state.table("schedules").values()
                          if r["enabled"] and r["next_run_at"] is not None
                          and r["next_run_at"] <= now
                          and (after is None or (r["next_run_at"], r["id"]) > after)),
                         key=lambda r: (r["next_run_at"], r["id"]))
        return [_schedule(r) for r in due[:limit]]

    def next_due_at(self) -> datetime | None:
        with self.state.lock:
            return min((r["next_run_at"] for r in self.state.table("schedules").values()
                        if r["next_run_at"] is not None), default=None)

    def advance_schedule(self, schedule_id: str, *, expected: datetime,
                         next_run_at: datetime | None, now: datetime,
                         dispatched: datetime | None = None, superseded: int = 0,
                         outside_window: int = 0) -> bool:
        return self.advance_schedules([Advance(
            schedule_id=schedule_id, expected=expected, next_run_at=next_run_at,
            dispatched=dispatched, superseded=superseded, outside_window=outside_window)],
            now) == 1

    @refused_as("advance the schedules")
    def advance_schedules(self, advances: Sequence[Advance], now: datetime) -> int:
        with self.state.transaction() as s:
            return sum(apply_advance(s, a, now) for a in advances)

    def schedules_by_id(self, schedule_ids: Sequence[str]) -> dict[str, ScheduleRecord]:
        rows = self.state.table("schedules")
        return {i: _schedule(rows[i]) for i in schedule_ids if i in rows}


def apply_advance(s: MemoryState, a: Advance, now: datetime) -> int:
    """One :class:`Advance` compare-and-set inside the caller's transaction ``s``."""
    row = s.table("schedules").get(a.schedule_id)
    if row is None or not row["enabled"] or row["next_run_at"] != a.expected:
        return 0
    values: dict[str, Any] = dict(
        next_run_at=a.next_run_at, updated_at=now,
        skipped_superseded=row["skipped_superseded"] + a.superseded,
        skipped_outside_window=row["skipped_outside_window"] + a.outside_window,
        skipped_overlap=row["skipped_overlap"] + a.skipped_overlap,
        buffered_overlap=row["buffered_overlap"] + a.buffered_overlap)
    if a.next_run_at is None:
        values["enabled"] = False
    if a.dispatched is not None:
        values["last_scheduled_for"] = a.dispatched
    s.update("schedules", a.schedule_id, **values)
    return 1


def _short_id(prefix: str) -> str:
    return prefix + new_id().replace("-", "")[:20]


class MemoryAccess:
    def __init__(self, state: MemoryState, workflows: WorkflowRepository) -> None:
        self.state = state
        self.workflows = workflows

    def create_api_key(self, environment: str, now: datetime,
                       expires_at: datetime | None = None) -> tuple[ApiKeyRecord, str]:
        key = new_api_key()
        record = ApiKeyRecord(id=_short_id("key_"), environment=environment,
                              prefix=key[:12], created_at=now, expires_at=expires_at)
        with self.state.transaction() as s:
            s.insert("api_keys", record.id, {**record.__dict__, "key_hash": hash_api_key(key)})
        return record, key

    def check_api_key(self, key: str, now: datetime) -> KeyGrant | None:
        wanted = hash_api_key(key)
        with self.state.lock:
            keys = self.state.table("api_keys")
            row = next((r for r in keys.values()
                        if r["key_hash"] == wanted and r["revoked_at"] is None), None)
            if row is None:
                return None
            grant = KeyGrant(key_id=row["id"], environment=row["environment"],
                             expires_at=row["expires_at"])
            last = row["last_used_at"]
            if grant.valid_at(now) and (last is None or last <= now - LAST_USE_RESOLUTION):
                keys[row["id"]] = {**row, "last_used_at": now}
        return grant

    def list_api_keys(self, environment: str | None = None) -> list[ApiKeyRecord]:
        with self.state.lock:
            rows = sorted(self.state.table("api_keys").values(),
                          key=lambda r: (r["created_at"], r["id"]))
        return [_key(r) for r in rows if environment in (None, r["environment"])]

    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRecord:
        with self.state.transaction() as s:
            keys = s.table("api_keys")
            row = keys.get(key_id)
            if row is None:
                raise NotFound("API key", key_id)
            if row["revoked_at"] is None:
                keys[key_id] = row = {**row, "revoked_at": now}
        return _key(row)

    def create_webhook(self, environment: str, workflow: str, now: datetime) -> WebhookRecord:
        self.workflows.get_workflow(environment, workflow)  # NotFound: nothing to trigger
        record = WebhookRecord(id=_short_id("wh_"), environment=environment, workflow=workflow,
                               secret=new_standard_secret(), created_at=now)
        with self.state.transaction() as s:
            s.insert("webhooks", record.id, dict(record.__dict__))
        return record

    def get_webhook(self, webhook_id: str) -> WebhookRecord:
        row = self.state.table("webhooks").get(webhook_id)
        if row is None:
            raise NotFound("webhook", webhook_id)
        return WebhookRecord(**row)

    def list_webhooks(self, environment: str | None = None) -> list[WebhookRecord]:
        with self.state.lock:
            rows = sorted(self.state.table("webhooks").values(),
                          key=lambda r: (r["created_at"], r["id"]))
        return [WebhookRecord(**r) for r in rows if environment in (None, r["environment"])]

    def delete_webhook(self, webhook_id: str) -> None:
        with self.state.transaction() as s:
            if s.table("webhooks").pop(webhook_id, None) is None:
                raise NotFound("webhook", webhook_id)

    def rotate_webhook_secret(self, webhook_id: str, now: datetime,
                              grace: timedelta) -> WebhookRecord:
        with self.state.transaction() as s:
            row = s.table("webhooks").get(webhook_id)
            if row is None:
                raise NotFound("webhook", webhook_id)
            rotated = WebhookRecord(**row).rotated(new_standard_secret(), now, grace)
            s.table("webhooks")[webhook_id] = dict(rotated.__dict__)
        return rotated


def _key(row: Row) -> ApiKeyRecord:
    return ApiKeyRecord(**{k: v for k, v in row.items() if k != "key_hash"})
