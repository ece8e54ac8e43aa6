"""Drain throughput and lone-trigger latency through the real daemon, the real API server and
real runs (DefaultRunLauncher, queued run coordinator):

- **drain**: a burst of ``BENCH_DRAIN_BURST`` API triggers (default 1,000) of a trivial 2-block
  workflow, from the first 202 to the last terminal execution, with batch runs (the defaults),
  beside the bare baseline in the same run: a bare Dagster sensor launching one run of a bare job
  (the same blocks) per request, with the same launcher and coordinator
  (``BENCH_DRAIN_BARE_BURST`` requests, default 60: at well under one run per second, a 1,000
  baseline would take half an hour; its rate does not depend on the burst size);
- **IO-bound drain**: the same burst of a workflow whose ``http`` block waits 200 ms on a loopback
  server;
- **lone trigger latency**: ``BENCH_LONE_TRIGGERS`` (20) API triggers one at a time on an idle
  system, 202 → ``running`` and → terminal (the store's own timestamps), with batching on and off
  (``ORCHESTRATOR_MAX_BATCH_SIZE=1``) in the same run.

Also reported: the machine's CPU time per execution during the drain (all processes: API,
daemon, code server, run workers, database), from ``/proc/stat``.

Usage: .venv/bin/python -m bench.drain [sqlite|postgres] [trivial|io|lone|bare]
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from datetime import UTC, datetime
from threading import local
from typing import Any

import dagster as dg
import requests
import sqlalchemy as sa

from bench.baselines import REQUESTS
from bench.report import BACKENDS, QUICK, REPO, Row, percentile
from harness.dagster_home import Backend, backend, environment
from harness.http_server import Answer, loopback_server
from harness.processes import Daemon, api_server, wait_for
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store import tables as t

BURST = int(os.environ.get("BENCH_DRAIN_BURST", "300" if QUICK else "1000"))
BARE_BURST = int(os.environ.get("BENCH_DRAIN_BARE_BURST", "20" if QUICK else "60"))
LONE = int(os.environ.get("BENCH_LONE_TRIGGERS", "10" if QUICK else "20"))
CONCURRENCY = int(os.environ.get("BENCH_DRAIN_CONCURRENCY", "4"))
# The drain is also measured with this ORCHESTRATOR_MAX_BATCH_SIZE beside the default (200).
ALT_BATCH = os.environ.get("BENCH_DRAIN_ALT_BATCH", "50")
IO_DELAY = 0.2
TRIVIAL = {"name": "digest", "blocks": [
    {"id": "items", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform",
     "with": {"count": "{{ items.total }}", "who": "{{ trigger.payload.user }}"}}]}
TARGETS = {("trivial", "postgres"): 50.0, ("trivial", "sqlite"): 25.0, ("io", "postgres"): 40.0}
TERMINAL = ("success", "error", "cancelled")


def _io_workflow(url: str) -> dict[str, Any]:
    return {"name": "digest", "blocks": [
        {"id": "call", "type": "http", "with": {"url": url, "retries": 0}},
        {"id": "summary", "type": "transform",
         "with": {"status": "{{ call.status }}", "who": "{{ trigger.payload.user }}"}}]}


def _cpu_seconds() -> float:
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    busy = sum(fields) - fields[3] - fields[4]  # all but idle and iowait
    return busy / os.sysconf("SC_CLK_TCK")


@contextmanager
def _product(b: Backend, workflow: dict[str, Any], **settings: str) -> Iterator[tuple[str, str]]:
    """Daemon (our sensors) + API server over ``b``; yields (API URL, key)."""
    store = Store(b.store_url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(workflow, block_types()), now)
    key = store.access.create_api_key("default", now)[1]
    log = b.home / "daemon.log"
    daemon = Daemon(environment(b.home, b.store_url, BENCH_MODE="ours", **settings), log,
                    REPO / "bench" / "workspace.yaml")
    daemon.start()
    try:
        wait_for(lambda: b"Checking for new runs for sensor" in log.read_bytes(), 180,
                 "the sensor daemon")
        with api_server(b.store_url, b.home, **settings) as url:
            yield url, key
    finally:
        daemon.stop()


def _fire(url: str, key: str, n: int) -> float:
    """``n`` triggers from 16 threads; returns when the first 202 arrived."""
    sessions = local()
    first: list[float] = []

    def one(i: int) -> int:
        session = getattr(sessions, "s", None)
        if session is None:
            session = sessions.s = requests.Session()
            session.headers["Authorization"] = f"Bearer {key}"
        r = session.post(f"{url}/v1/workflows/digest/trigger", json={"payload": {"user": i}},
                         timeout=60)
        if r.status_code == 202 and not first:
            first.append(time.time())
        return r.status_code

    with ThreadPoolExecutor(16) as pool:
        codes = list(pool.map(one, range(n)))
    assert codes.count(202) == n, f"{n - codes.count(202)} triggers refused"
    return first[0]


def _terminal(engine: sa.Engine) -> int:
    e = t.executions
    with engine.connect() as conn:
        return conn.execute(sa.select(sa.func.count()).select_from(e)
                            .where(e.c.status.in_(TERMINAL))).scalar_one()


def drain(name: str, kind: str, **settings: str) -> dict[str, Any]:
    """``kind``: trivial or io; ``settings``: ``ORCHESTRATOR_*`` of the daemon and server."""
    with backend(name, max_concurrent_runs=CONCURRENCY, threads=True) as b, \
            loopback_server() as provider:
        url_io = provider.answer("/slow", Answer(200, {"ok": True}, delay=IO_DELAY))
        workflow = TRIVIAL if kind == "trivial" else _io_workflow(url_io)
        with _product(b, workflow, **settings) as (url, key):
            engine = sa.create_engine(b.store_url)
            cpu0 = _cpu_seconds()
            t0 = _fire(url, key, BURST)
            wait_for(lambda: _terminal(engine) >= BURST, 120 + BURST, f"{BURST} executions",
                     poll=0.2)
            elapsed = time.time() - t0
            cpu = _cpu_seconds() - cpu0
            with engine.connect() as conn:
                e = t.executions
                outcomes = dict(conn.execute(sa.select(e.c.outcome, sa.func.count())
                                             .group_by(e.c.outcome)).all())
                runs = conn.execute(sa.select(sa.func.count(sa.distinct(e.c.dagster_run_id))))\
                    .scalar_one()
            engine.dispose()
            timeline = _run_timeline(b, t0)
    result = {"elapsed": elapsed, "rate": BURST / elapsed, "cpu_ms": cpu * 1000 / BURST,
              "outcomes": outcomes, "runs": runs, **timeline}
    print(f"[drain/{name}/{kind}/{settings or 'defaults'}] {BURST} in {elapsed:.1f}s = "
          f"{result['rate']:.1f}/s, "
          f"{runs} runs, {result['cpu_ms']:.0f} CPU-ms/execution, {outcomes}; first run "
          f"{timeline['first_run_after']:.1f}s after the first 202, median run created → "
          f"started {timeline['create_to_start']:.1f}s, started → ended "
          f"{timeline['start_to_end']:.1f}s", flush=True)
    return result


def _run_timeline(b: Backend, t0: float) -> dict[str, float]:
    """Where a drain's time goes, from Dagster's run records: seconds from the first 202 to the
    first run's creation, median creation → start (queue + process start) and start → end."""
    with dg.DagsterInstance.from_config(str(b.home)) as instance:
        records = instance.get_run_records()
    created = [r.create_timestamp.timestamp() for r in records]
    waits = [r.start_time - r.create_timestamp.timestamp() for r in records if r.start_time]
    spans = [r.end_time - r.start_time for r in records if r.start_time and r.end_time]
    return {"first_run_after": min(created) - t0 if created else float("nan"),
            "create_to_start": percentile(waits, 50), "start_to_end": percentile(spans, 50)}


