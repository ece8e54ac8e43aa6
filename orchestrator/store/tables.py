"""Table definitions (SQLAlchemy Core). Migrations in ``migrations/versions`` create them; this
module is what queries are written against."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes in and out. PostgreSQL stores ``timestamptz``; SQLite stores naive UTC
    text, which sorts and compares correctly because every value is UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; pass an aware datetime")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JSONType: Any = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")

metadata = sa.MetaData()

workflows = sa.Table(
    "orch_workflows", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("name", sa.String(64), nullable=False),
    sa.Column("current_version", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Column("deleted_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("environment", "name", name="orch_uq_workflows_environment_name"),
)

workflow_versions = sa.Table(
    "orch_workflow_versions", metadata,
    sa.Column("workflow_id", sa.Integer, sa.ForeignKey("orch_workflows.id"), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("document", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

schedules = sa.Table(
    "orch_schedules", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("workflow", sa.String(64), nullable=False),
    sa.Column("cron", sa.String(200), nullable=True),
    sa.Column("timezone", sa.String(64), nullable=False),
    sa.Column("run_at", UTCDateTime, nullable=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("key", sa.String(200), nullable=True),
    sa.Column("enabled", sa.Boolean, nullable=False),
    # NULL whenever the schedule is disabled: the due query needs only this index.
    sa.Column("next_run_at", UTCDateTime, nullable=True),
    sa.Column("last_scheduled_for", UTCDateTime, nullable=True),
    sa.Column("skipped_superseded", sa.Integer, nullable=False, server_default="0"),
    sa.Column("skipped_outside_window", sa.Integer, nullable=False, server_default="0"),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("updated_at", UTCDateTime, nullable=False),
    sa.Index("orch_ix_schedules_next_run_at", "next_run_at"),
    sa.UniqueConstraint("environment", "key", name="orch_uq_schedules_environment_key"),
    # The lesson of schedulers whose triggers silently stopped: an enabled schedule without
    # next_run_at is never due. The database refuses such a row, whatever path writes it.
    sa.CheckConstraint("NOT enabled OR next_run_at IS NOT NULL",
                       name="orch_ck_schedules_enabled_has_next_run_at"),
)

executions = sa.Table(
    "orch_executions", metadata,
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
    # Durable "finalized by" marker: who wrote the terminal state (core, hook, reconciler).
    sa.Column("finalized_by", sa.String(16), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("started_at", UTCDateTime, nullable=True),
    sa.Column("finished_at", UTCDateTime, nullable=True),
    # The run worker's lease: refreshed while the op runs; a running execution whose heartbeat
    # is older than the lease timeout lost its worker (killed), which no hook reports.
    sa.Column("heartbeat_at", UTCDateTime, nullable=True),
    sa.Index("orch_ix_executions_workflow_created", "environment", "workflow", "created_at"),
    sa.Index("orch_ix_executions_status_created", "status", "created_at"),
    sa.Index("orch_ix_executions_created", "created_at"),
    sa.Index("orch_ix_executions_status_heartbeat", "status", "heartbeat_at"),
)

execution_blocks = sa.Table(
    "orch_execution_blocks", metadata,
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

queued_triggers = sa.Table(
    "orch_queued_triggers", metadata,
    sa.Column("execution_id", sa.String(36), sa.ForeignKey("orch_executions.execution_id"),
              primary_key=True),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("workflow", sa.String(64), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("dispatched_at", UTCDateTime, nullable=True),
    sa.Index("orch_ix_queued_triggers_status_created", "status", "created_at"),
)

alerts = sa.Table(
    "orch_alerts", metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("execution_id", sa.String(36), nullable=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("message", sa.Text, nullable=False),
    sa.Column("details", JSONType, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("environment", sa.String(64), nullable=True),
    sa.Column("workflow", sa.String(64), nullable=True),
    # pending (to POST) | delivered | failed (gave up) | none (no webhook configured)
    sa.Column("delivery_status", sa.String(16), nullable=False, server_default="none"),
    sa.Column("delivery_attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("next_delivery_at", UTCDateTime, nullable=True),
    sa.Column("delivered_at", UTCDateTime, nullable=True),
    sa.Column("last_delivery_error", sa.Text, nullable=True),
    # One alert per execution and kind: the hook and the reconciler may both try.
    sa.UniqueConstraint("execution_id", "kind", name="orch_uq_alerts_execution_kind"),
    sa.Index("orch_ix_alerts_delivery", "delivery_status", "next_delivery_at"),
    sa.Index("orch_ix_alerts_created", "created_at"),
)

# ------------------------------------------------------------------ HTTP API (migration 0003)

api_keys = sa.Table(
    "orch_api_keys", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("environment", sa.String(64), nullable=False),
    # SHA-256 of the key: keys are 256-bit random, so a fast hash is enough; the key itself is
    # shown once, at creation, and never stored.
    sa.Column("key_hash", sa.String(64), nullable=False),
    sa.Column("prefix", sa.String(16), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Column("revoked_at", UTCDateTime, nullable=True),
    sa.UniqueConstraint("key_hash", name="orch_uq_api_keys_key_hash"),
)

webhooks = sa.Table(
    "orch_webhooks", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("workflow", sa.String(64), nullable=False),
    # HMAC needs the secret itself (unlike an API key, it cannot be stored as a hash).
    sa.Column("secret", sa.String(128), nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

webhook_receipts = sa.Table(
    "orch_webhook_receipts", metadata,
    # A delivery accepted once is refused after: the primary key is the replay guard, written in
    # the transaction that admits its execution. message_id is the Standard Webhooks
    # `webhook-id` (the legacy scheme: the signature's last 64 characters); migration 0007.
    sa.Column("webhook_id", sa.String(40), primary_key=True),
    sa.Column("message_id", sa.String(200), primary_key=True),
    sa.Column("received_at", UTCDateTime, nullable=False),
    sa.Column("execution_id", sa.String(36), nullable=True),  # null: accepted before 0007
    sa.Index("orch_ix_webhook_receipts_received", "received_at"),
)

idempotency_keys = sa.Table(
    "orch_idempotency_keys", metadata,
    # The primary key is the claim: of concurrent requests with one key, one insert wins.
    sa.Column("environment", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("execution_id", sa.String(36), nullable=False),
    sa.Column("expires_at", UTCDateTime, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
)

debounces = sa.Table(
    "orch_debounces", metadata,
    sa.Column("environment", sa.String(64), primary_key=True),
    sa.Column("workflow", sa.String(64), primary_key=True),
    sa.Column("key", sa.String(200), primary_key=True),
    sa.Column("execution_id", sa.String(36), nullable=False),
    sa.Column("mode", sa.String(16), nullable=False),
    sa.Column("first_at", UTCDateTime, nullable=False),
    # first_at + max_delay: however often it is re-triggered, the execution starts by then.
    sa.Column("latest_at", UTCDateTime, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

burst_buffer = sa.Table(
    "orch_burst_buffer", metadata,
    # Everything needed to materialize the execution later, with the correlation assigned at
    # ingestion (never regenerated by the drainer).
    sa.Column("execution_id", sa.String(36), primary_key=True),
    sa.Column("request_id", sa.String(128), nullable=False),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("workflow", sa.String(64), nullable=False),
    sa.Column("trigger_id", sa.String(64), nullable=True),
    sa.Column("payload", JSONType, nullable=False),
    sa.Column("idempotency_key", sa.String(200), nullable=True),
    sa.Column("idempotency_expires_at", UTCDateTime, nullable=True),
    sa.Column("parent_execution_id", sa.String(36), nullable=True),
    sa.Column("batch_id", sa.String(40), nullable=True),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("orch_ix_burst_buffer_environment_created", "environment", "created_at"),
    sa.Index("orch_ix_burst_buffer_created", "created_at"),
)

# Columns added by 0003 to tables above (declared here so queries and the schema check see them).
executions.append_column(sa.Column("batch_id", sa.String(40), nullable=True))
# Not before this instant (debounce); NULL means as soon as possible.
queued_triggers.append_column(sa.Column("available_at", UTCDateTime, nullable=True))
sa.Index("orch_ix_queued_triggers_status_environment_created", queued_triggers.c.status,
         queued_triggers.c.environment, queued_triggers.c.created_at)

# ------------------------------------------------------------------ batch runs (migration 0004)

run_batches = sa.Table(
    "orch_run_batches", metadata,
    # Many executions carried by one Dagster run (run key ``batch:<batch_id>``). Membership is
    # ``orch_executions.run_batch_id``, claimed by a conditional update: an execution belongs to
    # at most one batch, and a crash before the run exists can only request this batch again.
    sa.Column("batch_id", sa.String(40), primary_key=True),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),  # queue | schedule
    sa.Column("size", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    # Set once the batch's run is seen submitted in Dagster: until then every tick requests it
    # again (Dagster's run key makes that a no-op once it exists).
    sa.Column("dispatched_at", UTCDateTime, nullable=True),
    sa.Index("orch_ix_run_batches_pending", "kind", "dispatched_at", "created_at"),
)
executions.append_column(sa.Column("run_batch_id", sa.String(40), nullable=True))
sa.Index("orch_ix_executions_run_batch", executions.c.run_batch_id)
queued_triggers.append_column(sa.Column("run_batch_id", sa.String(40), nullable=True))

# One alert per incident: a batch run that failed as a whole raises one alert naming every
# execution it affected (``incident`` = ``run:<dagster run id>``); the link rows make such an
# alert findable from each execution.
alerts.append_column(sa.Column("incident", sa.String(80), nullable=True))
alerts.append_constraint(sa.UniqueConstraint("incident", name="orch_uq_alerts_incident"))

alert_executions = sa.Table(
    "orch_alert_executions", metadata,
    sa.Column("alert_id", sa.Integer, sa.ForeignKey("orch_alerts.id"), primary_key=True),
    sa.Column("execution_id", sa.String(36), primary_key=True),
    sa.Index("orch_ix_alert_executions_execution", "execution_id"),
)

# ------------------------------------------------------------------ retention (migration 0005)

environments = sa.Table(
    "orch_environments", metadata,
    # Settings of one environment; a row only for an environment with an override.
    sa.Column("environment", sa.String(64), primary_key=True),
    # How long its terminal executions are kept (NULL: ORCHESTRATOR_RETENTION_DAYS).
    sa.Column("retention_seconds", sa.BigInteger, nullable=True),
    sa.Column("updated_at", UTCDateTime, nullable=False),
)

prune_totals = sa.Table(
    "orch_prune_totals", metadata,
    # Rows removed by pruning since the store was created, per kind (the metrics' counters).
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("count", sa.BigInteger, nullable=False),
)
# The pruner reads terminal executions oldest-finished first; an environment's listing reads
# its newest first, whatever the other environments hold.
sa.Index("orch_ix_executions_finished", executions.c.finished_at)
sa.Index("orch_ix_executions_environment_created", executions.c.environment,
         executions.c.created_at.desc(), executions.c.execution_id)

# ------------------------------------------------------------------ cancellation (migration 0006)

executions.append_column(sa.Column("cancel_requested_at", UTCDateTime, nullable=True))
# A trigger's delay (`delay`, `run_at`) and TTL (`ttl`), kept with it in the buffer too.
for _table in (executions, burst_buffer):
    _table.append_column(sa.Column("not_before", UTCDateTime, nullable=True))
    _table.append_column(sa.Column("expires_at", UTCDateTime, nullable=True))
# Its priority (higher first within its environment), where the dispatcher reads it.
for _table in (executions, queued_triggers, burst_buffer):
    _table.append_column(sa.Column("priority", sa.SmallInteger, nullable=False,
                                   server_default="0"))

# ------------------------------------------------------- replay and concurrency (migration 0007)

# A replay names the execution it replays (a correlation field: never in the burst buffer, a
# replay bypasses the gate) and, with same_version, the workflow version it must run.
executions.append_column(sa.Column("replayed_from", sa.String(36), nullable=True))
for _table in (executions, queued_triggers):
    _table.append_column(sa.Column("pinned_version", sa.Integer, nullable=True))
# A trigger's concurrency key (the workflow's `concurrency.key_limit` in flight per key), kept
# through the buffer; and the instant the dispatcher granted it a concurrency slot.
for _table in (executions, queued_triggers, burst_buffer):
    _table.append_column(sa.Column("concurrency_key", sa.String(200), nullable=True))
executions.append_column(sa.Column("slot_at", UTCDateTime, nullable=True))
# An environment's limit of executions in flight (NULL: no limit).
environments.append_column(sa.Column("max_concurrent", sa.Integer, nullable=True))

# "In flight" (concurrency limits): running, or queued but handed to a run (a concurrency slot
# granted, or claimed by a batch run). Literals, not bound parameters, so that both databases
# match a query carrying this predicate to the partial index below.
IN_FLIGHT_SQL = ("status = 'running' OR (status = 'queued' AND "
                 "(slot_at IS NOT NULL OR run_batch_id IS NOT NULL))")
sa.Index("orch_ix_executions_in_flight", executions.c.environment, executions.c.workflow,
         executions.c.concurrency_key, postgresql_where=sa.text(IN_FLIGHT_SQL),
         sqlite_where=sa.text(IN_FLIGHT_SQL))

# ----------------------------------------------------------- schedule controls (migration 0008)

# A schedule's overlap policy, jitter and priority, and the occurrences its overlap policy
# skipped or held (buffered), counted like the catch-up skips.
schedules.append_column(sa.Column("overlap", sa.String(16), nullable=False,
                                  server_default="allow_all"))
schedules.append_column(sa.Column("jitter_seconds", sa.Float, nullable=True))
schedules.append_column(sa.Column("priority", sa.SmallInteger, nullable=False,
                                  server_default="0"))
schedules.append_column(sa.Column("skipped_overlap", sa.Integer, nullable=False,
                                  server_default="0"))
schedules.append_column(sa.Column("buffered_overlap", sa.Integer, nullable=False,
                                  server_default="0"))
# An occurrence held by its schedule's overlap policy (buffer_one, buffer_all, cancel_other):
# queued without a queue row until nothing of its schedule runs; then, in one transaction, it
# joins the queue and held_at is cleared (only waiting ones have it: the index stays small).
executions.append_column(sa.Column("held_at", UTCDateTime, nullable=True))
# The backfill that created it (its progress is a count of these by status).
executions.append_column(sa.Column("backfill_id", sa.String(40), nullable=True))
sa.Index("orch_ix_executions_backfill", executions.c.backfill_id)
sa.Index("orch_ix_executions_held", executions.c.held_at)
# Open executions by schedule: the overlap policy's question, asked every tick.
sa.Index("orch_ix_executions_trigger_status", executions.c.trigger_id, executions.c.status)

backfills = sa.Table(
    "orch_backfills", metadata,
    sa.Column("id", sa.String(40), primary_key=True),
    sa.Column("schedule_id", sa.String(40), nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("start", UTCDateTime, nullable=False),
    sa.Column("end", UTCDateTime, nullable=False),
    sa.Column("overlap", sa.String(16), nullable=False),
    # Occurrences in the range; of them: executions created, already existing (one execution
    # per occurrence, ever), skipped by the overlap policy.
    sa.Column("occurrences", sa.Integer, nullable=False),
    sa.Column("created", sa.Integer, nullable=False),
    sa.Column("existing", sa.Integer, nullable=False),
    sa.Column("skipped", sa.Integer, nullable=False),
    sa.Column("created_at", UTCDateTime, nullable=False),
    sa.Index("orch_ix_backfills_schedule_created", "schedule_id", "created_at"),
)

# ------------------------------------------- key lifecycle, secret rotation, gate (migration 0009)

api_keys.append_column(sa.Column("expires_at", UTCDateTime, nullable=True))
api_keys.append_column(sa.Column("last_used_at", UTCDateTime, nullable=True))
# A rotated webhook's former secret, still accepted until previous_secret_expires_at.
webhooks.append_column(sa.Column("previous_secret", sa.String(128), nullable=True))
webhooks.append_column(sa.Column("previous_secret_expires_at", UTCDateTime, nullable=True))

burst_trips = sa.Table(
    "orch_burst_trips", metadata,
    # The burst gate's state shared by every API server process: an environment whose trigger
    # rate went over the threshold sends its new triggers to the buffer until tripped_until.
    sa.Column("environment", sa.String(64), primary_key=True),
    sa.Column("tripped_until", UTCDateTime, nullable=False),
)

burst_counts = sa.Table(
    "orch_burst_counts", metadata,
    # The burst gate's window: the triggers each API server process admitted per environment,
    # per tenth of the window (``domain.burst``); each process writes only its own rows.
    sa.Column("environment", sa.String(64), primary_key=True),
    sa.Column("bucket", UTCDateTime, primary_key=True),
    sa.Column("server", sa.String(32), primary_key=True),
    sa.Column("count", sa.Integer, nullable=False),
)
