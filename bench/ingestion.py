"""Ingestion: accepted triggers per second and latency of ``POST /v1/workflows/{name}/trigger``,
from ``wrk`` (a C load generator) on loopback against one ``orchestrator serve`` process.

Cases, each on a fresh store (SQLite file, or a fresh database on the local PostgreSQL):

- **capacity**: closed loop, ``CONNECTIONS`` connections for ``SECONDS``: accepted/s, p50, p99.
  Target ≥ 2,000 accepted/s.
- **steady** then **burst**, burst gate on (threshold ``GATE_THRESHOLD``/s): paced load (each
  connection pauses a random, exponentially distributed time of mean 100 ms before each
  request, so connections x 10 ≈ requests/s, arriving Poisson-like), steady at
  ``STEADY_RATE``/s, then 10x that. Target: burst p99 ≤ 2x steady p99.
- **keys** (``make chaos``, :func:`keyed_burst`): 10,000 concurrent triggers over 1,000
  idempotency keys must store exactly 1,000 executions.

Every case also checks that nothing answered 202 is missing: rows stored (executions plus burst
buffer) ≥ 202s counted (wrk stops counting at the deadline; requests in flight then may still
be written, so stored may exceed accepted by at most the connection count).

Usage: .venv/bin/python -m bench.ingestion [sqlite|postgres] [keys]
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from threading import local
from typing import Any

import requests
import sqlalchemy as sa

from bench.report import BACKENDS, QUICK, Row, percentile
from harness import processes
from harness.dagster_home import Backend, backend
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store import tables as t

SECONDS = 5 if QUICK else 10
CONNECTIONS = 64
STEADY_RATE = 150  # requests/s; the burst is 10x
GATE_THRESHOLD = 300  # per second: the steady load passes, the burst trips the gate
PACE_MS = 100
WORKFLOW = {"name": "digest", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}
TARGET_RATE = 2000

_LUA = """
wrk.method = "POST"
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer %(key)s"
local n = 0
request = function()
  n = n + 1
  return wrk.format(nil, nil, nil, '{"payload": {"n": ' .. n .. '}}')
end
%(delay)s
done = function(summary, latency, requests)
  io.write(string.format(
    'WRK_JSON {"requests": %%d, "duration_us": %%d, "status_errors": %%d, ' ..
    '"socket_errors": %%d, "p50_us": %%d, "p99_us": %%d, "max_us": %%d}\\n',
    summary.requests, summary.duration, summary.errors.status,
    summary.errors.connect + summary.errors.read + summary.errors.write +
    summary.errors.timeout, latency:percentile(50), latency:percentile(99), latency.max))
