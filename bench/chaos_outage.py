"""Database outage: a private PostgreSQL (``harness/postgres.py``: its own data directory and
port, never the shared server) holds both Dagster's storage and the store. Under a steady
trigger load, with runs executing (so some are finalizing), the server is stopped for
``outage`` seconds and started again. The daemon is restarted if it exits (as a supervisor
would). After recovery and a settle period we count:

- accepted-but-lost triggers: the enqueue returned (accepted), yet no run carried the execution
  (a run of its own, or its batch's run);
- executions left non-terminal (``queued``/``running``) after recovery;
- double faults: executions finalized more than once (``finalized_by`` overwritten: impossible
  with the conditional terminal write, checked anyway via attempts vs runs);
- duplicate alerts: more than one alert row per execution and kind.

Usage: .venv/bin/python -m bench.chaos_outage [outage_seconds]
"""

from __future__ import annotations

import collections
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import dagster as dg
import sqlalchemy as sa

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import REPO, Daemon, wait_for
from orchestrator.domain.correlation import (
    TAG_BATCH_ID,
    TAG_EXECUTION_ID,
    Correlation,
    Source,
    new_id,
)
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store import tables as t
from orchestrator.store.migrate import upgrade

WORKFLOW = {"name": "digest", "blocks": [
    {"id": "items", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform", "with": {"count": "{{ items.total }}"}}]}
TERMINAL = {"success", "error", "cancelled"}


@dataclass(kw_only=True)
class OutageResult:
    outage_seconds: float
    accepted: int
    rejected: int
    lost: int
    non_terminal: int
    non_terminal_ids: list[str]
    non_terminal_detail: list[str]
    double_faults: int
    duplicate_alerts: int
    alerts: int
    outcomes: dict[str, int]
    running_at_stop: int
    daemon_restarts: int
    seconds: float

    def ok(self) -> bool:
        return not (self.lost or self.non_terminal or self.double_faults or
                    self.duplicate_alerts)


def run_outage(*, outage: float = 30.0, before: float = 25.0, after: float = 20.0,
               trigger_every: float = 1.0, settle: float = 150.0,
               log_dir: Path | None = None) -> OutageResult:
    from harness.postgres import private_postgres

    started = time.time()
    with private_postgres() as pg:
        home = Path(pg.root) / "dagster_home"
        home.mkdir()
        # Run monitoring as in production: a run whose worker died in STARTING (it could not
        # reach the database) is failed after the start timeout instead of holding its slot.
        write_dagster_yaml(home, postgres_url=pg.url, max_concurrent_runs=4, threads=True,
                           start_timeout=30)
        upgrade(pg.url)
        store = Store(pg.url)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), datetime.now(UTC))
        daemon = Daemon(environment(home, pg.url), home / "daemon.log", REPO / "workspace.yaml")
        accepted: list[str] = []
        rejected = 0
        stop_load = threading.Event()
        restarts = 0

        def load() -> None:
            nonlocal rejected
            while not stop_load.wait(trigger_every):
                execution_id = new_id()
                try:
                    store.create_execution(Correlation(
                        execution_id=execution_id, request_id=new_id(), source=Source.MANUAL,
                        workflow="digest", environment="default"), datetime.now(UTC),
                        enqueue=True)
                except Exception:
                    rejected += 1  # the caller saw the failure (CLI exit 3): not accepted
                    continue
                accepted.append(execution_id)

        def supervise(until: float) -> None:
            nonlocal restarts
            while time.time() < until:
                if daemon.process is not None and daemon.process.poll() is not None:
                    daemon.start()
                    restarts += 1
                time.sleep(1)

        daemon.start()
        loader = threading.Thread(target=load, daemon=True)
        running_at_stop = 0
        try:
            wait_for(lambda: b"Checking for new runs for sensor" in
                     (home / "daemon.log").read_bytes(), 180, "the sensor daemon")
            loader.start()
            supervise(time.time() + before)
            running_at_stop = sum(e.status.value == "running"
                                  for e in store.list_executions(limit=10_000))
            print(f"[chaos_outage] stopping PostgreSQL for {outage:.0f}s "
                  f"({len(accepted)} accepted, {running_at_stop} executions running)", flush=True)
            pg.stop()
            supervise(time.time() + outage)
            pg.start()
            print("[chaos_outage] PostgreSQL is back", flush=True)
            supervise(time.time() + after)
            stop_load.set()
            loader.join()

            def settled() -> bool:
                rows = store.executions_by_id(accepted)
                return all(r.status.value in TERMINAL for r in rows.values())

            deadline = time.time() + settle
            while time.time() < deadline and not settled():
                supervise(time.time() + 3)
            executions = store.executions_by_id(accepted)
            open_ids = [e for e, r in executions.items() if r.status.value not in TERMINAL]
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = instance.get_runs()
                # The runs that carried each execution: its own (tagged with its id) and the
                # batch runs of its batch (tagged with the batch id; members share one).
                per_batch = collections.Counter(r.tags.get(TAG_BATCH_ID) for r in runs)
                per_execution = collections.Counter(r.tags.get(TAG_EXECUTION_ID) for r in runs)
                runs_per_execution = collections.Counter({
                    e: per_execution[e] + (per_batch[r.run_batch_id] if r.run_batch_id else 0)
                    for e, r in executions.items()})
                detail = []
                with store.engine.connect() as conn:
                    for execution_id in open_ids[:10]:
                        queue = conn.execute(sa.select(t.queued_triggers.c.status).where(
                            t.queued_triggers.c.execution_id == execution_id)).scalar()
                        batch = executions[execution_id].run_batch_id
                        statuses = [r.status.value for r in runs
                                    if r.tags.get(TAG_EXECUTION_ID) == execution_id
                                    or (batch and r.tags.get(TAG_BATCH_ID) == batch)]
                        detail.append(f"{execution_id}: execution "
                                      f"{executions[execution_id].status.value}, queue row "
                                      f"{queue}, Dagster runs {statuses or 'none'}")
            with store.engine.connect() as conn:
                alert_rows = conn.execute(sa.select(t.alerts.c.execution_id, t.alerts.c.kind)
                                          ).all()
        finally:
            stop_load.set()
            daemon.stop()
            if log_dir:
                log_dir.mkdir(parents=True, exist_ok=True)
                (log_dir / "outage-daemon.log").write_bytes((home / "daemon.log").read_bytes())
    lost = sum(1 for e in accepted if e not in executions or runs_per_execution[e] == 0)
    non_terminal = [e for e, r in executions.items() if r.status.value not in TERMINAL]
    double = sum(1 for e, r in executions.items() if r.attempts > max(runs_per_execution[e], 1))
    alerts = collections.Counter(alert_rows)
    outcomes: dict[str, Any] = collections.Counter(
        f"{r.status.value}/{r.outcome.value if r.outcome else '-'}" for r in executions.values())
    result = OutageResult(
        outage_seconds=outage, accepted=len(accepted), rejected=rejected, lost=lost,
        non_terminal=len(non_terminal), non_terminal_ids=non_terminal[:10],
        non_terminal_detail=detail,
        double_faults=double, duplicate_alerts=sum(n - 1 for n in alerts.values() if n > 1),
        alerts=len(alert_rows), outcomes=dict(outcomes), running_at_stop=running_at_stop,
        daemon_restarts=restarts, seconds=time.time() - started)
    print(f"[chaos_outage] {result}", flush=True)
    return result


def main() -> None:
    outage = float(sys.argv[1]) if len(sys.argv) > 1 else 30.0
    sys.exit(0 if run_outage(outage=outage, log_dir=REPO / ".chaos_logs").ok() else 1)


if __name__ == "__main__":
    main()
