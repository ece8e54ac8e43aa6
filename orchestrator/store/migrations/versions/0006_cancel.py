"""Cancellation: executions gain ``cancel_requested_at`` (a cancel asked for while it ran).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_executions") as batch:
        batch.add_column(sa.Column("cancel_requested_at", UTCDateTime, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("cancel_requested_at")
