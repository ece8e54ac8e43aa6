"""The product's definitions plus what the fault tests need inside the run worker: a ``python``
callable that records its process id and sleeps, and a store whose first block write for the
``flaky`` workflow fails when a marker file exists (a pipeline fault on the first attempt only).
"""

import os
import time
from pathlib import Path
from typing import Any

from orchestrator.startup import heavy_imports

with heavy_imports():  # as the product's definitions.py loads
    import dagster as dg

    from orchestrator.dagster.batch_job import execute_workflow_batch
    from orchestrator.dagster.definitions import orchestrator_definitions
    from orchestrator.dagster.jobs import execute_workflow
    from orchestrator.dagster.resources import STORE_RESOURCE, OrchestratorStore
    from orchestrator.domain.records import BlockEntry
    from orchestrator.exceptions import StoreError
    from orchestrator.execution.blocks import BlockContext, register_block_type
    from orchestrator.settings import Settings
    from orchestrator.store import Store

STATE = Path(os.environ.get("ORCHESTRATOR_TEST_STATE_DIR", "/nonexistent"))


@register_block_type("test_nap")
def nap(inputs: dict[str, Any], context: BlockContext) -> dict[str, Any]:
    (STATE / f"pid-{context.execution_id}").write_text(str(os.getpid()))
    time.sleep(float(inputs.get("seconds", 60)))
    return {"slept": True}


class FlakyOnceStore(Store):
    def record_block(self, execution_id: str, attempt: int, entry: BlockEntry) -> None:
        marker = STATE / f"fail-{execution_id}"
        if marker.exists():
            marker.unlink()
            raise StoreError("record the block (injected fault)", transient=False)
        super().record_block(execution_id, attempt, entry)


class FlakyOnceResource(OrchestratorStore):
    def get(self) -> Store:
        return FlakyOnceStore(self.database_url or self.settings().database_url)


def _definitions() -> dg.Definitions:
    settings = Settings.from_env()
    sensors = list(orchestrator_definitions(settings).sensors or [])
    return dg.Definitions(jobs=[execute_workflow, execute_workflow_batch], sensors=sensors,
                          resources={STORE_RESOURCE: FlakyOnceResource.from_settings(settings)})


defs = _definitions()
