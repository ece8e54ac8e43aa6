"""Retention: ``orch_environments`` (a retention override per environment),
``orch_prune_totals`` (rows pruned, per kind), and indexes on executions' ``finished_at`` (the
pruner) and ``(environment, created_at DESC, execution_id)`` (an environment's listing, in
its order, in a store of millions).

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orch_environments",
        sa.Column("environment", sa.String(64), primary_key=True),
        sa.Column("retention_seconds", sa.BigInteger, nullable=True),
        sa.Column("updated_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "orch_prune_totals",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("count", sa.BigInteger, nullable=False),
    )
    op.create_index("orch_ix_executions_finished", "orch_executions", ["finished_at"])
    op.create_index("orch_ix_executions_environment_created", "orch_executions",
                    ["environment", sa.text("created_at DESC"), "execution_id"])


def downgrade() -> None:
    op.drop_index("orch_ix_executions_environment_created", "orch_executions")
    op.drop_index("orch_ix_executions_finished", "orch_executions")
    op.drop_table("orch_prune_totals")
    op.drop_table("orch_environments")
