"""Alerts in the SQL store: one per execution and kind (or per incident), and their outbound
delivery (claimed by compare-and-set, retried, given up)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError

from orchestrator.domain.payloads import storable_json, storable_text
from orchestrator.domain.records import AlertRecord, DeliveryStatus
from orchestrator.store import tables as t
from orchestrator.store.uow import Database, translated


class SqlAlerts:
    """The alerts repository on one :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @translated("record the alert")
    def record_alert(self, *, execution_id: str | None, kind: str, message: str,
                     details: dict[str, Any], environment: str | None, workflow: str | None,
                     now: datetime, deliver: bool, incident: str | None = None,
                     executions: Sequence[str] = ()) -> tuple[AlertRecord, bool]:
        """Insert the alert unless this execution already has one of this kind, or this
        ``incident`` one (the hook and the reconciler may both try). ``executions``: every
        execution an incident affected (findable from each). Returns the stored alert and
        whether this call created it."""
        a = t.alerts
        with self.db.write() as conn:
            created = False
            try:
                with conn.begin_nested():
                    inserted = conn.execute(a.insert().values(
                        execution_id=execution_id, kind=kind, message=storable_text(message),
                        details=storable_json(details),
                        environment=environment, workflow=workflow, created_at=now,
                        delivery_status=(DeliveryStatus.PENDING if deliver
                                         else DeliveryStatus.NONE).value,
                        delivery_attempts=0, next_delivery_at=now if deliver else None,
                        incident=incident))
                    alert_id = inserted.inserted_primary_key[0]  # type: ignore[index]
                    if executions:
                        conn.execute(t.alert_executions.insert(), [
                            {"alert_id": alert_id, "execution_id": e} for e in executions])
                created = True
            except IntegrityError:
                same = (a.c.incident == incident if incident is not None else
                        (a.c.execution_id == execution_id) & (a.c.kind == kind))
                alert_id = conn.execute(sa.select(a.c.id).where(same)).scalar_one()
            row = conn.execute(sa.select(a).where(a.c.id == alert_id)).one()
            return alert_record(row), created

    @translated("list alerts")
    def list_alerts(self, *, environment: str | None = None, execution_id: str | None = None,
                    limit: int = 50) -> list[AlertRecord]:
        a = t.alerts
        query = sa.select(a).order_by(a.c.created_at.desc(), a.c.id.desc()).limit(limit)
        if environment is not None:
            query = query.where(a.c.environment == environment)
        if execution_id is not None:  # its own alerts and the incidents that name it
            query = query.where((a.c.execution_id == execution_id) | a.c.id.in_(
                sa.select(t.alert_executions.c.alert_id)
                .where(t.alert_executions.c.execution_id == execution_id)))
        with self.db.read() as conn:
            return [alert_record(r) for r in conn.execute(query)]

    @translated("read alerts to deliver")
    def alerts_to_deliver(self, now: datetime, limit: int = 20) -> list[AlertRecord]:
        a = t.alerts
        with self.db.read() as conn:
            rows = conn.execute(sa.select(a).where(
                a.c.delivery_status == DeliveryStatus.PENDING.value,
                a.c.next_delivery_at <= now).order_by(a.c.next_delivery_at).limit(limit))
            return [alert_record(r) for r in rows]

    @translated("claim the alert delivery")
    def claim_alert_delivery(self, alert_id: int, *, now: datetime, lease_until: datetime) -> bool:
        """Take the right to POST this alert now (compare-and-set on ``next_delivery_at``), so
        the hook and the reconciler never deliver one alert twice at once."""
        a = t.alerts
        with self.db.write() as conn:
            return conn.execute(a.update().where(
                a.c.id == alert_id, a.c.delivery_status == DeliveryStatus.PENDING.value,
                a.c.next_delivery_at <= now).values(next_delivery_at=lease_until)).rowcount == 1

    @translated("record the alert delivery")
    def record_alert_delivery(self, alert_id: int, *, now: datetime, error: str | None,
                              retry_at: datetime | None) -> None:
        """After one POST: delivered (``error`` None), to retry at ``retry_at``, or given up
        (``retry_at`` None)."""
        a = t.alerts
        if error is None:
            values: dict[str, Any] = dict(delivery_status=DeliveryStatus.DELIVERED.value,
                                          delivered_at=now, next_delivery_at=None,
                                          last_delivery_error=None)
        else:
            values = dict(delivery_status=(DeliveryStatus.PENDING if retry_at
                                           else DeliveryStatus.FAILED).value,
                          next_delivery_at=retry_at, last_delivery_error=error[:500])
        with self.db.write() as conn:
            conn.execute(a.update().where(a.c.id == alert_id).values(
                delivery_attempts=a.c.delivery_attempts + 1, **values))


def alert_record(row: Any) -> AlertRecord:
    data = row._asdict()
    data["delivery_status"] = DeliveryStatus(data["delivery_status"])
    return AlertRecord(**data)
