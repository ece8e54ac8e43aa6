"""Initial schema: workflows and versions, schedules, executions and block entries, queued
triggers, alerts.

Revision ID: 0001
Revises:
Create Date: 2026-11-21
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from orchestrator.store.tables import JSONType, UTCDateTime

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "orch_workflows",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("name", sa.String(64), nullable=False),
        sa.Column("current_version", sa.Integer, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.Column("deleted_at", UTCDateTime, nullable=True),
        sa.UniqueConstraint("environment", "name", name="orch_uq_workflows_environment_name"),
    )
    op.create_table(
        "orch_workflow_versions",
        sa.Column("workflow_id", sa.Integer, sa.ForeignKey("orch_workflows.id"), primary_key=True),
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("document", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
    )
    op.create_table(
        "orch_schedules",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("cron", sa.String(200), nullable=True),
        sa.Column("timezone", sa.String(64), nullable=False),
        sa.Column("run_at", UTCDateTime, nullable=True),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("key", sa.String(200), nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", UTCDateTime, nullable=True),
        sa.Column("last_scheduled_for", UTCDateTime, nullable=True),
        sa.Column("skipped_superseded", sa.Integer, nullable=False, server_default="0"),
        sa.Column("skipped_outside_window", sa.Integer, nullable=False, server_default="0"),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("updated_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("environment", "key", name="orch_uq_schedules_environment_key"),
        sa.CheckConstraint("NOT enabled OR next_run_at IS NOT NULL",
                           name="orch_ck_schedules_enabled_has_next_run_at"),
    )
    op.create_index("orch_ix_schedules_next_run_at", "orch_schedules", ["next_run_at"])
    op.create_table(
        "orch_executions",
        sa.Column("execution_id", sa.String(36), primary_key=True),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("workflow_version", sa.Integer, nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("outcome", sa.String(16), nullable=True),
        sa.Column("trigger_id", sa.String(64), nullable=True),
        sa.Column("scheduled_for", UTCDateTime, nullable=True),
        sa.Column("idempotency_key", sa.String(200), nullable=True),
        sa.Column("parent_execution_id", sa.String(36), nullable=True),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("dagster_run_id", sa.String(64), nullable=True),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("error", JSONType, nullable=True),
        sa.Column("output", JSONType, nullable=True),
        sa.Column("finalized_by", sa.String(16), nullable=True),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=True),
        sa.Column("finished_at", UTCDateTime, nullable=True),
    )
    op.create_index("orch_ix_executions_workflow_created", "orch_executions",
                    ["environment", "workflow", "created_at"])
    op.create_index("orch_ix_executions_status_created", "orch_executions", ["status", "created_at"])
    op.create_index("orch_ix_executions_created", "orch_executions", ["created_at"])
    op.create_table(
        "orch_execution_blocks",
        sa.Column("execution_id", sa.String(36), sa.ForeignKey("orch_executions.execution_id"),
                  primary_key=True),
        sa.Column("attempt", sa.Integer, primary_key=True),
        sa.Column("block_id", sa.String(64), primary_key=True),
        sa.Column("block_type", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime, nullable=False),
        sa.Column("finished_at", UTCDateTime, nullable=True),
        sa.Column("duration_ms", sa.Float, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("output_size", sa.Integer, nullable=True),
    )
    op.create_table(
        "orch_queued_triggers",
        sa.Column("execution_id", sa.String(36), sa.ForeignKey("orch_executions.execution_id"),
                  primary_key=True),
        sa.Column("environment", sa.String(64), nullable=False),
        sa.Column("workflow", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.Column("dispatched_at", UTCDateTime, nullable=True),
    )
    op.create_index("orch_ix_queued_triggers_status_created", "orch_queued_triggers",
                    ["status", "created_at"])
    op.create_table(
        "orch_alerts",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("execution_id", sa.String(36), nullable=True),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("details", JSONType, nullable=False),
        sa.Column("created_at", UTCDateTime, nullable=False),
        sa.UniqueConstraint("execution_id", "kind", name="orch_uq_alerts_execution_kind"),
    )


def downgrade() -> None:
    for table in ("alerts", "queued_triggers", "execution_blocks", "executions", "schedules",
                  "workflow_versions", "workflows"):
        op.drop_table(f"orch_{table}")
