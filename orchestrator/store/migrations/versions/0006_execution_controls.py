"""Execution controls: executions gain ``cancel_requested_at`` (a cancel asked for while it
ran); executions and burst-buffer rows gain ``not_before`` (a delay) and ``expires_at`` (a
TTL); executions, queue and burst-buffer rows gain ``priority``.

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
    for table in ("orch_executions", "orch_burst_buffer"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("not_before", UTCDateTime, nullable=True))
            batch.add_column(sa.Column("expires_at", UTCDateTime, nullable=True))
    for table in ("orch_executions", "orch_queued_triggers", "orch_burst_buffer"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("priority", sa.SmallInteger, nullable=False,
                                       server_default="0"))


def downgrade() -> None:
    for table in ("orch_burst_buffer", "orch_queued_triggers", "orch_executions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("priority")
    for table in ("orch_burst_buffer", "orch_executions"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("expires_at")
            batch.drop_column("not_before")
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("cancel_requested_at")
