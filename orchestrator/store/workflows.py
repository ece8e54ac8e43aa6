"""Workflows in the SQL store: versioned definitions per environment (soft delete keeps history)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.records import WorkflowRecord
from orchestrator.domain.workflow import WorkflowSpec
from orchestrator.exceptions import NotFound
from orchestrator.store import tables as t
from orchestrator.store.uow import Database, translated


def live_workflows(pairs: Any) -> sa.ColumnElement[bool]:
    """The workflows of ``pairs`` ((environment, name) tuples, or an expanding parameter) that
    exist, not deleted (admission refuses a trigger for any other)."""
    w = t.workflows
    return sa.and_(sa.tuple_(w.c.environment, w.c.name).in_(pairs), w.c.deleted_at.is_(None))


def pair_parameters(count: int) -> list[sa.Tuple]:
    """``count`` (environment, name) pairs as named parameters, for :func:`live_workflows` in
    a statement of a fixed shape (prepared once: no expanding parameter); their values are
    :func:`pair_values`. No column's ``<name>_<i>`` parameter is named like them."""
    return [sa.tuple_(sa.bindparam(f"live_environment_{i}"), sa.bindparam(f"live_workflow_{i}"))
            for i in range(count)]


def pair_values(pairs: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The parameters of :func:`pair_parameters` for ``pairs``."""
    values: dict[str, str] = {}
    for i, (environment, name) in enumerate(pairs):
        values[f"live_environment_{i}"], values[f"live_workflow_{i}"] = environment, name
    return values


class SqlWorkflows:
    """The workflows repository on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("apply the workflow")
    def apply_workflow(self, spec: WorkflowSpec, now: datetime) -> tuple[WorkflowRecord, bool]:
        """Store ``spec`` as the workflow's new current version. Returns the record and whether a
        new version was written (re-applying an identical document writes nothing)."""
        with self.db.write() as conn:
            row = conn.execute(sa.select(t.workflows).where(
                t.workflows.c.environment == spec.environment,
                t.workflows.c.name == spec.name)).first()
            if row is None:
                try:
                    with conn.begin_nested():
                        inserted = conn.execute(t.workflows.insert().values(
                            environment=spec.environment, name=spec.name, current_version=1,
                            created_at=now, updated_at=now)).inserted_primary_key
                        assert inserted is not None
                        workflow_id = inserted[0]
                except IntegrityError:  # a concurrent apply created it; retry as an update
                    return self.apply_workflow(spec, now)
                version = 1
            else:
                current = conn.execute(sa.select(t.workflow_versions.c.digest).where(
                    t.workflow_versions.c.workflow_id == row.id,
                    t.workflow_versions.c.version == row.current_version)).scalar_one()
                if current == spec.digest and row.deleted_at is None:
                    return read_workflow(conn, spec.environment, spec.name), False
                workflow_id = row.id
                version = (conn.execute(sa.select(sa.func.max(t.workflow_versions.c.version))
                                        .where(t.workflow_versions.c.workflow_id == row.id))
                           .scalar_one() or 0) + 1
                conn.execute(t.workflows.update().where(t.workflows.c.id == row.id).values(
                    current_version=version, updated_at=now, deleted_at=None))
            conn.execute(t.workflow_versions.insert().values(
                workflow_id=workflow_id, version=version, digest=spec.digest,
                document=spec.document, created_at=now))
            return read_workflow(conn, spec.environment, spec.name), True

    @translated("read the workflow")
    def get_workflow(self, environment: str, name: str, version: int | None = None,
                     *, include_deleted: bool = False) -> WorkflowRecord:
        with self.db.read() as conn:
            record = read_workflow(conn, environment, name, version)
        if record.deleted_at is not None and not include_deleted and version is None:
            raise NotFound("workflow", f"{environment}/{name}")
        return record

    @translated("list workflows")
    def list_workflows(self, environment: str | None = None) -> list[WorkflowRecord]:
        w, v = t.workflows, t.workflow_versions
        query = (sa.select(w, v.c.version, v.c.digest, v.c.document)
                 .join(v, (v.c.workflow_id == w.c.id) & (v.c.version == w.c.current_version))
                 .where(w.c.deleted_at.is_(None)).order_by(w.c.environment, w.c.name))
        if environment is not None:
            query = query.where(w.c.environment == environment)
        with self.db.read() as conn:
            return [WorkflowRecord(name=r.name, environment=r.environment, version=r.version,
                                   digest=r.digest, document=r.document, created_at=r.created_at,
                                   updated_at=r.updated_at) for r in conn.execute(query)]

    @translated("delete the workflow")
    def delete_workflow(self, environment: str, name: str, now: datetime) -> int:
        """Soft-delete: history stays, schedules are paused. Returns schedules paused."""
        with self.db.write() as conn:
            done = conn.execute(t.workflows.update().where(
                t.workflows.c.environment == environment, t.workflows.c.name == name,
                t.workflows.c.deleted_at.is_(None)).values(deleted_at=now, updated_at=now))
            if done.rowcount == 0:
                raise NotFound("workflow", f"{environment}/{name}")
            paused = conn.execute(t.schedules.update().where(
                t.schedules.c.environment == environment, t.schedules.c.workflow == name,
                t.schedules.c.enabled.is_(True)).values(enabled=False, next_run_at=None,
                                                         updated_at=now))
            return paused.rowcount


def read_workflow(conn: sa.Connection, environment: str, name: str,
                  version: int | None = None) -> WorkflowRecord:
    """The workflow at ``version`` (default: the current one), deleted or not, on the caller's
    connection; raises :class:`NotFound`."""
    w, v = t.workflows, t.workflow_versions
    row = conn.execute(
        sa.select(w, v.c.version, v.c.digest, v.c.document)
        .join(v, v.c.workflow_id == w.c.id)
        .where(w.c.environment == environment, w.c.name == name,
               v.c.version == (version if version is not None else w.c.current_version))
    ).first()
    if row is None:
        suffix = f"@v{version}" if version else ""
        raise NotFound("workflow", f"{environment}/{name}{suffix}")
    return WorkflowRecord(name=row.name, environment=row.environment, version=row.version,
                          digest=row.digest, document=row.document, created_at=row.created_at,
                          updated_at=row.updated_at, deleted_at=row.deleted_at)
