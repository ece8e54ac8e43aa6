"""Daemon crash: SIGKILL the ``dagster-daemon`` (with its code server), or separately only the
code server, or each in turn (``both``: the daemon of a separate code server, then that code
server), at random moments while schedules fall due and queued triggers arrive; restart it;
let it recover; count lost occurrences and duplicate runs per occurrence (an occurrence is
carried by its own run or by its batch's run: batch runs are on, at the default size, so due
occurrences and triggers that pile up are claimed and dispatched in batches). Target: 0 and 0.

Workload, for ``cycles`` dispatch cycles (one every ``spacing`` seconds):
- 2 one-time schedules due per cycle (each must get exactly one run: never skipped);
- 3 cron schedules every minute (each minute boundary in the window gets exactly one run, or
  is counted as skipped by the catch-up policy: a skip is not a loss);
- a queued trigger every ``trigger_every`` seconds, written as ``orchestrator trigger`` does
  (each accepted trigger gets exactly one run).
Runs are created and queued, not executed (``max_concurrent_runs: 0``): the dispatch guarantee
is what a crash can break. ``max_runs_per_tick=5`` spreads each cycle over several ticks; the
queue sensor hands triggers to Dagster's queue whatever its free slots (none, here).

Usage: .venv/bin/python -m bench.chaos_crash [daemon|code_server|both] [cycles]
"""

from __future__ import annotations

import collections
import random
import sys
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import dagster as dg

from harness.dagster_home import backend, environment
from harness.processes import REPO, CodeServer, Daemon, OrchestratorDaemon, wait_for
from orchestrator.domain.correlation import (
    DAGSTER_RUN_KEY_TAG,
    Correlation,
    Source,
    derived_id,
    iso_utc,
    new_id,
    schedule_run_key,
    trigger_run_key,
)
from orchestrator.domain.schedules import validate_schedule
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store

WORKFLOW = {"name": "digest", "blocks": [{"id": "a", "type": "transform", "with": {"x": 1}}]}


@dataclass(kw_only=True)
class CrashResult:
    target: str
    cycles: int
    kills: int
    expected: int
    runs: int
    lost: int
    duplicates: int
    skipped: int
    triggers: int
    seconds: float
    details: dict[str, Any]

    def ok(self) -> bool:
        return self.lost == 0 and self.duplicates == 0


