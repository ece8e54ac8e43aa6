"""Top of the hour: ``BENCH_TOH_SCHEDULES`` (10,000) enabled hourly schedules in
``BENCH_TOH_ENVIRONMENTS`` (100) environments, all due at the same instant, through the real
daemon, ``schedule_trigger_sensor`` and batch runs. Reports when the last execution was terminal
(target: within 5 minutes on PostgreSQL) and each environment's last finish (fairness: the
spread between the first and the last environment to finish).

The schedules are written in bulk (as ``schedules create`` would leave them: enabled, with
``next_run_at``); the due instant is set far enough ahead for the daemon to be up.

Usage: .venv/bin/python -m bench.top_of_hour [postgres|sqlite|postgres+celery]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import sqlalchemy as sa

from bench.report import QUICK, REPO, Row, median, percentile
from harness.dagster_home import backend, environment
from harness.processes import Daemon, wait_for
from orchestrator.domain.correlation import new_id
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store import tables as t

SCHEDULES = int(os.environ.get("BENCH_TOH_SCHEDULES", "2000" if QUICK else "10000"))
ENVIRONMENTS = int(os.environ.get("BENCH_TOH_ENVIRONMENTS", "20" if QUICK else "100"))
CONCURRENCY = int(os.environ.get("BENCH_DRAIN_CONCURRENCY", "4"))
LEAD = timedelta(seconds=45)  # the daemon starts in ~15-30 s on this machine
TARGET = 300.0
WORKFLOW = {"blocks": [
    {"id": "items", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform", "with": {"count": "{{ items.total }}"}}]}


def _setup(store: Store, due: datetime) -> None:
    now = datetime.now(UTC)
    envs = [f"tenant-{i:03d}" for i in range(ENVIRONMENTS)]
    for env in envs:
        store.apply_workflow(parse_workflow({"name": "hourly", "environment": env, **WORKFLOW},
                                            block_types()), now)
    rows = [dict(id="sch_" + new_id().replace("-", "")[:20], environment=envs[i % len(envs)],
                 workflow="hourly", cron=f"{due.minute} * * * *", timezone="UTC", run_at=None,
                 payload={"n": i}, key=None, enabled=True, next_run_at=due,
                 created_at=now, updated_at=now) for i in range(SCHEDULES)]
    with store.engine.begin() as conn:
        for i in range(0, len(rows), 1000):
            conn.execute(t.schedules.insert(), rows[i:i + 1000])


def measure(name: str) -> list[Row]:
    """``name``: postgres or sqlite (the daemon spawns a process per run), or postgres+celery
    (the production profile: ``orchestrator daemon`` and one ``orchestrator worker``)."""
    if name == "postgres+celery":
        from harness.celery_profile import celery_profile

        with celery_profile([], workers=1, concurrency=CONCURRENCY, api=False) as p:
            return _rows(name, _run(p.store, p.b.home / "daemon.log", None))
    with backend(name, max_concurrent_runs=CONCURRENCY, threads=True) as b:
        log = b.home / "daemon.log"
        daemon = Daemon(environment(b.home, b.store_url, BENCH_MODE="ours"), log,
                        REPO / "bench" / "workspace.yaml")
        return _rows(name, _run(Store(b.store_url), log, daemon))


def _run(store: Store, log: Any, daemon: Daemon | None) -> dict[str, Any]:
    """Schedules due together, the daemon (started here unless already up), until every
    execution is terminal."""
    due = (datetime.now(UTC) + LEAD).replace(second=0, microsecond=0) + timedelta(minutes=1)
    _setup(store, due)
    e = t.executions
    if daemon is not None:
        daemon.start()
    try:
        wait_for(lambda: b"Checking for new runs for sensor" in log.read_bytes(), 180,
                 "the sensor daemon")
        assert datetime.now(UTC) < due, "the daemon came up after the due instant"

        def terminal() -> int:
            with store.engine.connect() as conn:
                return conn.execute(sa.select(sa.func.count()).select_from(e).where(
                    e.c.status.in_(("success", "error", "cancelled")))).scalar_one()

        wait_for(lambda: datetime.now(UTC) >= due, 120, "the due instant", poll=0.2)
        wait_for(lambda: terminal() >= SCHEDULES, 1800, f"{SCHEDULES} executions", poll=1)
        with store.engine.connect() as conn:
            last = dict(conn.execute(sa.select(e.c.environment, sa.func.max(e.c.finished_at))
                                     .group_by(e.c.environment)).all())
            outcomes = dict(conn.execute(sa.select(e.c.outcome, sa.func.count())
                                         .group_by(e.c.outcome)).all())
            runs = conn.execute(sa.select(sa.func.count(sa.distinct(e.c.dagster_run_id))))\
                .scalar_one()
            faults = [row.error for row in conn.execute(
                sa.select(e.c.error).where(e.c.outcome == "pipeline_fault").limit(3))]
    finally:
        if daemon is not None:
            daemon.stop()
    finish = {env: (_aware(at) - due).total_seconds() for env, at in last.items()}
    values = sorted(finish.values())
    return {"last": values[-1], "env_p50": median(values), "env_first": values[0],
            "env_p90": percentile(values, 90), "runs": runs, "outcomes": outcomes,
            "faults": faults}


def _rows(name: str, result: dict[str, Any]) -> list[Row]:
    overall, first = result["last"], result["env_first"]
    print(f"[top_of_hour/{name}] {SCHEDULES} schedules in {ENVIRONMENTS} environments: last "
          f"terminal {overall:.0f}s after the due instant; per-environment last finish: first "
          f"{first:.0f}s, median {result['env_p50']:.0f}s, p90 {result['env_p90']:.0f}s; "
          f"{result['runs']} runs; {result['outcomes']}; faults {result['faults']}", flush=True)
    on_postgres = name.startswith("postgres")
    return [Row(benchmark=f"top of the hour, {SCHEDULES} schedules in {ENVIRONMENTS} "
                          "environments (last terminal after the due instant)",
                backend=name, ours=f"{overall:.0f}s", baseline="-", ratio=None,
                target=f"<= {TARGET:.0f}s" if on_postgres else "report",
                met=(overall <= TARGET) if on_postgres else None,
                notes=f"{result['runs']} runs ({CONCURRENCY} concurrent); each environment's "
                      f"last finish: first {first:.0f}s, median {result['env_p50']:.0f}s, p90 "
                      f"{result['env_p90']:.0f}s, last {overall:.0f}s (spread "
                      f"{overall - first:.0f}s); outcomes {result['outcomes']}",
                extra=result)]


def _aware(value: datetime) -> datetime:
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value


def main() -> None:
    from bench.report import table

    names = sys.argv[1:] or ["postgres"]
    started = time.time()
    print(table([row for n in names for row in measure(n)]))
    print(f"({(time.time() - started) / 60:.1f} min)")


if __name__ == "__main__":
    main()
