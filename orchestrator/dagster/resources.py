"""The orchestrator store (and the settings the run needs) as a Dagster resource."""

from __future__ import annotations

import os
from typing import Any

import dagster as dg

from orchestrator.alerts import Alerter
from orchestrator.execution.session import utc_now
from orchestrator.settings import DATABASE_URL_VAR, Settings
from orchestrator.store import Store

# The resource key of the store: the orchestrator's own name, so that merging our definitions
# into a team's code location (orchestrator_definitions) never meets a `store` of theirs. Ops
# and hooks take it as a parameter of this name; the sensors build theirs from the same settings
# (a sensor with resources gets a new Dagster instance every evaluation: dagster/sensors.py).
STORE_RESOURCE = "orchestrator_store"


class OrchestratorStore(dg.ConfigurableResource):  # type: ignore[type-arg]
    """The SQL store. Unset fields come from the environment (``Settings.from_env``):
    ``database_url`` from ``ORCHESTRATOR_DATABASE_URL``, else SQLite under ``DAGSTER_HOME``."""

    database_url: str | None = None
    alert_webhook_url: str | None = None
    dagster_ui_url: str | None = None
    heartbeat_interval_seconds: int | None = None

    @classmethod
    def from_settings(cls, settings: Settings) -> OrchestratorStore:
        return cls(database_url=settings.database_url,
                   alert_webhook_url=settings.alert_webhook_url,
                   dagster_ui_url=settings.dagster_ui_url,
                   heartbeat_interval_seconds=settings.heartbeat_interval_seconds)

    def settings(self) -> Settings:
        env = dict(os.environ)
        if self.database_url:
            env[DATABASE_URL_VAR] = self.database_url
        settings = Settings.from_env(env)
        overrides: dict[str, Any] = {name: value for name, value in (
            ("alert_webhook_url", self.alert_webhook_url),
            ("dagster_ui_url", self.dagster_ui_url),
            ("heartbeat_interval_seconds", self.heartbeat_interval_seconds)) if value}
        return settings.model_copy(update=overrides)

    def get(self) -> Store:
        return Store(self.database_url or self.settings().database_url)

    def alerter(self) -> Alerter:
        settings = self.settings()
        return Alerter(store=self.get(), webhook_url=settings.alert_webhook_url,
                       ui_url=settings.dagster_ui_url, clock=utc_now,
                       webhook_secret=settings.alert_webhook_secret)
