"""The burst gate across server processes: the window is counted in the store, so
``orchestrator serve --workers 4`` must trip an environment at the count one process does, and
a gated burst must stay fast.

- **trip count**: the gate on (threshold ``THRESHOLD`` per ``WINDOW`` s, held long), ``SENT``
  triggers one after another, each on a new connection (so any of the server's processes takes
  it), with 1 and with 4 worker processes: how many were queued before the environment tripped
  (the rest went to the buffer). Target: the same count (``THRESHOLD``) for both; were each
  process counting its own window, 4 processes would let up to 4x through.
- **p99 with 4 processes**: paced ``wrk`` load (:func:`bench.ingestion.load`), steady at
  ``STEADY_RATE``/s below the gate's ``GATE_THRESHOLD``/s, then a 10x burst that trips it.
  Target: burst p99 ≤ 2x steady p99, none lost.
- **window cost**: in-process, one trigger per admission transaction of a gated environment
  (threshold never reached, one-hour window), the median wall time with ``LOADED`` triggers
  already in the window against one with the window empty. Target: ≤ 1.25x (the window is a
  sum of per-process counters; counting the triggers' own rows, before, made it 5.1x on
  PostgreSQL and 3.9x on SQLite).

Usage: .venv/bin/python -m bench.burst_gate [sqlite|postgres]
"""

from __future__ import annotations

import sys
import time
from datetime import UTC, datetime, timedelta

import requests

from bench.ingestion import GATE_THRESHOLD, STEADY_RATE, WORKFLOW, api_server, gated_burst
from bench.report import BACKENDS, QUICK, Row, median
from harness.dagster_home import backend
from orchestrator.domain.burst import BurstPolicy
from orchestrator.domain.correlation import Source
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.services.triggers import IngestService, TriggerInput
from orchestrator.store import Store

THRESHOLD = 50
SENT = 80 if QUICK else 150
WINDOW = 300  # seconds: the whole sequence falls in one window
LOADED = 20_000  # triggers in the window of the window-cost case
ADMISSIONS = 300 if QUICK else 1000


def trip_count(name: str, workers: int) -> int:
    """Triggers queued (not buffered) of ``SENT`` sent one by one to ``workers`` processes."""
    gate = {"ORCHESTRATOR_BURST_GATE": "1", "ORCHESTRATOR_BURST_THRESHOLD": str(THRESHOLD),
            "ORCHESTRATOR_BURST_WINDOW_SECONDS": str(WINDOW),
            "ORCHESTRATOR_BURST_HOLD_SECONDS": str(WINDOW)}
    with backend(name) as b, api_server(b, workers=workers, **gate) as server:
        ids = []
        for n in range(SENT):
            answer = requests.post(f"{server.url}/v1/workflows/digest/trigger",
                                   json={"payload": {"n": n}}, timeout=30,
                                   headers={"Authorization": f"Bearer {server.key}",
                                            "Connection": "close"})
            answer.raise_for_status()
            ids.append(answer.json()["execution_id"])
        return len(server.store.executions_by_id(ids))


def window_cost(name: str) -> tuple[float, float]:
    """Median wall ms of one gated admission transaction: (window empty, ``LOADED`` in it)."""
    with backend(name) as b:
        store = Store(b.store_url)
        now = datetime.now(UTC)
        for environment in ("empty", "loaded"):
            store.apply_workflow(parse_workflow({**WORKFLOW, "environment": environment},
                                                block_types()), now)
        service = IngestService(store.admission, BurstPolicy(
            enabled=True, environments=frozenset({"*"}), threshold=10 * LOADED,
            window=timedelta(hours=1)))
        store.admission.warm_up(now)

        def admit(environment: str, triggers: int = 1) -> float:
            job = service.prepare(environment=environment, workflow=WORKFLOW["name"],
                                  items=tuple(TriggerInput(payload={}) for _ in range(triggers)),
                                  request_id=None, source=Source.API, now=now)
            started = time.perf_counter()
            [result] = service.admit([job])
            assert isinstance(result, list), result
            return (time.perf_counter() - started) * 1000

        for _ in range(LOADED // 16):
            admit("loaded", 16)
        times = {environment: [admit(environment) for _ in range(ADMISSIONS)]
                 for environment in ("empty", "loaded")}
        return median(times["empty"]), median(times["loaded"])


def measure(name: str) -> list[Row]:
    one, four = trip_count(name, 1), trip_count(name, 4)
    print(f"  trip count: 1 process {one}, 4 processes {four} (threshold {THRESHOLD})",
          flush=True)
    rows = [Row(
        benchmark=f"burst gate across processes: triggers queued before the trip, {SENT} sent "
                  f"one by one, threshold {THRESHOLD} (serve --workers 4 vs 1)",
        backend=name, ours=f"4 processes: {four} queued, {SENT - four} buffered",
        baseline=f"1 process: {one} queued, {SENT - one} buffered",
        ratio=four / one if one else None, target=f"the same count ({THRESHOLD})",
        met=one == four == THRESHOLD)]
    rows.append(gated_burst(name, workers=4, benchmark=(
        f"burst gate, serve --workers 4: p99 of a 10x burst ({10 * STEADY_RATE:,}/s) "
        f"vs steady ({STEADY_RATE}/s), threshold {GATE_THRESHOLD}/s, paced wrk")))
    empty, loaded = window_cost(name)
    print(f"  window cost: {empty:.2f} ms empty, {loaded:.2f} ms with {LOADED:,} in the window",
          flush=True)
    rows.append(Row(
        benchmark=f"burst gate window cost: median wall of a gated admission transaction with "
                  f"{LOADED:,} triggers in the window vs none (in-process)",
        backend=name, ours=f"{LOADED:,} in the window: {loaded:.2f} ms",
        baseline=f"empty window: {empty:.2f} ms", ratio=loaded / empty,
        target="≤ 1.25x", met=loaded / empty <= 1.25))
    return rows


if __name__ == "__main__":
    for backend_name in sys.argv[1:] or BACKENDS:
        for row in measure(backend_name):
            print(row)
