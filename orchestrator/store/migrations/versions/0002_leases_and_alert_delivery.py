"""Execution heartbeats (the lease the reconciler checks for killed run workers) and alert
delivery state (webhook POSTs retried until delivered).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_executions") as batch:
        batch.add_column(sa.Column("heartbeat_at", UTCDateTime, nullable=True))
    op.create_index("orch_ix_executions_status_heartbeat", "orch_executions",
                    ["status", "heartbeat_at"])
    with op.batch_alter_table("orch_alerts") as batch:
        batch.add_column(sa.Column("environment", sa.String(64), nullable=True))
        batch.add_column(sa.Column("workflow", sa.String(64), nullable=True))
        # pending (to POST) | delivered | failed (gave up) | none (no webhook configured)
        batch.add_column(sa.Column("delivery_status", sa.String(16), nullable=False,
                                   server_default="none"))
        batch.add_column(sa.Column("delivery_attempts", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("next_delivery_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("delivered_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("last_delivery_error", sa.Text, nullable=True))
    op.create_index("orch_ix_alerts_delivery", "orch_alerts",
                    ["delivery_status", "next_delivery_at"])
    op.create_index("orch_ix_alerts_created", "orch_alerts", ["created_at"])


def downgrade() -> None:
    op.drop_index("orch_ix_alerts_created", "orch_alerts")
    op.drop_index("orch_ix_alerts_delivery", "orch_alerts")
    with op.batch_alter_table("orch_alerts") as batch:
        for column in ("last_delivery_error", "delivered_at", "next_delivery_at",
                       "delivery_attempts", "delivery_status", "workflow", "environment"):
            batch.drop_column(column)
    op.drop_index("orch_ix_executions_status_heartbeat", "orch_executions")
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("heartbeat_at")
