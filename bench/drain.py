"""Drain throughput: a burst of queued triggers (written to the store as ``orchestrator trigger``
does) run to completion through the real daemon by ``queued_trigger_sensor`` and
``execute_workflow``, vs a bare sensor launching one run of a bare job (the same blocks) per
request, with the same launcher and run coordinator. Reports executions completed per second
and runs created per second for both.

``BENCH_DRAIN_BURST`` sets the burst (the issue asks for 1,000; the default is smaller because
each run is a fresh process, which on a 2-core machine takes ~1 s of CPU or more, see the notes).

Usage: .venv/bin/python -m bench.drain [sqlite|postgres]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from bench.baselines import REQUESTS
from bench.harness import BACKENDS, QUICK, REPO, Daemon, Row, backend, environment, wait_for
from orchestrator.domain.correlation import Correlation, Source, new_id
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store

BURST = int(os.environ.get("BENCH_DRAIN_BURST", "40" if QUICK else "150"))
CONCURRENCY = int(os.environ.get("BENCH_DRAIN_CONCURRENCY", "4"))
WORKFLOW = {"name": "digest", "blocks": [
    {"id": "items", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform",
     "with": {"count": "{{ items.total }}", "who": "{{ trigger.payload.user }}"}}]}
DONE = (dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE)


def _burst_ours(store: Store) -> None:
    now = datetime.now(UTC)
    for i in range(BURST):
        store.create_execution(Correlation(
            execution_id=new_id(), request_id=new_id(), source=Source.MANUAL, workflow="digest",
            environment="default", payload={"user": f"u{i}"}), now, enqueue=True)


def _burst_bare(store: Store) -> None:
    REQUESTS.create(store.engine, checkfirst=True)
    with store.engine.begin() as conn:
        conn.execute(REQUESTS.insert(), [{"id": i + 1} for i in range(BURST)])


def _one(name: str, mode: str) -> dict[str, Any]:
    with backend(name, max_concurrent_runs=CONCURRENCY, threads=True) as b:
        store = Store(b.store_url)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), datetime.now(UTC))
        if mode == "bare":
            REQUESTS.create(store.engine, checkfirst=True)
        daemon = Daemon(environment(b.home, b.store_url, BENCH_MODE=mode),
                        b.home / "daemon.log", REPO / "bench" / "workspace.yaml")
        daemon.start()
        try:
            with dg.DagsterInstance.from_config(str(b.home)) as instance:
                wait_for(lambda: b"Checking for new runs for sensor" in
                         (b.home / "daemon.log").read_bytes(), 180, "the sensor daemon")
                t0 = time.time()
                (_burst_bare if mode == "bare" else _burst_ours)(store)
                accepted = time.time() - t0
                created_at: float | None = None

                def finished() -> bool:
                    nonlocal created_at
                    records = instance.get_run_records()
                    if created_at is None and len(records) >= BURST:
                        created_at = time.time()
                    return sum(r.dagster_run.status in DONE for r in records) >= BURST

                wait_for(finished, 60 + BURST * 10, f"{BURST} runs to finish", poll=1)
                elapsed = time.time() - t0
                records = instance.get_run_records()
                failed = sum(r.dagster_run.status is dg.DagsterRunStatus.FAILURE
                             for r in records)
                worker = [r.end_time - r.start_time for r in records
                          if r.end_time and r.start_time]
                if mode == "ours":
                    finals = store.list_executions(limit=BURST * 2)
                    assert sum(e.status.value == "success" for e in finals) == BURST
        finally:
            daemon.stop()
    created = (created_at or time.time()) - t0
    result = {"elapsed": elapsed, "rate": BURST / elapsed, "created_rate": BURST / created,
              "failed": failed, "accept_rate": BURST / accepted,
              "run_seconds": sorted(worker)[len(worker) // 2] if worker else float("nan")}
    print(f"[drain/{name}/{mode}] {BURST} runs in {elapsed:.1f}s = {result['rate']:.2f}/s "
          f"(created {result['created_rate']:.2f}/s, median run {result['run_seconds']:.2f}s, "
          f"failed {failed})", flush=True)
    return result


def measure(name: str) -> list[Row]:
    ours = _one(name, "ours")
    bare = _one(name, "bare")
    ratio = ours["rate"] / bare["rate"]
    return [Row(benchmark=f"drain, {BURST}-trigger burst (completed/s)", backend=name,
                ours=f"{ours['rate']:.2f}/s", baseline=f"{bare['rate']:.2f}/s", ratio=ratio,
                target="report", met=None,
                notes=f"runs created/s: ours {ours['created_rate']:.1f}, bare "
                      f"{bare['created_rate']:.1f}; median run process wall time (RUN_START→end)"
                      f": ours {ours['run_seconds']:.2f}s, bare {bare['run_seconds']:.2f}s; "
                      f"{CONCURRENCY} concurrent runs; failed runs: ours {ours['failed']}, "
                      f"bare {bare['failed']}",
                extra={"ours": ours, "bare": bare})]


def main() -> None:
    from bench.harness import table

    names = sys.argv[1:] or BACKENDS
    print(table([row for n in names for row in measure(n)]))


if __name__ == "__main__":
    main()
