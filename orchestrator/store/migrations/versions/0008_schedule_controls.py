"""Schedule controls: schedules gain ``overlap``, ``jitter_seconds``, ``priority`` and the
overlap counters (``skipped_overlap``, ``buffered_overlap``); executions gain ``held_at`` (held by
the overlap policy) and ``backfill_id``; backfills get a table of their own.

Existing schedules keep today's behaviour (``allow_all``, no jitter, priority 0).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("orch_schedules") as batch:
        batch.add_column(sa.Column("overlap", sa.String(16), nullable=False,
                                   server_default="allow_all"))
        batch.add_column(sa.Column("jitter_seconds", sa.Float, nullable=True))
        batch.add_column(sa.Column("priority", sa.SmallInteger, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("skipped_overlap", sa.Integer, nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("buffered_overlap", sa.Integer, nullable=False,
                                   server_default="0"))
    with op.batch_alter_table("orch_executions") as batch:
        batch.add_column(sa.Column("held_at", UTCDateTime, nullable=True))
        batch.add_column(sa.Column("backfill_id", sa.String(40), nullable=True))
    op.create_index("orch_ix_executions_backfill", "orch_executions", ["backfill_id"])
    op.create_index("orch_ix_executions_held", "orch_executions", ["held_at"])
    op.create_index("orch_ix_executions_trigger_status", "orch_executions",
                    ["trigger_id", "status"])
    op.create_table(
        "orch_backfills",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("schedule_id", sa.String(40), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("start", UTCDateTime, nullable=False),
        sa.Column("end", UTCDateTime, nullable=False),
        sa.Column("overlap", sa.String(16), nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("created", sa.Integer, nullable=False),
        sa.Column("existing", sa.Integer, nullable=False),
        sa.Column("skipped", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_index("orch_ix_backfills_schedule_created", "orch_backfills",
                    ["schedule_id", "created_at"])


def downgrade() -> None:
    op.drop_index("orch_ix_backfills_schedule_created", "orch_backfills")
    op.drop_table("orch_backfills")
    op.drop_index("orch_ix_executions_trigger_status", "orch_executions")
    op.drop_index("orch_ix_executions_held", "orch_executions")
    op.drop_index("orch_ix_executions_backfill", "orch_executions")
    with op.batch_alter_table("orch_executions") as batch:
        batch.drop_column("backfill_id")
        batch.drop_column("held_at")
    with op.batch_alter_table("orch_schedules") as batch:
        for column in ("buffered_overlap", "skipped_overlap", "priority", "jitter_seconds",
                       "overlap"):
            batch.drop_column(column)
