"""The production profile (PostgreSQL + warm Celery workers, ``examples/dagster.yaml``,
``orchestrator daemon``) beside the embedded default (``make dev``: SQLite, ``dagster-daemon
run``, a process spawned per run), in the same run:

- **dispatch latency**: ``BENCH_LONE_TRIGGERS`` (20) lone API triggers, each sent a random
  0-1 s after the previous one ended: 202 → ``running`` (the store's timestamps), p50 / p99;
- **schedule start lag**: ``BENCH_SCHEDULE_SAMPLES`` (12) one-time schedules due 3 s apart:
  ``scheduled_for`` → ``RUN_START``, beside native Dagster schedules with the DefaultRunLauncher
  (``bench.schedule_precision``'s native side, same run);
- **scale-out**: the IO-bound burst (http block waiting 200 ms) drained by one worker, then by
  two workers started as if on two machines (each its own process tree, concurrency 1);
- **drain**: the trivial 1,000-burst on the Celery profile beside the embedded default.

RabbitMQ on 127.0.0.1:5672 (guest/guest). Usage: .venv/bin/python -m bench.scale_out
[latency|schedules|scale|drain]
"""

from __future__ import annotations

import os
import random
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg
import requests
import sqlalchemy as sa

from bench import drain, schedule_precision
from bench.report import QUICK, Row, percentile
from harness.celery_profile import Profile, celery_profile
from harness.dagster_home import backend
from harness.http_server import Answer, loopback_server
from harness.processes import BIN, wait_for
from orchestrator.domain.correlation import iso_utc
from orchestrator.store import Store

LONE = int(os.environ.get("BENCH_LONE_TRIGGERS", "10" if QUICK else "20"))
SAMPLES = int(os.environ.get("BENCH_SCHEDULE_SAMPLES", "8" if QUICK else "12"))
# The batching issue's IO-bound drain: its burst (BENCH_DRAIN_BURST, 1,000).
IO_BURST = int(os.environ.get("BENCH_SCALE_BURST", str(drain.BURST)))
BURST = drain.BURST


def _lone_latency(url: str, key: str, store: Store) -> dict[str, float]:
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {key}"
    running = []
    for i in range(LONE):
        execution_id = session.post(f"{url}/v1/workflows/digest/trigger",
                                    json={"payload": {"user": i}},
                                    timeout=60).json()["execution_id"]
        record = wait_for(lambda e=execution_id: drain._finished(store, e), 120,
                          "a lone execution", poll=0.05)
        assert record.started_at and record.run_batch_id is None
        running.append((record.started_at - record.created_at).total_seconds())
        time.sleep(random.uniform(0, 1))
    return {"p50": percentile(running, 50), "p99": percentile(running, 99),
            "max": max(running)}


def latency() -> list[Row]:
    with celery_profile([drain.TRIVIAL]) as p:
        ours = _lone_latency(p.url, p.key, p.store)
    with backend("sqlite", max_concurrent_runs=drain.CONCURRENCY, threads=True) as b, \
            drain._product(b, drain.TRIVIAL) as (url, key):
        embedded = _lone_latency(url, key, Store(b.store_url))
    print(f"[scale_out/latency] celery {ours} embedded {embedded}", flush=True)
    return [Row(
        benchmark=f"dispatch latency, {LONE} lone API triggers (202 → running, p50 / p99)",
        backend="postgres+celery", ours=f"{ours['p50']:.2f} / {ours['p99']:.2f} s",
        baseline=f"embedded default: {embedded['p50']:.2f} / {embedded['p99']:.2f} s",
        ratio=ours["p50"] / embedded["p50"] if embedded["p50"] else None,
        target="p50 <= 1 s, p99 <= 2 s", met=ours["p50"] <= 1 and ours["p99"] <= 2,
        notes="examples/dagster.yaml + orchestrator daemon + 1 worker (concurrency 2); baseline "
              "make dev's (SQLite, dagster-daemon run, a process per run); each trigger sent "
              "0-1 s after the previous ended", extra={"ours": ours, "embedded": embedded})]


def _schedule_lags(p: Profile) -> dict[str, float]:
    first = datetime.now(UTC).replace(microsecond=0) + timedelta(seconds=10)
    due = [first + timedelta(seconds=3 * i) for i in range(SAMPLES)]
    for i, at in enumerate(due):
        subprocess.run([str(BIN / "orchestrator"), "schedules", "create", "--workflow", "digest",
                        "--at", iso_utc(at), "--payload", f'{{"user": "s{i}"}}'],
                       env=p.env, check=True, capture_output=True)
    time.sleep(max(0.0, (due[-1] - datetime.now(UTC)).total_seconds()))
    with dg.DagsterInstance.from_config(str(p.b.home)) as instance:
        def starts() -> list[float]:
            lags = schedule_precision._lags(instance, p.store, due[0], due[-1])
            return lags["ours"]["started"]

        wait_for(lambda: len(starts()) >= SAMPLES, 120, "every scheduled run to start", poll=1)
        lags = starts()
    return {"p50": percentile(lags, 50), "p99": percentile(lags, 99), "n": len(lags)}


