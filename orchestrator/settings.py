"""Settings read from the environment, at the edges only (CLI, Dagster definitions, server)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlsplit

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
    alert_webhook_url: str | None = None
    dagster_ui_url: str = "http://127.0.0.1:3000"
    heartbeat_interval_seconds: int = 10
    lease_timeout_seconds: int = 60
    dispatch_lookahead: timedelta = timedelta(seconds=5)
    burst_stuck_after: timedelta = timedelta(minutes=10)
    # Most executions one batch run carries (1 = every execution gets a run of its own). 200,
    # not 50: each spawned run costs 1-3 s of CPU to start, which a batch of 50 still pays 20
    # times per 1,000 executions (docs/PERFORMANCE.md, drain rows).
    max_batch_size: int = 200
    # Executions of one batch run in flight at once (threads: most wait on providers).
    batch_concurrency: int = 16

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        heartbeat = _int(env, "ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS", 10, minimum=1)
        lease = _int(env, "ORCHESTRATOR_LEASE_TIMEOUT_SECONDS", 60, minimum=2)
        if lease <= heartbeat:
            raise InvalidInput(Problem(
                field="ORCHESTRATOR_LEASE_TIMEOUT_SECONDS",
                message=f"{lease} must be greater than ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS "
                        f"({heartbeat}); use at least three heartbeats"), subject="settings")
        return cls(
            database_url=env.get(DATABASE_URL_VAR) or default_database_url(env),
            max_runs_per_tick=_int(env, "ORCHESTRATOR_MAX_RUNS_PER_TICK", 50, minimum=1),
            sensor_interval_seconds=_int(env, "ORCHESTRATOR_SENSOR_INTERVAL_SECONDS", 5,
                                         minimum=1),
            catchup_window=timedelta(
                seconds=_int(env, "ORCHESTRATOR_CATCHUP_WINDOW_SECONDS", 3600, minimum=0)),
            alert_webhook_url=_url(env, "ORCHESTRATOR_ALERT_WEBHOOK_URL"),
            dagster_ui_url=(_url(env, "ORCHESTRATOR_DAGSTER_UI_URL")
                            or "http://127.0.0.1:3000").rstrip("/"),
            heartbeat_interval_seconds=heartbeat,
            lease_timeout_seconds=lease,
            dispatch_lookahead=timedelta(
                seconds=_int(env, "ORCHESTRATOR_DISPATCH_LOOKAHEAD_SECONDS", 5, minimum=0)),
            burst_stuck_after=timedelta(
                seconds=_int(env, "ORCHESTRATOR_BURST_STUCK_AFTER_SECONDS", 600, minimum=1)),
            max_batch_size=_int(env, "ORCHESTRATOR_MAX_BATCH_SIZE", 200, minimum=1),
            batch_concurrency=_int(env, "ORCHESTRATOR_BATCH_CONCURRENCY", 16, minimum=1),
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


def _url(env: Mapping[str, str], name: str) -> str | None:
    raw = (env.get(name) or "").strip()
    if not raw:
        return None
    parsed = urlsplit(raw)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise InvalidInput(Problem(field=name, message="is not an http(s) URL; use e.g. "
                                   "https://hooks.example.com/alerts"), subject="settings")
    return raw
