"""Access lifecycle (issue 13): API keys gain ``expires_at`` and ``last_used_at``; webhooks gain
the previous secret of a rotation and its end; webhook receipts are keyed by message id (the
Standard Webhooks ``webhook-id``; legacy receipts keep their signature as it) and name the
execution they made; ``orch_burst_trips`` holds the burst gate's state for every server.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_api_keys") as batch:
        batch.add_column(sa.Column("expires_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("last_used_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("orch_webhooks") as batch:
        batch.add_column(sa.Column("previous_secret", sa.String(128), nullable=True))
        batch.add_column(sa.Column("previous_secret_expires_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("orch_webhook_receipts") as batch:
        batch.alter_column("signature", new_column_name="message_id",
                           existing_type=sa.String(64), type_=sa.String(200),
                           existing_nullable=False)
        batch.add_column(sa.Column("execution_id", sa.String(36), nullable=True))
    op.create_table(
        "orch_burst_trips",
        sa.Column("environment", sa.String(64), primary_key=True),
        sa.Column("tripped_until", UTCDateTime, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("orch_burst_trips")
    with op.batch_alter_table("orch_webhook_receipts") as batch:
        batch.drop_column("execution_id")
        batch.alter_column("message_id", new_column_name="signature",
                           existing_type=sa.String(200), type_=sa.String(64),
                           existing_nullable=False)
    with op.batch_alter_table("orch_webhooks") as batch:
        batch.drop_column("previous_secret_expires_at")
        batch.drop_column("previous_secret")
    with op.batch_alter_table("orch_api_keys") as batch:
        batch.drop_column("last_used_at")
        batch.drop_column("expires_at")
