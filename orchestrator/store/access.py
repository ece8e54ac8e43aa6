"""API keys (hashed) and webhooks (id + secret, with a replay guard) in the store."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from orchestrator.domain.access import (
    ApiKeyRecord,
    WebhookRecord,
    hash_api_key,
    new_api_key,
    new_webhook_secret,
)
from orchestrator.domain.correlation import new_id
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
    def create_api_key(self, environment: str, now: datetime) -> tuple[ApiKeyRecord, str]:
        """Returns the record and the key itself (the only time it exists in clear)."""
        key = new_api_key()
        record = ApiKeyRecord(id=_short_id("key_"), environment=environment,
                              prefix=key[:12], created_at=now)
        with self.db.write() as conn:
            conn.execute(t.api_keys.insert().values(
                id=record.id, environment=environment, key_hash=hash_api_key(key),
                prefix=record.prefix, created_at=now))
        return record, key

    @translated("check the API key")
    def environment_of_key(self, key: str) -> str | None:
        """The environment a (not revoked) key belongs to, else None."""
        k = t.api_keys
        with self.db.read() as conn:
            return conn.execute(sa.select(k.c.environment).where(
                k.c.key_hash == hash_api_key(key), k.c.revoked_at.is_(None))).scalar()

    @translated("list API keys")
    def list_api_keys(self, environment: str | None = None) -> list[ApiKeyRecord]:
        k = t.api_keys
        query = sa.select(k.c.id, k.c.environment, k.c.prefix, k.c.created_at,
                          k.c.revoked_at).order_by(k.c.created_at, k.c.id)
        if environment is not None:
            query = query.where(k.c.environment == environment)
        with self.db.read() as conn:
            return [ApiKeyRecord(**r._asdict()) for r in conn.execute(query)]

    # ------------------------------------------------------------------------------ webhooks

    @translated("create the webhook")
    def create_webhook(self, environment: str, workflow: str, now: datetime) -> WebhookRecord:
        self.workflows.get_workflow(environment, workflow)  # NotFound: nothing to trigger
        record = WebhookRecord(id=_short_id("wh_"), environment=environment, workflow=workflow,
                               secret=new_webhook_secret(), created_at=now)
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

