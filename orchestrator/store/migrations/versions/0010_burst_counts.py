"""The burst gate's window as counters (issue 13): ``orch_burst_counts`` holds, per environment,
tenth of the window and server process, the triggers that process admitted; the window is
their sum, which costs the same whatever the count (counting the triggers' own rows did not).

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import UTCDateTime

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orch_burst_counts",
        sa.Column("environment", sa.String(64), primary_key=True),
        sa.Column("bucket", UTCDateTime, primary_key=True),
        sa.Column("server", sa.String(32), primary_key=True),
        sa.Column("count", sa.Integer, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("orch_burst_counts")
