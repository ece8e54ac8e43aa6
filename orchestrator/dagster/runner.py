"""``orchestrator run``: execute a workflow in-process through the same ``execute_workflow`` job,
against the Dagster instance of ``DAGSTER_HOME`` (so the run shows in the UI)."""

from __future__ import annotations

from contextlib import nullcontext
from datetime import UTC, datetime

import dagster as dg

from orchestrator.dagster.jobs import execute_workflow, run_config_for
from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
from orchestrator.domain.correlation import Correlation
from orchestrator.domain.records import ExecutionRecord
from orchestrator.settings import Settings
from orchestrator.store import Store


def run_in_process(correlation: Correlation, settings: Settings,
                   instance: dg.DagsterInstance | None = None) -> ExecutionRecord:
    """Run ``correlation``'s execution now; returns the execution as finalized."""
    store = Store(settings.database_url)
    store.create_execution(correlation, datetime.now(UTC))
    with dg.DagsterInstance.get() if instance is None else nullcontext(instance) as dagster:
        execute_workflow.execute_in_process(
            run_config=run_config_for(correlation), instance=dagster,
            resources={STORE_RESOURCE: OrchestratorStore.from_settings(settings)},
            tags=correlation.tags(), raise_on_error=False)
    return store.get_execution(correlation.execution_id)
