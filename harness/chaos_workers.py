"""Faults of the Celery profile (``examples/dagster.yaml``), counted:

- **worker kills**: two ``orchestrator worker`` processes drain a steady stream of executions
  (a 2 s nap and a quick one per cycle); each cycle SIGKILLs the worker holding a running nap
  (its whole process tree, as a machine lost) and starts it again, while the other keeps
  draining. Every execution must end terminal and every run ended; none is lost, none
  finalized twice (an execution alerted more than once), each killed one alerted once.
- **broker outage**: RabbitMQ stopped (``rabbitmqctl stop_app``) for ``outage`` seconds under a
  trigger a second, then started. Triggers accepted meanwhile must not be lost, no run may stay
  ``STARTING`` or ``STARTED``, nothing may run twice; a run whose launch fails on the outage is
  a pipeline fault with one alert, and the counts say how many.

Usage: .venv/bin/python -m harness.chaos_workers [kills|outage] [cycles|seconds]
"""

from __future__ import annotations

import collections
import contextlib
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from harness.celery_profile import FAULTS_WORKSPACE, celery_profile
from harness.processes import wait_for
from orchestrator.domain.correlation import TAG_EXECUTION_ID, Correlation, Source, new_id
from orchestrator.execution.blocks import register_block_type

# Registered here only so that `apply` accepts the nap workflow; the workers run the real block
# (tests/acceptance/faults/definitions.py, the code location of FAULTS_WORKSPACE).
register_block_type("test_nap")(lambda inputs, context: None)

QUICK = {"name": "quick", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}
NAP = {"name": "nap", "blocks": [{"id": "nap", "type": "test_nap", "with": {"seconds": 2}}]}
LEASE = {"ORCHESTRATOR_HEARTBEAT_INTERVAL_SECONDS": "1", "ORCHESTRATOR_LEASE_TIMEOUT_SECONDS": "4",
         "ORCHESTRATOR_MAX_BATCH_SIZE": "1"}  # a run per execution: a kill hits one each


def _enqueue(store: Any, workflow: str) -> str:
    correlation = Correlation(execution_id=new_id(), request_id=new_id(), source=Source.API,
                              workflow=workflow, environment="default", payload={"user": "c"})
    store.create_execution(correlation, datetime.now(UTC), enqueue=True)
    return correlation.execution_id


def _pid(state: Any, execution_id: str) -> int | None:
    path = state / f"pid-{execution_id}"
    text = path.read_text() if path.exists() else ""
    return int(text) if text else None


@dataclass(kw_only=True)
class Counts:
    executions: int
    lost: int  # not terminal at the end
    twice: int  # alerted more than once, or carried by more than one run
    outcomes: dict[str, int]
    alerts: int
    unalerted_faults: int  # pipeline faults without their alert
    unfinished: int  # runs left STARTING or STARTED

    def ok(self) -> bool:
        return self.lost == 0 and self.twice == 0 and self.unalerted_faults == 0 \
            and self.unfinished == 0


def _unfinished(instance: dg.DagsterInstance) -> int:
    return len(instance.get_run_records(dg.RunsFilter(
        statuses=[dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED])))


def _settled(store: Any, home: Any, ids: list[str]) -> None:
    """Every execution terminal, then every run ended (a run whose worker died after its
    execution ended is failed by the reconciler once silent for a lease)."""
    wait_for(lambda: all(store.get_execution(e).status.terminal for e in ids), 300,
             "every execution to end", home / "daemon.log")
    with dg.DagsterInstance.from_config(str(home)) as instance, \
            contextlib.suppress(TimeoutError):  # what is left is counted as unfinished
        wait_for(lambda: _unfinished(instance) == 0, 120, "every run to end",
                 home / "daemon.log")
    time.sleep(3)  # alert delivery and outcome tags settle


