"""Tick cost vs schedule count: one evaluation of ``schedule_trigger_sensor`` (dispatcher, run-key
lookup in Dagster's run storage, RunRequests) with 1,000 and then 100,000 enabled schedules, the
same number due. Target: ratio <= 1.5. Also prints the due query's plan (it must use
``orch_ix_schedules_next_run_at``, not scan the table).

Usage: .venv/bin/python -m bench.tick_cost [sqlite|postgres]
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import sqlalchemy as sa

from bench.report import BACKENDS, QUICK, Row, median
from harness.dagster_home import backend
from orchestrator.dagster.sensors import build_schedule_sensor
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store import tables as t

SMALL, LARGE = 1_000, (20_000 if QUICK else 100_000)
DUE = 50  # = max_runs_per_tick: one full page due
TICKS = 7 if QUICK else 15
WORKFLOW = {"name": "digest", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}


def _rows(start: int, count: int, now: datetime, due: bool) -> list[dict[str, Any]]:
    rows = []
    for i in range(start, start + count):
        rows.append(dict(
            id=f"sch_bench{i:012d}", environment="default", workflow="digest",
            cron="* * * * *" if due else "0 3 * * *", timezone="UTC", run_at=None,
            payload={"n": i}, key=None, enabled=True,
            # not due: spread over the next day, as a real population of daily schedules is
            next_run_at=(now - timedelta(seconds=20)) if due
            else now + timedelta(minutes=5 + i % 1440),
            last_scheduled_for=None, skipped_superseded=0, skipped_outside_window=0,
            created_at=now, updated_at=now))
    return rows


def _insert(store: Store, rows: list[dict[str, Any]]) -> None:
    with store.engine.begin() as conn:
        for i in range(0, len(rows), 5_000):
            conn.execute(t.schedules.insert(), rows[i:i + 5_000])


def _plan(store: Store, now: datetime) -> str:
    s = t.schedules
    query = (sa.select(s).where(s.c.next_run_at <= now, s.c.enabled.is_(True))
             .order_by(s.c.next_run_at, s.c.id).limit(DUE))
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            compiled = query.compile(conn, compile_kwargs={"literal_binds": False})
            params = {k: t.UTCDateTime().process_bind_param(v, conn.dialect)
                      if isinstance(v, datetime) else v for k, v in compiled.params.items()}
            rows = conn.exec_driver_sql("EXPLAIN QUERY PLAN " + str(compiled),
                                        tuple(params[k] for k in compiled.positiontup or ()))
            return "; ".join(str(r[-1]) for r in rows)
        conn.execute(sa.text("ANALYZE orch_schedules"))
        compiled = query.compile(conn)
        rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
        return "; ".join(str(r[0]).strip() for r in rows)


def _evaluate(sensor: dg.SensorDefinition, instance: dg.DagsterInstance) -> float:
    context = dg.build_sensor_context(instance=instance)
    t0 = time.perf_counter()
    result = sensor(context)
    elapsed = time.perf_counter() - t0
    assert len(result.run_requests or []) == DUE, len(result.run_requests or [])
    return elapsed


def measure(name: str) -> list[Row]:
    with backend(name) as b:
        now = datetime.now(UTC)
        store = Store(b.store_url)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), now)
        settings = Settings(database_url=b.store_url, max_runs_per_tick=DUE,
                            max_batch_size=1)  # a run each: DUE run requests per tick
        sensor = build_schedule_sensor(settings)
        results: dict[int, float] = {}
        plans: dict[int, str] = {}
        with dg.DagsterInstance.from_config(str(b.home)) as instance:
            _insert(store, _rows(0, DUE, now, due=True) + _rows(DUE, SMALL - DUE, now, False))
            for total, add in ((SMALL, 0), (LARGE, LARGE - SMALL)):
                if add:
                    _insert(store, _rows(SMALL, add, now, due=False))
                if name == "postgres":
                    with store.engine.begin() as conn:
                        conn.execute(sa.text("ANALYZE orch_schedules"))
                _evaluate(sensor, instance)  # warm: execution rows, caches
                results[total] = median([_evaluate(sensor, instance)
                                         for _ in range(TICKS)])
                plans[total] = _plan(store, now)
        ratio = results[LARGE] / results[SMALL]
        uses_index = "orch_ix_schedules_next_run_at" in plans[LARGE]
        print(f"[tick_cost/{name}] {SMALL}: {results[SMALL] * 1000:.1f} ms, {LARGE}: "
              f"{results[LARGE] * 1000:.1f} ms, ratio {ratio:.2f}; plan at {LARGE}: "
              f"{plans[LARGE]}", flush=True)
        return [Row(benchmark=f"tick cost, {LARGE:,} vs {SMALL:,} schedules ({DUE} due)",
                    backend=name, ours=f"{results[LARGE] * 1000:.1f} ms",
                    baseline=f"{results[SMALL] * 1000:.1f} ms", ratio=ratio, target="≤ 1.5",
                    met=ratio <= 1.5 and uses_index,
                    notes=f"median of {TICKS} sensor evaluations; due query plan at {LARGE:,} "
                          f"rows: `{plans[LARGE]}`",
                    extra={"plan": plans[LARGE]})]


def main() -> None:
    from bench.report import table

    names = sys.argv[1:] or BACKENDS
    print(table([row for n in names for row in measure(n)]))


if __name__ == "__main__":
    main()
