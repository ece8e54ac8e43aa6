"""``schedule_trigger_sensor`` and ``queued_trigger_sensor``: read the clock once, call the
dispatcher, turn its dispatches into run requests."""

# No `from __future__ import annotations`: Dagster reads these annotations at runtime.

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg
from dagster._core.storage.tags import SENSOR_NAME_TAG

from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.domain.correlation import DAGSTER_RUN_KEY_TAG
from orchestrator.settings import Settings
from orchestrator.triggers.dispatch import Dispatch, RunLookup, RunState
from orchestrator.triggers.queue import dispatch_queued_triggers
from orchestrator.triggers.schedules import dispatch_due_schedules, wait_until_due

SCHEDULE_SENSOR = "schedule_trigger_sensor"
QUEUE_SENSOR = "queued_trigger_sensor"


def run_lookup(instance: dg.DagsterInstance, sensor_name: str) -> RunLookup:
    """One query to Dagster's run storage for a batch of run keys."""

    def lookup(keys: Sequence[str]) -> dict[str, RunState]:
        if not keys:
            return {}
        records = instance.get_run_records(
            dg.RunsFilter(tags={DAGSTER_RUN_KEY_TAG: list(keys), SENSOR_NAME_TAG: sensor_name}))
        states: dict[str, RunState] = {}
        for record in records:
            key = record.dagster_run.tags.get(DAGSTER_RUN_KEY_TAG)
            started = record.dagster_run.status != dg.DagsterRunStatus.NOT_STARTED
            if key and (started or key not in states):
                states[key] = RunState.SUBMITTED if started else RunState.NOT_STARTED
        return states

    return lookup


def _requests(dispatches: list[Dispatch]) -> list[dg.RunRequest]:
    return [dg.RunRequest(run_key=d.run_key, run_config=run_config_for(d.correlation),
                          tags=d.correlation.tags()) for d in dispatches]


def build_schedule_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(name=SCHEDULE_SENSOR, job=execute_workflow,
               minimum_interval_seconds=settings.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Launches due schedules from the orchestrator store.")
    def schedule_trigger_sensor(context: dg.SensorEvaluationContext,
                                store: OrchestratorStore) -> dg.SensorResult:
        db = store.get()
        now = wait_until_due(db, now=datetime.now(UTC), lookahead=settings.dispatch_lookahead,
                             clock=lambda: datetime.now(UTC))
        tick = dispatch_due_schedules(
            db, now=now, limit=settings.max_runs_per_tick,
            runs=run_lookup(context.instance, SCHEDULE_SENSOR),
            catchup_window=settings.catchup_window)
        if tick.advanced or tick.skipped or tick.dispatches:
            context.log.info(f"requested {len(tick.dispatches)} run(s), advanced "
                             f"{tick.advanced} schedule(s), skipped {tick.skipped} missed "
                             "occurrence(s)")
        return dg.SensorResult(run_requests=_requests(tick.dispatches))

    return schedule_trigger_sensor


def build_queue_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(name=QUEUE_SENSOR, job=execute_workflow,
               minimum_interval_seconds=settings.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING,
               description="Launches queued triggers (CLI, API) from the orchestrator store.")
    def queued_trigger_sensor(context: dg.SensorEvaluationContext,
                              store: OrchestratorStore) -> dg.SensorResult:
        tick = dispatch_queued_triggers(store.get(), now=datetime.now(UTC),
                                        limit=settings.max_runs_per_tick,
                                        runs=run_lookup(context.instance, QUEUE_SENSOR))
        return dg.SensorResult(run_requests=_requests(tick.dispatches))

    return queued_trigger_sensor