def bare(name: str) -> dict[str, Any]:
    """One run of a bare job per request (no orchestrator code in the path)."""
    with backend(name, max_concurrent_runs=CONCURRENCY, threads=True) as b:
        store = Store(b.store_url)
        REQUESTS.create(store.engine, checkfirst=True)
        log = b.home / "daemon.log"
        daemon = Daemon(environment(b.home, b.store_url, BENCH_MODE="bare"), log,
                        REPO / "bench" / "workspace.yaml")
        daemon.start()
        try:
            with dg.DagsterInstance.from_config(str(b.home)) as instance:
                wait_for(lambda: b"Checking for new runs for sensor" in log.read_bytes(), 180,
                         "the sensor daemon")
                t0 = time.time()
                with store.engine.begin() as conn:
                    conn.execute(REQUESTS.insert(), [{"id": i + 1} for i in range(BARE_BURST)])

                def done() -> bool:
                    return sum(r.dagster_run.status in (dg.DagsterRunStatus.SUCCESS,
                                                        dg.DagsterRunStatus.FAILURE)
                               for r in instance.get_run_records()) >= BARE_BURST

                wait_for(done, 60 + BARE_BURST * 10, f"{BARE_BURST} bare runs", poll=0.5)
                elapsed = time.time() - t0
        finally:
            daemon.stop()
    result = {"elapsed": elapsed, "rate": BARE_BURST / elapsed}
    print(f"[drain/{name}/bare] {BARE_BURST} runs in {elapsed:.1f}s = {result['rate']:.2f}/s",
          flush=True)
    return result


