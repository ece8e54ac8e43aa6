"""``orchestrator_definitions``: the one place the Dagster definitions are assembled.

It is the public entry point for a team that runs Dagster already: merge the orchestrator into
your own code location instead of running ours::

    import dagster as dg
    from orchestrator import orchestrator_definitions

    defs = dg.Definitions.merge(my_project_defs, orchestrator_definitions())

Every name it adds is the orchestrator's own: the jobs ``execute_workflow`` and
``execute_workflow_batch``, the sensors ``schedule_trigger_sensor``, ``queued_trigger_sensor``,
``execution_reconciler`` and ``retention_pruner``, and the resource key
``orchestrator_store``. Block types of your own register with ``register_block_type`` in your
modules; list them in
``ORCHESTRATOR_BLOCK_MODULES`` so that every process imports them (this code location, the
workers, ``orchestrator workflows apply``).
"""

from __future__ import annotations

import dagster as dg

from orchestrator.dagster.batch_job import execute_workflow_batch
from orchestrator.dagster.jobs import execute_workflow
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.dagster.sensors import (
    build_pruner_sensor,
    build_queue_sensor,
    build_reconciler_sensor,
    build_schedule_sensor,
)
from orchestrator.execution.blocks import import_block_modules
from orchestrator.settings import Settings


def orchestrator_definitions(settings: Settings | None = None) -> dg.Definitions:
    settings = settings or Settings.from_env()
    import_block_modules(settings.block_modules)
    return dg.Definitions(
        jobs=[execute_workflow, execute_workflow_batch],
        sensors=[build_schedule_sensor(settings), build_queue_sensor(settings),
                 build_reconciler_sensor(settings), build_pruner_sensor(settings)],
        resources={STORE_RESOURCE: OrchestratorStore.from_settings(settings)},
    )
