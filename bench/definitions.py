"""Dagster definitions for the daemon benchmarks: the product's own definitions plus, in the
same code location and the same daemon, the baselines they are compared with.

``BENCH_MODE`` (read when the code server loads this file) picks what runs:

- ``precision``: our sensors + ``BENCH_NATIVE_COUNT`` native ``ScheduleDefinition``s on
  ``BENCH_NATIVE_CRON`` that launch the same ``execute_workflow`` job (a launchpad-style run,
  ``source=manual``);
- ``ours``: our sensors only (drain of queued triggers);
- ``bare``: a bare sensor that launches one run of a bare job per row of ``bench_requests``
  (a table in the store database), with the same launcher.
"""

from __future__ import annotations

import os

import dagster as dg
import sqlalchemy as sa

from bench.baselines import REQUESTS
from bench.exec_overhead import bare_blocks
from orchestrator.dagster.definitions import orchestrator_definitions
from orchestrator.dagster.jobs import OP_NAME, execute_workflow
from orchestrator.settings import Settings


@dg.job(executor_def=dg.in_process_executor)
def bare_job() -> None:
    bare_blocks()


def _bare_sensor(settings: Settings) -> dg.SensorDefinition:
    @dg.sensor(job=bare_job, minimum_interval_seconds=settings.sensor_interval_seconds,
               default_status=dg.DefaultSensorStatus.RUNNING)
    def bare_request_sensor(context: dg.SensorEvaluationContext) -> dg.SensorResult:
        after = int(context.cursor or 0)
        engine = sa.create_engine(settings.database_url)
        with engine.connect() as conn:
            ids = [r[0] for r in conn.execute(
                sa.select(REQUESTS.c.id).where(REQUESTS.c.id > after)
                .order_by(REQUESTS.c.id).limit(settings.max_runs_per_tick))]
        engine.dispose()
        return dg.SensorResult(
            run_requests=[dg.RunRequest(run_key=f"bare:{i}") for i in ids],
            cursor=str(ids[-1]) if ids else context.cursor)

    return bare_request_sensor


def _native_schedule(cron: str, index: int) -> dg.ScheduleDefinition:
    return dg.ScheduleDefinition(
        name=f"native_schedule_{index}", job=execute_workflow, cron_schedule=cron,
        execution_timezone="UTC", default_status=dg.DefaultScheduleStatus.RUNNING,
        run_config={"ops": {OP_NAME: {"config": {"workflow": "digest",
                                                 "payload": {"user": "native"}}}}},
        tags={"bench/native": "1"})


def build() -> dg.Definitions:
    settings = Settings.from_env()
    mode = os.environ.get("BENCH_MODE", "precision")
    if mode == "bare":
        return dg.Definitions(jobs=[bare_job], sensors=[_bare_sensor(settings)])
    ours = orchestrator_definitions(settings)
    if mode == "ours":
        return ours
    cron = os.environ.get("BENCH_NATIVE_CRON", "* * * * *")
    native = [_native_schedule(cron, i) for i in range(int(os.environ.get("BENCH_NATIVE_COUNT",
                                                                          "1")))]
    return dg.Definitions.merge(ours, dg.Definitions(schedules=native))


defs = build()
