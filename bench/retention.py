"""Cost as the store grows, and pruning beside a steady load (PostgreSQL).

One database, measured fresh, then again once it holds ``BENCH_RETENTION_ROWS`` (5,000,000)
terminal executions made in bulk (``INSERT … SELECT generate_series``, finished 60 days ago, so
past the default retention; a quarter of them in the environment the requests use):

- **queue-sensor tick**: one evaluation of ``queued_trigger_sensor`` with 50 lone triggers
  waiting (median of 15);
- **GET /v1/executions/{id}** p99 (300 requests, ids of the bulk rows once they exist),
  **POST /v1/workflows/digest/trigger** p99 (300), **GET /v1/executions** (a page of 50) p99
  (100): real ``orchestrator serve``;
- **prune throughput** while a steady trigger load (``RATE`` requests/s) runs: rows removed per
  second by ``orchestrator.lifecycle.prune`` for ``PRUNE_SECONDS``, paced as the sensor paces it
  (``SENSOR_DUTY``), and the load's p99 beside the same load without pruning.

Each ratio is the grown store's figure over the fresh one's (target ≤ 1.5); the plans of the
queries that matter are printed (each must use its index, not scan the table).

Usage: .venv/bin/python -m bench.retention
"""

from __future__ import annotations

import os
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import requests
import sqlalchemy as sa

from bench.report import QUICK, Row, median, percentile
from harness.dagster_home import backend
from harness.processes import api_server
from orchestrator.dagster.sensors import build_queue_sensor
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.lifecycle.prune import SENSOR_DUTY, prune
from orchestrator.settings import Settings
from orchestrator.store import Store
from orchestrator.store import tables as t

ROWS = int(os.environ.get("BENCH_RETENTION_ROWS", "500000" if QUICK else "5000000"))
CHUNK = 250_000
WAITING = 50
TICKS = 15
REQUESTS = 300
RATE = 50  # steady trigger load, requests/s
PRUNE_SECONDS = 10 if QUICK else 30
KEEP = timedelta(days=30)
WORKFLOW = {"name": "digest", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}


def _bulk(store: Store, n: int, finished: datetime) -> None:
    """``n`` terminal executions (success), one statement per ``CHUNK``."""
    insert = sa.text(
        "INSERT INTO orch_executions (execution_id, request_id, source, workflow, environment,"
        " workflow_version, status, outcome, payload, dagster_run_id, attempts, output,"
        " finalized_by, created_at, started_at, finished_at) "
        "SELECT md5(g::text)::uuid::text, 'bulk-' || g, 'api', 'digest',"
        " CASE WHEN g % 4 = 0 THEN 'default' ELSE 'env' || (g % 20) END, 1, 'success',"
        " 'success', '{\"user\": \"u\"}', 'run-' || g, 1,"
        " '{\"x\": 1}', 'core', :at - interval '1 minute', :at - interval '30 seconds',"
        " :at + (g % 3600) * interval '1 second' "
        "FROM generate_series(:start, :stop) AS g")
    for start in range(0, n, CHUNK):
        with store.engine.begin() as conn:
            conn.execute(insert, {"at": finished, "start": start,
                                  "stop": min(n, start + CHUNK) - 1})
    with store.engine.begin() as conn:
        conn.execute(sa.text("ANALYZE orch_executions"))


def _queue_waiting(store: Store) -> None:
    now = datetime.now(UTC)
    for i in range(WAITING):
        store.create_execution(Correlation(execution_id=new_id(), request_id=f"w{i}",
                                           source=Source.API, workflow="digest",
                                           environment="default"), now, enqueue=True)


def _tick(url: str, instance: dg.DagsterInstance) -> float:
    settings = Settings(database_url=url, max_batch_size=1, dispatch_lookahead=timedelta(0),
                        dispatch_to_free_slots=False)  # every waiting trigger, each tick
    sensor = build_queue_sensor(settings)
    def once() -> float:
        context = dg.build_sensor_context(instance=instance)
        t0 = time.perf_counter()
        result = sensor(context)
        elapsed = time.perf_counter() - t0
        assert len(result.run_requests or []) == WAITING
        return elapsed

    once()
    return median([once() for _ in range(TICKS)])


def _p99(call: Any, n: int) -> float:
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        response = call(i)
        times.append(time.perf_counter() - t0)
        assert response.status_code < 300, response.text
    return percentile(times, 99)