def _count(store: Any, home: Any, ids: list[str]) -> Counts:
    records = [store.get_execution(e) for e in ids]
    alerts = collections.Counter(a.execution_id for a in store.list_alerts(limit=100_000))
    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = collections.Counter(r.dagster_run.tags.get(TAG_EXECUTION_ID)
                                   for r in instance.get_run_records())
        unfinished = _unfinished(instance)
    outcomes = collections.Counter(r.outcome.value if r.outcome else "open" for r in records)
    faults = [r for r in records if r.outcome and r.outcome.value == "pipeline_fault"]
    return Counts(executions=len(records),
                  lost=sum(not r.status.terminal for r in records),
                  twice=sum(alerts[e] > 1 or runs[e] > 1 for e in ids),
                  outcomes=dict(outcomes), alerts=sum(alerts[e] for e in ids),
                  unalerted_faults=sum(alerts[r.execution_id] != 1 for r in faults),
                  unfinished=unfinished)


@dataclass(kw_only=True)
class KillResult:
    cycles: int
    kills: int
    counts: Counts
    seconds: float


def run_worker_kills(cycles: int = 50, *, state_dir: Any = None) -> KillResult:
    import tempfile
    from pathlib import Path

    state = Path(state_dir or tempfile.mkdtemp(prefix="orch-chaos-state-"))
    started = time.time()
    with celery_profile([QUICK, NAP], workers=2, concurrency=2, api=False,
                        workspace=FAULTS_WORKSPACE, ORCHESTRATOR_TEST_STATE_DIR=str(state),
                        **LEASE) as p:
        ids: list[str] = []
        kills = 0
        for cycle in range(cycles):
            naps = [_enqueue(p.store, "nap") for _ in range(2)]
            ids += [*naps, _enqueue(p.store, "quick")]

            def napping(n: list[str] = naps) -> bool:
                return any(_pid(state, e) for e in n)

            try:
                wait_for(napping, 60, "a nap to run")
            except TimeoutError:
                continue
            pid = next(_pid(state, e) for e in naps if _pid(state, e))
            victim = next((w for w in p.workers if pid in w.pool()), None)
            if victim is None:
                continue  # it finished already
            victim.kill()
            kills += 1
            victim.start()
            print(f"[chaos/kills] cycle {cycle + 1}/{cycles}: killed {victim.name}",
                  flush=True)
        _settled(p.store, p.b.home, ids)
        counts = _count(p.store, p.b.home, ids)
    result = KillResult(cycles=cycles, kills=kills, counts=counts,
                        seconds=time.time() - started)
    print(f"[chaos/kills] {result}", flush=True)
    return result


@dataclass(kw_only=True)
class OutageResult:
    outage_seconds: float
    accepted: int
    accepted_while_down: int
    counts: Counts
    seconds: float


def _rabbit(action: str) -> None:
    subprocess.run(["rabbitmqctl", action], check=True, capture_output=True, timeout=120)


def run_broker_outage(outage: float = 30.0) -> OutageResult:
    started = time.time()
    with celery_profile([QUICK], workers=2, concurrency=2, api=False) as p:
        ids: list[str] = []

        def load(seconds: float) -> None:
            end = time.time() + seconds
            while time.time() < end:
                ids.append(_enqueue(p.store, "quick"))
                time.sleep(1)

        load(10)
        _rabbit("stop_app")
        try:
            before = len(ids)
            load(outage)
            while_down = len(ids) - before
        finally:
            _rabbit("start_app")
        load(20)
        _settled(p.store, p.b.home, ids)
        counts = _count(p.store, p.b.home, ids)
    result = OutageResult(outage_seconds=outage, accepted=len(ids),
                          accepted_while_down=while_down, counts=counts,
                          seconds=time.time() - started)
    print(f"[chaos/outage] {result}", flush=True)
    return result


def main() -> None:
    what = sys.argv[1] if len(sys.argv) > 1 else "kills"
    amount = float(sys.argv[2]) if len(sys.argv) > 2 else None
    if what == "kills":
        run_worker_kills(int(amount or 50))
    else:
        run_broker_outage(amount or 30.0)


if __name__ == "__main__":
    main()