end
"""


@dataclass(frozen=True, kw_only=True)
class LoadResult:
    """One wrk run: what was accepted, how fast, and whether every 202 is stored."""

    connections: int
    seconds: float
    accepted: int
    refused: int  # non-2xx answers
    socket_errors: int
    p50_ms: float
    p99_ms: float
    stored: int  # rows written during the run (executions + burst buffer)
    buffered: int

    @property
    def rate(self) -> float:
        return self.accepted / self.seconds

    @property
    def lost(self) -> int:
        return max(0, self.accepted - self.stored)

    def summary(self) -> str:
        return (f"{self.rate:,.0f}/s, p50 {self.p50_ms:.1f} ms, p99 {self.p99_ms:.1f} ms "
                f"({self.accepted:,} accepted, {self.refused} refused, {self.socket_errors} "
                f"socket errors, {self.stored:,} stored, {self.buffered:,} buffered, lost "
                f"{self.lost})")


@dataclass(frozen=True, kw_only=True)
class Server:
    url: str
    key: str
    store: Store


@contextmanager
def api_server(b: Backend, *, workers: int = 1, **settings: str) -> Iterator[Server]:
    """``orchestrator serve [--workers N]`` over ``b``'s store, with a workflow ``digest`` and
    an API key."""
    store = Store(b.store_url)
    now = datetime.now(UTC)
    store.apply_workflow(parse_workflow(WORKFLOW, block_types()), now)
    key = store.access.create_api_key("default", now)[1]
    with processes.api_server(b.store_url, b.home, None, workers=workers, **settings) as url:
        yield Server(url=url, key=key, store=store)


def _rows(store: Store) -> tuple[int, int]:
    """(executions, burst buffer entries) stored now."""
    with store.engine.connect() as conn:
        return tuple(int(conn.execute(sa.select(sa.func.count()).select_from(table)).scalar_one())
                     for table in (t.executions, t.burst_buffer))  # type: ignore[return-value]


def load(server: Server, *, connections: int, seconds: float, paced: bool = False
         ) -> LoadResult:
    """Run wrk against the trigger endpoint (paced: a pause of mean 100 ms before each request
    of a connection)."""
    # Exponential pauses: Poisson-like arrivals (a fixed pause locks the connections into
    # step, and the server sees clumps of every connection at once).
    delay = ("init = function(args) math.randomseed(os.time() + "
             "tonumber(tostring({}):sub(8), 16)) end\n"
             f"delay = function() return math.floor(-math.log(1 - math.random()) * {PACE_MS}) "
             "end") if paced else ""
    before = _rows(server.store)
    with tempfile.TemporaryDirectory(prefix="bench-wrk-") as tmp:
        script = Path(tmp) / "trigger.lua"
        script.write_text(_LUA % {"key": server.key, "delay": delay})
        out = subprocess.run(
            ["wrk", f"-t{min(2, connections)}", f"-c{connections}", f"-d{seconds}s",
             "--timeout", "10s", "-s", str(script),
             f"{server.url}/v1/workflows/digest/trigger"],
            capture_output=True, text=True, timeout=seconds + 60, check=True).stdout
    time.sleep(1)  # requests in flight at wrk's deadline finish
    after = _rows(server.store)
    line = next(line for line in out.splitlines() if line.startswith("WRK_JSON "))
    data: dict[str, Any] = json.loads(line.removeprefix("WRK_JSON "))
    return LoadResult(
        connections=connections, seconds=data["duration_us"] / 1e6,
        accepted=data["requests"] - data["status_errors"], refused=data["status_errors"],
        socket_errors=data["socket_errors"], p50_ms=data["p50_us"] / 1000,
        p99_ms=data["p99_us"] / 1000, stored=sum(after) - sum(before),
        buffered=after[1] - before[1])


def measure(name: str) -> list[Row]:
    rows = []
    with backend(name) as b, api_server(b) as server:
        load(server, connections=8, seconds=2)  # warm up (imports, pool, plans)
        capacity = load(server, connections=CONNECTIONS, seconds=SECONDS)
    print(f"  capacity: {capacity.summary()}", flush=True)
    rows.append(Row(
        benchmark=f"ingestion capacity: accepted/s, closed loop, {CONNECTIONS} connections, "
                  f"{SECONDS} s (wrk)", backend=name, ours=capacity.summary(), baseline="—",
        ratio=None, target=f"≥ {TARGET_RATE:,}/s, none lost",
        met=capacity.rate >= TARGET_RATE and capacity.lost == 0 and capacity.refused == 0))
    rows.append(gated_burst(name, benchmark=(
        f"ingestion burst: p99 of a 10x burst ({10 * STEADY_RATE:,}/s) vs steady "
        f"({STEADY_RATE}/s), gate on (threshold {GATE_THRESHOLD}/s), paced wrk")))
    return rows


def gated_burst(name: str, *, benchmark: str, workers: int = 1) -> Row:
    """Paced load at ``STEADY_RATE``/s below the gate, then a 10x burst that trips it, on
    ``workers`` server processes: the burst's p99 against the steady p99 (target ≤ 2x)."""
    gate = {"ORCHESTRATOR_BURST_GATE": "1", "ORCHESTRATOR_BURST_THRESHOLD": str(GATE_THRESHOLD)}
    with backend(name) as b, api_server(b, workers=workers, **gate) as server:
        load(server, connections=8, seconds=2, paced=True)  # 80/s, below the gate: warm up
        steady = load(server, connections=STEADY_RATE * PACE_MS // 1000, seconds=SECONDS,
                      paced=True)
        burst = load(server, connections=10 * STEADY_RATE * PACE_MS // 1000, seconds=SECONDS,
                     paced=True)
    print(f"  {workers} process(es) steady: {steady.summary()}\n  {workers} process(es) "
          f"burst: {burst.summary()}", flush=True)
    ratio = burst.p99_ms / steady.p99_ms if steady.p99_ms else None
    return Row(
        benchmark=benchmark, backend=name, ours=f"burst {burst.summary()}",
        baseline=f"steady {steady.summary()}", ratio=ratio,
        target="burst p99 ≤ 2x steady p99, none lost",
        met=ratio is not None and ratio <= 2 and burst.lost == 0 and steady.lost == 0
        and burst.refused == 0 and steady.refused == 0)


# ---------------------------------------------------------------------------------- keyed burst

@dataclass(frozen=True, kw_only=True)
class KeyedBurst:
    requests: int
    keys: int
    answered_202: int
    executions: int
    seconds: float
    p50_ms: float
    p99_ms: float

    def ok(self) -> bool:
        return self.answered_202 == self.requests and self.executions == self.keys


def keyed_burst(name: str = "postgres", *, requests_: int = 10_000, keys: int = 1_000,
                concurrency: int = 64) -> KeyedBurst:
    """``requests_`` concurrent triggers, request ``i`` with idempotency key ``k<i mod keys>``
    (a Python thread pool over keep-alive connections, so each request is counted exactly)."""
    with backend(name) as b, api_server(b) as server:
        sessions = local()

        def fire(i: int) -> tuple[int, float]:
            session = getattr(sessions, "s", None)
            if session is None:
                session = sessions.s = requests.Session()
                session.headers["Authorization"] = f"Bearer {server.key}"
            started = time.perf_counter()
            r = session.post(f"{server.url}/v1/workflows/digest/trigger", timeout=60,
                             json={"payload": {"i": i}, "idempotency_key": f"k{i % keys}"})
            return r.status_code, time.perf_counter() - started

        started = time.perf_counter()
        with ThreadPoolExecutor(concurrency) as pool:
            results = list(pool.map(fire, range(requests_)))
        seconds = time.perf_counter() - started
        latencies = [lat for code, lat in results if code == 202]
        return KeyedBurst(requests=requests_, keys=keys, answered_202=len(latencies),
                          executions=_rows(server.store)[0], seconds=seconds,
                          p50_ms=percentile(latencies, 50) * 1000,
                          p99_ms=percentile(latencies, 99) * 1000)


if __name__ == "__main__":
    args = sys.argv[1:]
    for backend_name in [a for a in args if a != "keys"] or BACKENDS:
        if "keys" in args:
            print(backend_name, keyed_burst(backend_name))
        else:
            for row in measure(backend_name):
                print(row)