def run_crash(*, target: str = "daemon", cycles: int = 50, spacing: float = 2.0,
              trigger_every: float = 1.0, kill_every: tuple[float, float] = (3.0, 12.0),
              down_for: tuple[float, float] = (0.5, 3.0), warmup: float = 25.0,
              seed: int | None = None, backend_name: str = "sqlite", crons: int = 3,
              log_dir: Path | None = None, orchestrator_daemon: bool = False) -> CrashResult:
    """``orchestrator_daemon``: ``orchestrator daemon`` (the half-second sensor loop, as
    production runs it) instead of ``dagster-daemon run`` (Dagster's 5 s loop)."""
    rng = random.Random(seed)
    started = time.time()
    with backend(backend_name, max_concurrent_runs=0, threads=True) as b:
        store = Store(b.store_url)
        now = datetime.now(UTC)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), now)
        env = environment(b.home, b.store_url, ORCHESTRATOR_MAX_RUNS_PER_TICK="5",
                          ORCHESTRATOR_DISPATCH_TO_FREE_SLOTS="false")
        code_server = None
        workspace = REPO / "workspace.yaml"
        if target in ("code_server", "both"):
            code_server = CodeServer(env, b.home / "code_server.log")
            workspace = code_server.workspace(b.home / "workspace.yaml")
            code_server.start()
        elif target != "daemon":
            raise ValueError("target is daemon, code_server or both")
        daemon = (OrchestratorDaemon if orchestrator_daemon else Daemon)(
            env, b.home / "daemon.log", workspace)
        # Each kill's victim, in turn.
        victims: list[Any] = ([daemon, code_server] if target == "both"
                              else [code_server or daemon])
        kills_of: collections.Counter[str] = collections.Counter()
        first = (now + timedelta(seconds=warmup)).replace(microsecond=0)
        one_time: list[str] = []
        for i in range(cycles):
            due = first + timedelta(seconds=round(i * spacing))
            for n in range(2):
                spec = validate_schedule(workflow="digest", run_at=iso_utc(due),
                                         payload={"cycle": i, "n": n}, now=now)
                schedule = store.create_schedule(spec, now)[0]
                one_time.append(schedule_run_key(schedule.id, due))
        cron_schedules = [store.create_schedule(validate_schedule(
            workflow="digest", cron="* * * * *", payload={"cron": n}, now=now), now)[0]
            for n in range(crons)]
        chaos_end = first + timedelta(seconds=cycles * spacing + 2)
        accepted: list[str] = []
        stop_load = threading.Event()

        def load() -> None:
            while not stop_load.wait(trigger_every):
                execution_id = new_id()
                try:
                    store.create_execution(Correlation(
                        execution_id=execution_id, request_id=new_id(), source=Source.MANUAL,
                        workflow="digest", environment="default"), datetime.now(UTC),
                        enqueue=True)
                except Exception:
                    continue  # not accepted (the CLI would exit 3); not counted
                accepted.append(trigger_run_key(execution_id))

        daemon.start()
        kills = 0
        loader = threading.Thread(target=load, daemon=True)
        try:
            time.sleep(max(0.0, (first - datetime.now(UTC)).total_seconds() - 5))
            loader.start()
            while datetime.now(UTC) < chaos_end:
                time.sleep(rng.uniform(*kill_every))
                if datetime.now(UTC) >= chaos_end:
                    break
                victim = victims[kills % len(victims)]
                victim.kill()
                kills += 1
                kills_of["code_server" if victim is code_server else "daemon"] += 1
                time.sleep(rng.uniform(*down_for))
                victim.start()
            stop_load.set()
            loader.join()
            last_minute = datetime.now(UTC).replace(second=0, microsecond=0)
            with dg.DagsterInstance.from_config(str(b.home)) as instance:
                def settled() -> bool:
                    carried = _carried(store, accepted, _runs_by_key(instance))
                    schedules = {s.id: s for s in store.list_schedules()}
                    return (all(carried[k] for k in accepted) and
                            not any(s.enabled for s in schedules.values() if s.run_at) and
                            all((schedules[c.id].next_run_at or last_minute) > last_minute
                                for c in cron_schedules))

                try:
                    wait_for(settled, 240, "every occurrence and trigger to be dispatched",
                             poll=2)
                except TimeoutError as exc:
                    print(f"[chaos_crash/{target}] {exc}", flush=True)
                runs = _runs_by_key(instance)
        finally:
            stop_load.set()
            daemon.stop()
            if code_server:
                code_server.stop()
            if log_dir:
                log_dir.mkdir(parents=True, exist_ok=True)
                for log in b.home.glob("*.log"):
                    (log_dir / f"{target}-{log.name}").write_bytes(log.read_bytes())
        skipped = 0
        expected_keys = set(one_time) | set(accepted)
        for cron in cron_schedules:
            stored = store.get_schedule(cron.id)
            skipped += stored.skipped_superseded + stored.skipped_outside_window
            minute = cron.next_run_at
            assert minute is not None
            while minute <= last_minute:
                expected_keys.add(schedule_run_key(cron.id, minute))
                minute += timedelta(minutes=1)
        carried = _carried(store, sorted(expected_keys), runs)
    ours = {k: v for k, v in runs.items() if k.startswith(("schedule:", "trigger:", "batch:"))}
    lost = sum(1 for n in carried.values() if n == 0) - skipped
    # A run key twice, or an occurrence carried by two runs (its own and a batch's).
    duplicates = sum(n - 1 for n in ours.values() if n > 1) + sum(
        n - 1 for n in carried.values() if n > 1)
    unexpected = sorted(k for k in ours if not k.startswith("batch:") and k not in expected_keys)
    result = CrashResult(target=target, cycles=cycles, kills=kills, expected=len(expected_keys),
                         runs=sum(carried.values()), lost=max(lost, 0),
                         duplicates=duplicates,
                         skipped=skipped, triggers=len(accepted),
                         seconds=time.time() - started,
                         details={"kills": dict(kills_of), "unexpected": unexpected[:5],
                                  "missing": sorted(k for k, n in carried.items() if not n)[:5],
                                  "batch_runs": sum(k.startswith("batch:") for k in ours)})
    print(f"[chaos_crash/{target}] {kills} kills over {cycles} cycles: {result.expected} "
          f"expected occurrences/triggers, {result.runs} runs, lost {result.lost}, duplicates "
          f"{result.duplicates}, skipped by catch-up {skipped} ({result.seconds:.0f}s)",
          flush=True)
    return result


def _carried(store: Store, keys: list[str], runs: dict[str, int]) -> dict[str, int]:
    """For each occurrence or trigger (its own run key), how many runs carry its execution: its
    own run, or its batch's run (an execution belongs to at most one batch)."""
    ids = {k: (k.removeprefix("trigger:") if k.startswith("trigger:")
               else derived_id("execution", k)) for k in keys}
    records = store.executions_by_id(list(ids.values()))
    counts: dict[str, int] = {}
    for key, execution_id in ids.items():
        record = records.get(execution_id)
        batch = f"batch:{record.run_batch_id}" if record and record.run_batch_id else None
        counts[key] = runs.get(key, 0) + (runs.get(batch, 0) if batch else 0)
    return counts


def _runs_by_key(instance: dg.DagsterInstance) -> dict[str, int]:
    counts: dict[str, int] = collections.Counter()
    for run in instance.get_runs():
        key = run.tags.get(DAGSTER_RUN_KEY_TAG)
        if key:
            counts[key] += 1
    return dict(counts)


def main() -> None:
    target = sys.argv[1] if len(sys.argv) > 1 else "daemon"
    cycles = int(sys.argv[2]) if len(sys.argv) > 2 else 50
    result = run_crash(target=target, cycles=cycles)
    sys.exit(0 if result.ok() else 1)


if __name__ == "__main__":
    main()