def _api(base: str, key: str, ids: list[str]) -> dict[str, float]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    return {
        "get": _p99(lambda i: session.get(f"{base}/v1/executions/{ids[i % len(ids)]}",
                                          timeout=30), REQUESTS),
        "trigger": _p99(lambda i: session.post(f"{base}/v1/workflows/digest/trigger",
                                               json={"payload": {"i": i}}, timeout=30),
                        REQUESTS),
        "list": _p99(lambda i: session.get(f"{base}/v1/executions?limit=50", timeout=30),
                     REQUESTS // 3),
    }


def _steady(base: str, key: str, seconds: float) -> float:
    """p99 of a trigger load of ``RATE`` requests/s for ``seconds``."""
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    times: list[float] = []
    start = time.perf_counter()
    i = 0
    while time.perf_counter() - start < seconds:
        due = start + i / RATE
        if (wait := due - time.perf_counter()) > 0:
            time.sleep(wait)
        t0 = time.perf_counter()
        assert session.post(f"{base}/v1/workflows/digest/trigger", json={"payload": {}},
                            timeout=30).status_code == 202
        times.append(time.perf_counter() - t0)
        i += 1
    return percentile(times, 99)


def _plans(store: Store, ids: list[str], now: datetime) -> dict[str, str]:
    e = t.executions
    queries = {
        "expired": sa.select(e.c.execution_id).where(
            e.c.status.in_(["success", "error", "cancelled"]),
            e.c.finished_at < now - KEEP).order_by(e.c.finished_at).limit(1000),
        "get": sa.select(e).where(e.c.execution_id == ids[0]),
        "list": sa.select(e).where(e.c.environment == "default")  # as the store lists
        .order_by(e.c.created_at.desc(), e.c.execution_id).limit(50),
    }
    plans = {}
    with store.engine.connect() as conn:
        for name, query in queries.items():
            compiled = query.compile(conn, compile_kwargs={"render_postcompile": True})
            rows = conn.exec_driver_sql("EXPLAIN " + str(compiled), compiled.params)
            plans[name] = "; ".join(str(r[0]).strip() for r in rows)
    return plans


def measure(name: str) -> list[Row]:
    if name != "postgres":
        return []  # millions of rows: the production backend's question
    with backend("postgres") as b:
        store = Store(b.store_url)
        now = datetime.now(UTC)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), now)
        key = store.access.create_api_key("default", now)[1]
        with dg.DagsterInstance.from_config(str(b.home)) as instance, \
                api_server(b.store_url, b.home, b.home / "api.log") as base:
            _queue_waiting(store)
            sample = [e.execution_id for e in store.list_executions(limit=WAITING)]
            _api(base, key, sample)  # warm: the server's first requests, the caches
            fresh = {"tick": _tick(b.store_url, instance), **_api(base, key, sample)}
            steady_fresh = _steady(base, key, PRUNE_SECONDS)
            t0 = time.perf_counter()
            _bulk(store, ROWS, now - timedelta(days=60))
            built = time.perf_counter() - t0
            with store.engine.connect() as conn:
                bulk_ids = list(conn.execute(sa.text(
                    "SELECT execution_id FROM orch_executions WHERE request_id LIKE 'bulk-%' "
                    "AND environment = 'default' ORDER BY random() LIMIT 1000")).scalars())
            grown = {"tick": _tick(b.store_url, instance), **_api(base, key, bulk_ids)}
            plans = _plans(store, bulk_ids, now)
            steady_alone = _steady(base, key, PRUNE_SECONDS)
            pruned: dict[str, Any] = {}

            def pruner() -> None:
                t1 = time.perf_counter()
                report = prune(store, now=datetime.now(UTC), default_retention=KEEP,
                               budget=PRUNE_SECONDS, duty=SENSOR_DUTY)  # as the sensor does
                pruned.update(rows=sum(report.removed.values()),
                              executions=report.removed["executions"],
                              seconds=time.perf_counter() - t1)

            thread = threading.Thread(target=pruner)
            thread.start()
            steady_pruning = _steady(base, key, PRUNE_SECONDS)
            thread.join()
    rate = pruned["rows"] / pruned["seconds"]
    print(f"[retention] {ROWS:,} rows built in {built:.0f}s; fresh {fresh}; grown {grown}; "
          f"steady p99 fresh {steady_fresh * 1000:.1f} ms, grown {steady_alone * 1000:.1f} ms, "
          f"pruning {steady_pruning * 1000:.1f} ms; pruned {pruned} = {rate:.0f} rows/s; "
          f"plans {plans}", flush=True)
    note = f"{ROWS:,} terminal executions beside a fresh store (same database)"
    rows = [Row(benchmark=f"{label}, {ROWS:,} executions vs fresh", backend="postgres",
                ours=f"{grown[k] * 1000:.1f} ms", baseline=f"{fresh[k] * 1000:.1f} ms",
                ratio=grown[k] / fresh[k], target="≤ 1.5", met=grown[k] / fresh[k] <= 1.5,
                notes=note + (f"; plan: `{plans[plan]}`" if plan else ""))
            for label, k, plan in (("queue-sensor tick (median)", "tick", None),
                                   ("GET /v1/executions/{id} p99", "get", "get"),
                                   ("POST …/trigger p99", "trigger", None),
                                   ("GET /v1/executions p99", "list", "list"))]
    rows.append(Row(benchmark=f"prune throughput beside {RATE} triggers/s",
                    backend="postgres", ours=f"{rate:,.0f} rows/s", baseline="5,000 rows/s",
                    ratio=rate / 5000, target="≥ 5,000 rows/s", met=rate >= 5000,
                    notes=f"{pruned['executions']:,} executions pruned in "
                          f"{pruned['seconds']:.0f} s; expired query plan: "
                          f"`{plans['expired']}`", extra=pruned))
    rows.append(Row(benchmark=f"trigger p99 at {RATE}/s while pruning", backend="postgres",
                    ours=f"{steady_pruning * 1000:.1f} ms",
                    baseline=f"{steady_alone * 1000:.1f} ms without pruning",
                    ratio=steady_pruning / steady_alone, target="≤ 1.5",
                    met=steady_pruning / steady_alone <= 1.5,
                    notes=f"same grown store; fresh store: {steady_fresh * 1000:.1f} ms"))
    return rows


def main() -> None:
    from bench.report import table

    print(table(measure("postgres")))


if __name__ == "__main__":
    main()
