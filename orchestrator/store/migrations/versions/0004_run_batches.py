"""Batch runs: ``orch_run_batches``; executions and queued triggers gain ``run_batch_id``; alerts
gain ``incident`` (one alert per incident) and the ``orch_alert_executions`` link table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orch_run_batches",
        sa.Column("batch_id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("size", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("dispatched_at", UTCDateTime, nullable=True),
    )
    op.create_index("orch_ix_run_batches_pending", "orch_run_batches",
                    ["kind", "dispatched_at", "created_at"])
    with op.batch_alter_table("orch_executions") as batch:
        batch.add_column(sa.Column("run_batch_id", sa.String(40), nullable=True))
    op.create_index("orch_ix_executions_run_batch", "orch_executions", ["run_batch_id"])
    with op.batch_alter_table("orch_queued_triggers") as batch:
        batch.add_column(sa.Column("run_batch_id", sa.String(40), nullable=True))
    with op.batch_alter_table("orch_alerts") as batch:
        batch.add_column(sa.Column("incident", sa.String(80), nullable=True))
        batch.create_unique_constraint("orch_uq_alerts_incident", ["incident"])
    op.create_table(
        "orch_alert_executions",
        sa.Column("alert_id", sa.Integer, sa.ForeignKey("orch_alerts.id"), primary_key=True),
        sa.Column("execution_id", sa.String(36), primary_key=True),
    )
    op.create_index("orch_ix_alert_executions_execution", "orch_alert_executions",
                    ["execution_id"])


def downgrade() -> None:
    op.drop_table("orch_alert_executions")
    with op.batch_alter_table("orch_alerts") as batch:
        batch.drop_constraint("orch_uq_alerts_incident", type_="unique")
        batch.drop_column("incident")
    with op.batch_alter_table("orch_queued_triggers") as batch:
        batch.drop_column("run_batch_id")
    op.drop_index("orch_ix_executions_run_batch", "orch_executions")
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("run_batch_id")
    op.drop_index("orch_ix_run_batches_pending", "orch_run_batches")
    op.drop_table("orch_run_batches")
