"""``schedule_trigger_sensor`` and ``queued_trigger_sensor`` read the clock once, call the
dispatcher and turn its dispatches into run requests; ``execution_reconciler`` settles what no
failure hook saw.

The sensors declare no Dagster resources and keep one Dagster instance per code server process
(:func:`_instance`): for a sensor with resources, or one that reads ``context.instance``,
Dagster opens a new instance for every evaluation (its storage: on SQLite, a check of each
database's migrations; on PostgreSQL, new connections), which was 40% of an idle tick's CPU in
the code server (py-spy). Their store comes from the same settings as the ``orchestrator_store``
resource of the ops.
"""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

import threading
from datetime import UTC, datetime, timedelta

import dagster as dg

from orchestrator.dagster.batch_job import (
    batch_run_config,
    batch_run_tags,
    execute_workflow_batch,
)
from orchestrator.dagster.coordinator import run_slots
from orchestrator.dagster.jobs import JOB_NAME, execute_workflow, run_config_for
from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.dagster.runs import DagsterRuns, run_lookup
from orchestrator.execution.reconcile import reconcile
from orchestrator.lifecycle.prune import SENSOR_DUTY, prune
from orchestrator.settings import Settings
from orchestrator.triggers.dispatch import BatchDispatch, Dispatch, RunSlots
from orchestrator.triggers.queue import dispatch_queued_triggers
from orchestrator.triggers.schedules import dispatch_due_schedules, wait_until_due
from orchestrator.triggers.waiting import QUEUE_POLL, wait_for_work

SCHEDULE_SENSOR = "schedule_trigger_sensor"
QUEUE_SENSOR = "queued_trigger_sensor"
RECONCILER_SENSOR = "execution_reconciler"
PRUNER_SENSOR = "retention_pruner"
# Seconds of pruning per tick (a backlog drains over several ticks; each batch is short).
PRUNE_BUDGET = 20.0


_instances: dict[str, dg.DagsterInstance] = {}
_instances_lock = threading.Lock()


def _instance(context: dg.SensorEvaluationContext) -> dg.DagsterInstance:
    """The Dagster instance of ``context``, opened once per process and kept (as the daemon and
    the webserver keep theirs); a context built with an instance (tests) has its own."""
    ref = context.instance_ref
    if ref is None:
        return context.instance
    key = dg.serialize_value(ref)
    with _instances_lock:
        instance = _instances.get(key)
        if instance is None:
            instance = _instances[key] = dg.DagsterInstance.from_ref(ref)
        return instance


def dispose_kept_instances() -> None:
    """Close the instances :func:`_instance` kept (a test that opened its own, or a process
    whose instance configuration changed)."""
    with _instances_lock:
        for instance in _instances.values():
            instance.dispose()
        _instances.clear()


def _requests(dispatches: list[Dispatch],
              batches: list[BatchDispatch]) -> list[dg.RunRequest]:
    return [*(dg.RunRequest(run_key=d.run_key, job_name=JOB_NAME,
                            run_config=run_config_for(d.correlation),
                            tags=d.correlation.tags()) for d in dispatches),
            *(dg.RunRequest(run_key=b.run_key, job_name=execute_workflow_batch.name,
                            run_config=batch_run_config(b.batch_id),
                            tags=batch_run_tags(b.batch_id, b.environment, b.size))
              for b in batches)]