def _finished(store: Store, execution_id: str) -> Any:
    record = store.get_execution(execution_id)
    return record if record.status.terminal else None


def lone(name: str, batch_size: int | None) -> dict[str, Any]:
    """``LONE`` triggers, each sent once the previous one is terminal."""
    with backend(name, max_concurrent_runs=CONCURRENCY, threads=True) as b, \
            _product(b, TRIVIAL, **({} if batch_size is None else {
                "ORCHESTRATOR_MAX_BATCH_SIZE": str(batch_size)})) as (url, key):
        store = Store(b.store_url)
        session = requests.Session()
        session.headers["Authorization"] = f"Bearer {key}"
        running, finished = [], []
        for i in range(LONE):
            execution_id = session.post(f"{url}/v1/workflows/digest/trigger",
                                        json={"payload": {"user": i}},
                                        timeout=60).json()["execution_id"]
            record = wait_for(lambda e=execution_id: _finished(store, e), 120,
                              "a lone execution", poll=0.05)
            assert record.started_at and record.finished_at
            running.append((record.started_at - record.created_at).total_seconds())
            finished.append((record.finished_at - record.created_at).total_seconds())
            assert record.run_batch_id is None, "a lone trigger must get its own run"
    result = {"running_p50": percentile(running, 50), "running_p99": percentile(running, 99),
              "terminal_p50": percentile(finished, 50), "terminal_p99": percentile(finished, 99)}
    print(f"[lone/{name}/batch={batch_size or 'default'}] {result}", flush=True)
    return result


