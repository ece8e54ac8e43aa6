"""API keys (hashed; revocable, with an expiry and their last use) and webhooks (id + secret,
rotated with a grace period) in the store."""

from __future__ import annotations

from datetime import datetime, timedelta

import sqlalchemy as sa

from orchestrator.domain.access import (
    LAST_USE_RESOLUTION,
    ApiKeyRecord,
    KeyGrant,
    WebhookRecord,
    hash_api_key,
    new_api_key,
)
from orchestrator.domain.correlation import new_id
from orchestrator.domain.signatures import new_standard_secret
from orchestrator.exceptions import NotFound
from orchestrator.store import tables as t
from orchestrator.store.interfaces import WorkflowRepository
from orchestrator.store.uow import Database, translated


def _short_id(prefix: str) -> str:
    return prefix + new_id().replace("-", "")[:20]


class AccessStore:
    """The access repository (keys and webhooks) on one
    :class:`~orchestrator.store.uow.Database`."""

    def __init__(self, db: Database, workflows: WorkflowRepository) -> None:
        self.db = db
        self.workflows = workflows  # a webhook triggers a workflow that must exist

    # ------------------------------------------------------------------------------ API keys

    @translated("create the API key")
    def create_api_key(self, environment: str, now: datetime,
                       expires_at: datetime | None = None) -> tuple[ApiKeyRecord, str]:
        """Returns the record and the key itself (the only time it exists in clear)."""
        key = new_api_key()
        record = ApiKeyRecord(id=_short_id("key_"), environment=environment,
                              prefix=key[:12], created_at=now, expires_at=expires_at)
        with self.db.write() as conn:
            conn.execute(t.api_keys.insert().values(
                id=record.id, environment=environment, key_hash=hash_api_key(key),
                prefix=record.prefix, created_at=now, expires_at=expires_at))
        return record, key

    @translated("check the API key")
    def check_api_key(self, key: str, now: datetime) -> KeyGrant | None:
        """What a key that is not revoked grants (its expiry included: the caller checks it
        against its clock), else None. A valid key's last use is recorded, at most once per
        :data:`LAST_USE_RESOLUTION`."""
        k = t.api_keys
        with self.db.read() as conn:
            row = conn.execute(sa.select(k.c.id, k.c.environment, k.c.expires_at,
                                         k.c.last_used_at).where(
                k.c.key_hash == hash_api_key(key), k.c.revoked_at.is_(None))).first()
        if row is None:
            return None
        grant = KeyGrant(key_id=row.id, environment=row.environment, expires_at=row.expires_at)
        if grant.valid_at(now) and (row.last_used_at is None
                                    or row.last_used_at <= now - LAST_USE_RESOLUTION):
            with self.db.write() as conn:
                conn.execute(k.update().where(
                    k.c.id == row.id, sa.or_(k.c.last_used_at.is_(None),
                                             k.c.last_used_at <= now - LAST_USE_RESOLUTION))
                    .values(last_used_at=now))
        return grant

    @translated("list API keys")
    def list_api_keys(self, environment: str | None = None) -> list[ApiKeyRecord]:
        k = t.api_keys
        query = sa.select(k.c.id, k.c.environment, k.c.prefix, k.c.created_at, k.c.revoked_at,
                          k.c.expires_at, k.c.last_used_at).order_by(k.c.created_at, k.c.id)
        if environment is not None:
            query = query.where(k.c.environment == environment)
        with self.db.read() as conn:
            return [ApiKeyRecord(**r._asdict()) for r in conn.execute(query)]

    @translated("revoke the API key")
    def revoke_api_key(self, key_id: str, now: datetime) -> ApiKeyRecord:
        """Revoked from ``now`` (a key revoked before keeps its first revocation)."""
        k = t.api_keys
        with self.db.write() as conn:
            conn.execute(k.update().where(k.c.id == key_id, k.c.revoked_at.is_(None))
                         .values(revoked_at=now))
            row = conn.execute(sa.select(k.c.id, k.c.environment, k.c.prefix, k.c.created_at,
                                         k.c.revoked_at, k.c.expires_at, k.c.last_used_at)
                               .where(k.c.id == key_id)).first()
        if row is None:
            raise NotFound("API key", key_id)
        return ApiKeyRecord(**row._asdict())

    # ------------------------------------------------------------------------------ webhooks

    @translated("create the webhook")
    def create_webhook(self, environment: str, workflow: str, now: datetime) -> WebhookRecord:
        self.workflows.get_workflow(environment, workflow)  # NotFound: nothing to trigger
        record = WebhookRecord(id=_short_id("wh_"), environment=environment, workflow=workflow,
                               secret=new_standard_secret(), created_at=now)
        with self.db.write() as conn:
            conn.execute(t.webhooks.insert().values(**record.__dict__))
        return record

    @translated("read the webhook")
    def get_webhook(self, webhook_id: str) -> WebhookRecord:
        with self.db.read() as conn:
            row = conn.execute(sa.select(t.webhooks).where(t.webhooks.c.id == webhook_id)).first()
        if row is None:
            raise NotFound("webhook", webhook_id)
        return WebhookRecord(**row._asdict())

    @translated("list webhooks")
    def list_webhooks(self, environment: str | None = None) -> list[WebhookRecord]:
        w = t.webhooks
        query = sa.select(w).order_by(w.c.created_at, w.c.id)
        if environment is not None:
            query = query.where(w.c.environment == environment)
        with self.db.read() as conn:
            return [WebhookRecord(**r._asdict()) for r in conn.execute(query)]

    @translated("delete the webhook")
    def delete_webhook(self, webhook_id: str) -> None:
        with self.db.write() as conn:
            if conn.execute(t.webhooks.delete().where(t.webhooks.c.id == webhook_id)
                            ).rowcount == 0:
                raise NotFound("webhook", webhook_id)


    @translated("rotate the webhook's secret")
    def rotate_webhook_secret(self, webhook_id: str, now: datetime,
                              grace: timedelta) -> WebhookRecord:
        """A new (Standard Webhooks) secret; the one it replaces is accepted for ``grace``."""
        w = t.webhooks
        with self.db.write() as conn:
            row = conn.execute(sa.select(w).where(w.c.id == webhook_id).with_for_update()
                               ).first()
            if row is None:
                raise NotFound("webhook", webhook_id)
            rotated = WebhookRecord(**row._asdict()).rotated(new_standard_secret(), now, grace)
            conn.execute(w.update().where(w.c.id == webhook_id).values(
                secret=rotated.secret, previous_secret=rotated.previous_secret,
                previous_secret_expires_at=rotated.previous_secret_expires_at))
        return rotated