def build_schedule_sensor(settings: Settings) -> dg.SensorDefinition:
    orchestrator_store = OrchestratorStore.from_settings(settings)
    @dg.sensor(name=SCHEDULE_SENSOR, jobs=[execute_workflow, execute_workflow_batch],
               minimum_interval_seconds=settings.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Launches due schedules from the orchestrator store.")
    def schedule_trigger_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        db = orchestrator_store.get()
        now = wait_until_due(db, now=datetime.now(UTC), lookahead=settings.dispatch_lookahead,
                             clock=lambda: datetime.now(UTC))
        tick = dispatch_due_schedules(
            db, now=now, limit=settings.max_runs_per_tick,
            runs=run_lookup(_instance(context), SCHEDULE_SENSOR),
            catchup_window=settings.catchup_window, max_batch_size=settings.max_batch_size)
        if tick.advanced or tick.skipped or tick.runs or tick.released:
            context.log.info(f"requested {len(tick.dispatches)} run(s) and {len(tick.batches)} "
                             f"batch run(s) ({sum(b.size for b in tick.batches)} executions), "
                             f"advanced {tick.advanced} schedule(s), skipped {tick.skipped} "
                             f"occurrence(s), held {tick.held} and released {tick.released} "
                             f"(overlap policy), queued {tick.queued} (a concurrency limit)")
        return dg.SensorResult(run_requests=_requests(tick.dispatches, tick.batches))

    return schedule_trigger_sensor


def build_queue_sensor(settings: Settings) -> dg.SensorDefinition:
    orchestrator_store = OrchestratorStore.from_settings(settings)
    # The shortest minimum interval (Dagster reads 0 as its default, 30 s): an evaluation waits
    # for triggers itself (up to the look-ahead), so the next one starts at the daemon's first
    # loop a second after the previous one started.
    @dg.sensor(name=QUEUE_SENSOR, jobs=[execute_workflow, execute_workflow_batch],
               minimum_interval_seconds=1,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Launches queued triggers (CLI, API) from the orchestrator store.")
    def queued_trigger_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        db = orchestrator_store.get()
        dagster = _instance(context)

        def slots() -> RunSlots | None:
            return run_slots(dagster) if settings.dispatch_to_free_slots else None

        def startable(at: datetime) -> datetime | None:
            due = db.queue.next_startable_at(at)
            if due is not None and due <= at:
                current = slots()
                if current is not None and not current.free:
                    return None  # a trigger waits for a run slot: probe again
            return due

        now = wait_for_work(startable, now=datetime.now(UTC), wait=settings.dispatch_lookahead,
                            clock=lambda: datetime.now(UTC), poll=QUEUE_POLL)
        tick = dispatch_queued_triggers(db, now=now,
                                        limit=settings.max_runs_per_tick,
                                        runs=run_lookup(dagster, QUEUE_SENSOR),
                                        alerter=orchestrator_store.alerter(),
                                        max_batch_size=settings.max_batch_size,
                                        stuck_after=settings.burst_stuck_after,
                                        slots=slots(), min_spread=settings.batch_concurrency)
        if tick.stuck_alerts:
            context.log.error(f"{tick.stuck_alerts} trigger(s) waited longer than "
                              f"{int(settings.burst_stuck_after.total_seconds())}s in the "
                              "burst buffer (buffer_stuck alerts raised)")
        if tick.batches:
            context.log.info(f"requested {len(tick.dispatches)} run(s) and {len(tick.batches)} "
                             f"batch run(s) ({sum(b.size for b in tick.batches)} executions)")
        if tick.expired:
            context.log.info(f"{tick.expired} queued trigger(s) expired (their ttl passed)")
        return dg.SensorResult(run_requests=_requests(tick.dispatches, tick.batches))

    return queued_trigger_sensor


def build_reconciler_sensor(settings: Settings) -> dg.SensorDefinition:
    orchestrator_store = OrchestratorStore.from_settings(settings)
    @dg.sensor(name=RECONCILER_SENSOR, minimum_interval_seconds=settings.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Settles executions whose runs ended without a hook (terminated, "
                           "killed, failed to start) and retries alert webhooks.")
    def execution_reconciler(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        tick = reconcile(orchestrator_store.get(), DagsterRuns(_instance(context)),
                         orchestrator_store.alerter(),
                         now=datetime.now(UTC),
                         cursor=(datetime.fromisoformat(context.cursor) if context.cursor
                                 else None),
                         lease_timeout=timedelta(seconds=settings.lease_timeout_seconds))
        if tick.settled:
            shown = ", ".join(f"{s.execution.execution_id} {s.execution.outcome.value}"
                              for s in tick.settled[:10] if s.execution.outcome)
            more = f" and {len(tick.settled) - 10} more" if len(tick.settled) > 10 else ""
            context.log.info(f"settled {len(tick.settled)} execution(s): {shown}{more}")
        return dg.SensorResult(cursor=tick.cursor.isoformat(), skip_reason=dg.SkipReason(
            f"settled {len(tick.finalized)} execution(s), {tick.expired_leases} expired "
            f"lease(s), {tick.silent_runs} silent run(s) failed, {tick.cancelled} cancel "
            f"request(s) carried out, delivered {tick.delivered} "
            "alert(s)"))

    return execution_reconciler


def build_pruner_sensor(settings: Settings) -> dg.SensorDefinition:
    orchestrator_store = OrchestratorStore.from_settings(settings)
    @dg.sensor(name=PRUNER_SENSOR, minimum_interval_seconds=settings.prune_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Prunes terminal executions past their environment's retention "
                           "(and their Dagster runs) and expired housekeeping rows.")
    def retention_pruner(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        report = prune(orchestrator_store.get(), now=datetime.now(UTC),
                       default_retention=timedelta(days=settings.retention_days),
                       runs=DagsterRuns(_instance(context)) if settings.prune_dagster_runs
                       else None, budget=PRUNE_BUDGET, duty=SENSOR_DUTY)
        removed = ", ".join(f"{n} {kind}" for kind, n in sorted(report.removed.items()))
        if report.removed:
            context.log.info(f"pruned {removed}; deleted {report.dagster_runs} Dagster run(s)")
        return dg.SensorResult(skip_reason=dg.SkipReason(
            f"pruned {removed or 'nothing'}; {report.dagster_runs} Dagster run(s) deleted"
            + ("; more left for the next tick" if report.more else "")))

    return retention_pruner