def measure(name: str, kinds: list[str] | None = None) -> list[Row]:
    kinds = kinds or ["trivial", "io", "lone"]
    rows: list[Row] = []
    baseline = bare(name) if "trivial" in kinds else None
    if "trivial" in kinds:
        ours = drain(name, "trivial")
        assert baseline is not None
        target = TARGETS[("trivial", name)]
        ratio = ours["rate"] / baseline["rate"]
        rows.append(Row(
            benchmark=f"drain, {BURST}-trigger burst, batch runs (executions/s)", backend=name,
            ours=f"{ours['rate']:.1f}/s", baseline=f"{baseline['rate']:.2f}/s (run per trigger)",
            ratio=ratio, target=f">= {target:g}/s and >= 50x",
            met=ours["rate"] >= target and ratio >= 50,
            notes=f"{BURST} API triggers, first 202 to last terminal {ours['elapsed']:.1f}s in "
                  f"{ours['runs']} runs ({CONCURRENCY} concurrent; median run created → started "
                  f"{ours['create_to_start']:.1f}s, started → ended {ours['start_to_end']:.1f}s); "
                  f"outcomes {ours['outcomes']}; "
                  f"machine CPU {ours['cpu_ms']:.0f} ms per execution (all processes); bare "
                  f"baseline: {BARE_BURST} runs of a bare job in {baseline['elapsed']:.1f}s",
            extra={"ours": ours, "bare": baseline}))
    if "trivial" in kinds and ALT_BATCH:
        alt = drain(name, "trivial", ORCHESTRATOR_MAX_BATCH_SIZE=ALT_BATCH)
        assert baseline is not None
        target = TARGETS[("trivial", name)]
        ratio = alt["rate"] / baseline["rate"]
        rows.append(Row(
            benchmark=f"drain, {BURST}-trigger burst, ORCHESTRATOR_MAX_BATCH_SIZE={ALT_BATCH} "
                      "(executions/s)", backend=name, ours=f"{alt['rate']:.1f}/s",
            baseline=f"{baseline['rate']:.2f}/s (run per trigger)", ratio=ratio,
            target=f">= {target:g}/s and >= 50x", met=alt["rate"] >= target and ratio >= 50,
            notes=f"first 202 to last terminal {alt['elapsed']:.1f}s in {alt['runs']} runs; "
                  f"median run created → started {alt['create_to_start']:.1f}s, started → "
                  f"ended {alt['start_to_end']:.1f}s; machine CPU {alt['cpu_ms']:.0f} ms per "
                  "execution", extra=alt))
    if "io" in kinds:
        io = drain(name, "io")
        target = TARGETS.get(("io", name))
        rows.append(Row(
            benchmark=f"IO-bound drain (http block waits {IO_DELAY * 1000:.0f} ms), {BURST} "
                      "triggers (executions/s)", backend=name, ours=f"{io['rate']:.1f}/s",
            baseline="-", ratio=None, target=f">= {target:g}/s" if target else "report",
            met=(io["rate"] >= target) if target else None,
            notes=f"{io['runs']} runs; outcomes {io['outcomes']}; machine CPU "
                  f"{io['cpu_ms']:.0f} ms per execution", extra=io))
    if "lone" in kinds:
        on, off = lone(name, None), lone(name, 1)
        met = on["running_p99"] <= off["running_p99"] * 1.1 + 0.5 and \
            on["terminal_p50"] <= off["terminal_p50"] * 1.1 + 0.5
        rows.append(Row(
            benchmark=f"lone trigger latency, {LONE} triggers (202 → running / → terminal)",
            backend=name,
            ours=f"p50 {on['running_p50']:.2f}/{on['terminal_p50']:.2f}s, p99 "
                 f"{on['running_p99']:.2f}/{on['terminal_p99']:.2f}s",
            baseline=f"batching off: p50 {off['running_p50']:.2f}/{off['terminal_p50']:.2f}s, "
                     f"p99 {off['running_p99']:.2f}/{off['terminal_p99']:.2f}s",
            ratio=on["terminal_p50"] / off["terminal_p50"] if off["terminal_p50"] else None,
            target="no worse than batching off", met=met,
            notes="same product, ORCHESTRATOR_MAX_BATCH_SIZE=1 for the baseline; 'no worse' "
                  "allows 10% + 0.5 s of noise (one sensor loop is 1 s here)",
            extra={"on": on, "off": off}))
    return rows


def main() -> None:
    from bench.report import table

    args = sys.argv[1:]
    names = [a for a in args if a in ("sqlite", "postgres")] or BACKENDS
    kinds = [a for a in args if a in ("trivial", "io", "lone")] or None
    print(table([row for n in names for row in measure(n, kinds)]))


if __name__ == "__main__":
    main()
