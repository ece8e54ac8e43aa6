"""HTTP API: hashed API keys, webhooks and their replay guard, idempotency keys, debounce state,
the burst buffer; executions gain ``batch_id``, queued triggers ``available_at`` and an index for
fair (per-environment) dispatch.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import JSONType, UTCDateTime

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orch_api_keys",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("key_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("revoked_at", UTCDateTime, nullable=True),
        sa.UniqueConstraint("key_hash", name="orch_uq_api_keys_key_hash"),
    )
    op.create_table(
        "orch_webhooks",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("secret", sa.String(128), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "orch_webhook_receipts",
        sa.Column("webhook_id", sa.String(40), primary_key=True),
        sa.Column("signature", sa.String(64), primary_key=True),
        sa.Column("received_at", UTCDateTime, nullable=False),
    )
    op.create_index("orch_ix_webhook_receipts_received", "orch_webhook_receipts",
                    ["received_at"])
    op.create_table(
        "orch_idempotency_keys",
        sa.Column("environment", sa.String(64), primary_key=True),
        sa.Column("workflow", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("expires_at", UTCDateTime, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "orch_debounces",
        sa.Column("environment", sa.String(64), primary_key=True),
        sa.Column("workflow", sa.String(64), primary_key=True),
        sa.Column("key", sa.String(200), primary_key=True),
        sa.Column("execution_id", sa.String(36), nullable=False),
        sa.Column("mode", sa.String(16), nullable=False),
        sa.Column("first_at", UTCDateTime, nullable=False),
        sa.Column("latest_at", UTCDateTime, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "orch_burst_buffer",
        sa.Column("execution_id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("trigger_id", sa.String(64), nullable=True),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("idempotency_expires_at", UTCDateTime, nullable=True),
        sa.Column("parent_execution_id", sa.String(36), nullable=True),
        sa.Column("batch_id", sa.String(40), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("orch_ix_burst_buffer_environment_created", "orch_burst_buffer",
                    ["environment", "created_at"])
    op.create_index("orch_ix_burst_buffer_created", "orch_burst_buffer", ["created_at"])
    with op.batch_alter_table("orch_executions") as batch:
        batch.add_column(sa.Column("batch_id", sa.String(40), nullable=True))
    with op.batch_alter_table("orch_queued_triggers") as batch:
        batch.add_column(sa.Column("available_at", UTCDateTime, nullable=True))
    op.create_index("orch_ix_queued_triggers_status_environment_created", "orch_queued_triggers",
                    ["status", "environment", "created_at"])


def downgrade() -> None:
    op.drop_index("orch_ix_queued_triggers_status_environment_created", "orch_queued_triggers")
    with op.batch_alter_table("orch_queued_triggers") as batch:
        batch.drop_column("available_at")
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("batch_id")
    for table in ("burst_buffer", "debounces", "idempotency_keys", "webhook_receipts",
                  "webhooks", "api_keys"):
        op.drop_table(f"orch_{table}")
