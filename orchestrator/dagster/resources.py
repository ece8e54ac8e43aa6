"""The orchestrator store as a Dagster resource."""

from __future__ import annotations

import dagster as dg

from orchestrator.settings import Settings
from orchestrator.store import Store


class OrchestratorStore(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The SQL store. ``database_url`` defaults to ``ORCHESTRATOR_DATABASE_URL``, else SQLite
    under ``DAGSTER_HOME``."""

    database_url: str | None = None

    def get(self) -> Store:
        return Store(self.database_url or Settings.from_env().database_url)
