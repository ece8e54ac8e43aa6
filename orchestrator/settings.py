"""Settings read from the environment, at the edges only (CLI, Dagster definitions, server)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

from orchestrator.exceptions import InvalidInput, Problem

DATABASE_URL_VAR = "ORCHESTRATOR_DATABASE_URL"
DEFAULT_DB_FILENAME = "orchestrator.sqlite"


@dataclass(frozen=True, kw_only=True)
class Settings:
    """Everything configurable, with its default."""

    database_url: str
    max_runs_per_tick: int = 50
    sensor_interval_seconds: int = 5
    catchup_window: timedelta = timedelta(hours=1)
    dispatch_lookahead: timedelta = timedelta(seconds=5)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        return cls(
            database_url=env.get(DATABASE_URL_VAR) or default_database_url(env),
            max_runs_per_tick=_int(env, "ORCHESTRATOR_MAX_RUNS_PER_TICK", 50, minimum=1),
            sensor_interval_seconds=_int(env, "ORCHESTRATOR_SENSOR_INTERVAL_SECONDS", 5,
                                         minimum=1),
            catchup_window=timedelta(
                seconds=_int(env, "ORCHESTRATOR_CATCHUP_WINDOW_SECONDS", 3600, minimum=0)),
            dispatch_lookahead=timedelta(
                seconds=_int(env, "ORCHESTRATOR_DISPATCH_LOOKAHEAD_SECONDS", 5, minimum=0)),
        )


def default_database_url(env: Mapping[str, str]) -> str:
    """SQLite next to Dagster's own storage: ``$DAGSTER_HOME/orchestrator.sqlite``."""
    home = env.get("DAGSTER_HOME")
    if not home:
        raise InvalidInput(Problem(field=DATABASE_URL_VAR, message="is not set and neither is "
                                   "DAGSTER_HOME; set one of them (e.g. export "
                                   "DAGSTER_HOME=$PWD/.dagster_home)"), subject="settings")
    path = Path(home).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / DEFAULT_DB_FILENAME}"


def _int(env: Mapping[str, str], name: str, default: int, *, minimum: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        value = minimum - 1
    if value < minimum:
        raise InvalidInput(Problem(field=name, message=f"{raw!r} is not allowed; use a whole "
                                   f"number >= {minimum}"), subject="settings")
    return value