def schedules() -> list[Row]:
    with celery_profile([drain.TRIVIAL], api=False) as p:
        ours = _schedule_lags(p)
    native = schedule_precision.run("postgres", label=" (native baseline)")["native"]["started"]
    n50, n99, n = native
    print(f"[scale_out/schedules] celery {ours} native p50 {n50:.2f} p99 {n99:.2f}", flush=True)
    ratio = ours["p50"] / n50 if n50 else None
    return [Row(
        benchmark=f"schedule start lag ({SAMPLES} occurrences 3 s apart; scheduled_for → "
                  "RUN_START, p50 / p99)", backend="postgres+celery",
        ours=f"{ours['p50']:.2f} / {ours['p99']:.2f} s",
        baseline=f"native Dagster schedules, DefaultRunLauncher: {n50:.2f} / {n99:.2f} s (n={n})",
        ratio=ratio, target="p50 <= 1 s, p99 <= 2 s, <= 0.25x native",
        met=ours["p50"] <= 1 and ours["p99"] <= 2 and ratio is not None and ratio <= 0.25,
        notes="ours: one-time schedules on the Celery profile; native: "
              "bench.schedule_precision's native schedules (same run)",
        extra={"ours": ours, "native": native})]


def _burst(p: Profile, n: int) -> dict[str, Any]:
    engine = sa.create_engine(p.b.store_url)
    t0 = drain._fire(p.url, p.key, n)
    wait_for(lambda: drain._terminal(engine) >= n, 120 + n, f"{n} executions", poll=0.2)
    elapsed = time.time() - t0
    engine.dispose()
    return {"elapsed": elapsed, "rate": n / elapsed}


def scale() -> list[Row]:
    results = {}
    with loopback_server() as provider:
        workflow = drain._io_workflow(provider.answer("/slow", Answer(200, {"ok": True},
                                                                     delay=drain.IO_DELAY)))
        for workers in (1, 2):
            with celery_profile([workflow], workers=workers, concurrency=1) as p:
                results[workers] = _burst(p, IO_BURST)
            print(f"[scale_out/scale] {workers} worker(s): {results[workers]}", flush=True)
    one, two = results[1]["rate"], results[2]["rate"]
    return [Row(
        benchmark=f"scale-out, IO-bound burst of {IO_BURST} (http block waits "
                  f"{drain.IO_DELAY * 1000:.0f} ms; executions/s)", backend="postgres+celery",
        ours=f"2 workers: {two:.1f}/s", baseline=f"1 worker: {one:.1f}/s", ratio=two / one,
        target=">= 1.7x", met=two / one >= 1.7,
        notes="each worker its own process tree (concurrency 1), as on two machines; same "
              "2-core machine, broker and PostgreSQL", extra=results)]


def drains() -> list[Row]:
    with celery_profile([drain.TRIVIAL]) as p:
        ours = _burst(p, BURST)
    embedded = drain.drain("sqlite", "trivial")
    print(f"[scale_out/drain] celery {ours} embedded {embedded['rate']:.1f}/s", flush=True)
    return [Row(
        benchmark=f"drain, {BURST}-trigger burst on the Celery profile (executions/s)",
        backend="postgres+celery", ours=f"{ours['rate']:.1f}/s",
        baseline=f"embedded default (SQLite): {embedded['rate']:.1f}/s",
        ratio=ours["rate"] / embedded["rate"], target=">= embedded default",
        met=ours["rate"] >= embedded["rate"],
        notes="1 worker, concurrency 2; defaults otherwise (batch runs of up to 200)",
        extra={"ours": ours, "embedded": embedded})]


PARTS = {"latency": latency, "schedules": schedules, "scale": scale, "drain": drains}


def measure(name: str) -> list[Row]:
    if name != "postgres":
        return []  # the production profile is PostgreSQL's
    only = [p for p in os.environ.get("BENCH_SCALE_ONLY", "").split(",") if p] or list(PARTS)
    return [row for part in only for row in PARTS[part]()]


def main() -> None:
    from bench.report import table

    parts = [a for a in sys.argv[1:] if a in PARTS] or list(PARTS)
    print(table([row for part in parts for row in PARTS[part]()]))


if __name__ == "__main__":
    main()
