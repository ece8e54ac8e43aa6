"""``build_definitions``: the one place the Dagster definitions are assembled."""

from __future__ import annotations

import dagster as dg

from orchestrator.dagster.batch_job import execute_workflow_batch
from orchestrator.dagster.jobs import execute_workflow
from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.dagster.sensors import (
    build_queue_sensor,
    build_reconciler_sensor,
    build_schedule_sensor,
)
from orchestrator.settings import Settings


def build_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    return dg.Definitions(
        jobs=[execute_workflow, execute_workflow_batch],
        sensors=[build_schedule_sensor(settings), build_queue_sensor(settings),
                 build_reconciler_sensor(settings)],
        resources={"store": OrchestratorStore.from_settings(settings)},
    )
