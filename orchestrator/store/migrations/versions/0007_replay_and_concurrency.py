"""Replay and concurrency limits: executions gain ``replayed_from`` and ``pinned_version``
(a replay of the original's version); executions, queue and burst-buffer rows gain
``concurrency_key``; queue rows ``pinned_version``; executions ``slot_at`` (a concurrency slot
granted by the dispatcher); environments ``max_concurrent``; and a partial index of the
executions in flight.

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import IN_FLIGHT_SQL, UTCDateTime

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_executions") as batch:
        batch.add_column(sa.Column("replayed_from", sa.String(36), nullable=True))
        batch.add_column(sa.Column("pinned_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("concurrency_key", sa.String(200), nullable=True))
        batch.add_column(sa.Column("slot_at", UTCDateTime, nullable=True))
    with op.batch_alter_table("orch_queued_triggers") as batch:
        batch.add_column(sa.Column("pinned_version", sa.Integer, nullable=True))
        batch.add_column(sa.Column("concurrency_key", sa.String(200), nullable=True))
    with op.batch_alter_table("orch_burst_buffer") as batch:
        batch.add_column(sa.Column("concurrency_key", sa.String(200), nullable=True))
    with op.batch_alter_table("orch_environments") as batch:
        batch.add_column(sa.Column("max_concurrent", sa.Integer, nullable=True))
    op.create_index("orch_ix_executions_in_flight", "orch_executions",
                    ["environment", "workflow", "concurrency_key"],
                    postgresql_where=sa.text(IN_FLIGHT_SQL), sqlite_where=sa.text(IN_FLIGHT_SQL))


def downgrade() -> None:
    op.drop_index("orch_ix_executions_in_flight", "orch_executions")
    with op.batch_alter_table("orch_environments") as batch:
        batch.drop_column("max_concurrent")
    with op.batch_alter_table("orch_burst_buffer") as batch:
        batch.drop_column("concurrency_key")
    with op.batch_alter_table("orch_queued_triggers") as batch:
        batch.drop_column("concurrency_key")
        batch.drop_column("pinned_version")
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("slot_at")
        batch.drop_column("concurrency_key")
        batch.drop_column("pinned_version")
        batch.drop_column("replayed_from")
