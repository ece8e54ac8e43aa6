"""Schedule precision: lag from ``scheduled_for`` to run created and to ``RUN_START`` (p50, p99)
for 1,000 enabled schedules in our store (``BENCH_DUE_PER_MINUTE`` of them every minute, the rest
daily at other times) dispatched by ``schedule_trigger_sensor``, beside a native Dagster
``ScheduleDefinition`` per schedule of ours due each minute (as many), on the same cron, launching
the same job, in the same daemon (queued run
coordinator). Also the lag to the workflow's start (the execution's ``started_at``, written by
the op of both). Target: our p50 and p99 start lag at or below native's.

Usage: .venv/bin/python -m bench.schedule_precision [sqlite|postgres]
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import dagster as dg

from bench.report import BACKENDS, QUICK, REPO, Row, percentile
from bench.tick_cost import _insert
from harness.dagster_home import backend, environment
from harness.processes import Daemon, wait_for
from orchestrator.domain.correlation import (
    TAG_BATCH_ID,
    TAG_EXECUTION_ID,
    TAG_SCHEDULED_FOR,
    TAG_SOURCE,
    Source,
    parse_iso,
)
from orchestrator.domain.workflow import parse_workflow
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store

TOTAL = 1_000
DUE_PER_MINUTE = int(os.environ.get("BENCH_DUE_PER_MINUTE", "3"))
MINUTES = int(os.environ.get("BENCH_MINUTES", "2" if QUICK else "3"))
WORKFLOW = {"name": "digest", "blocks": [
    {"id": "items", "type": "transform", "with": {"total": 3}},
    {"id": "summary", "type": "transform",
     "with": {"count": "{{ items.total }}", "who": "{{ trigger.payload.user }}"}}]}
NATIVE_TIME_TAG = ".dagster/scheduled_execution_time"  # hidden tag on a schedule's runs


def _schedules(now: datetime) -> list[dict[str, Any]]:
    rows = []
    first_minute = (now + timedelta(minutes=1)).replace(second=0, microsecond=0)
    for i in range(TOTAL):
        every_minute = i < DUE_PER_MINUTE
        hour, minute = 1 + i % 20, (i * 7) % 60  # daily, never inside the measured minutes
        daily_next = (now + timedelta(days=1)).replace(hour=hour, minute=minute, second=0,
                                                       microsecond=0)
        rows.append(dict(
            id=f"sch_prec{i:012d}", environment="default", workflow="digest",
            cron="* * * * *" if every_minute else f"{minute} {hour} * * *", timezone="UTC",
            run_at=None, payload={"user": f"u{i}"}, key=None, enabled=True,
            next_run_at=first_minute if every_minute else daily_next, last_scheduled_for=None,
            skipped_superseded=0, skipped_outside_window=0, created_at=now, updated_at=now))
    return rows


def _lags(instance: dg.DagsterInstance, store: Store, start: datetime,
          end: datetime) -> dict[str, dict[str, list[float]]]:
    out: dict[str, dict[str, list[float]]] = {
        kind: {"created": [], "started": [], "workflow": []} for kind in ("ours", "native")}
    def add(kind: str, due: datetime, record: Any, execution_started: datetime | None) -> None:
        if not start <= due <= end:
            return
        lags = out[kind]
        lags["created"].append((record.create_timestamp - due).total_seconds())
        if record.start_time:
            lags["started"].append(record.start_time - due.timestamp())
        if execution_started:
            lags["workflow"].append((execution_started - due).total_seconds())

    for record in instance.get_run_records():
        tags = record.dagster_run.tags
        if tags.get(TAG_BATCH_ID):
            # Occurrences due together share a batch run: each member counts, with the run's
            # times and its own due instant.
            for member in store.batches.members(tags[TAG_BATCH_ID]):
                if member.source is Source.SCHEDULE and member.scheduled_for:
                    add("ours", member.scheduled_for, record, member.started_at)
        elif tags.get(TAG_SOURCE) == "schedule":
            add("ours", parse_iso(tags[TAG_SCHEDULED_FOR]), record, _started(store, tags))
        elif NATIVE_TIME_TAG in tags:
            add("native", datetime.fromisoformat(tags[NATIVE_TIME_TAG]), record,
                _started(store, tags))
    return out


def _started(store: Store, tags: dict[str, str]) -> datetime | None:
    """When the execution a run carries started (the run's execution id tag), if known."""
    execution_id = tags.get(TAG_EXECUTION_ID)
    try:
        return store.get_execution(execution_id).started_at if execution_id else None
    except Exception:
        return None


def run(name: str, *, label: str = "", **yaml_options: Any) -> dict[str, Any]:
    options = {"max_concurrent_runs": 25, "threads": True, **yaml_options}
    with backend(name, **options) as b:
        now = datetime.now(UTC)
        store = Store(b.store_url)
        store.apply_workflow(parse_workflow(WORKFLOW, block_types()), now)
        # the first measured minute: far enough ahead for the daemon to be up and warm
        # As many native schedules as ours due each minute: both sides launch the same number
        # of runs at each minute, competing for the same two cores.
        daemon = Daemon(environment(b.home, b.store_url, BENCH_MODE="precision",
                                    BENCH_NATIVE_COUNT=str(DUE_PER_MINUTE)),
                        b.home / "daemon.log", REPO / "bench" / "workspace.yaml")
        daemon.start()
        try:
            with dg.DagsterInstance.from_config(str(b.home)) as instance:
                wait_for(lambda: instance.get_run_records(limit=1) or
                         b"sensor" in (b.home / "daemon.log").read_bytes(), 180,
                         "the daemon to start")
                now = datetime.now(UTC)
                first = (now + timedelta(seconds=50)).replace(second=0, microsecond=0) + \
                    timedelta(minutes=1)
                _insert(store, _schedules(first - timedelta(minutes=1)))
                last = first + timedelta(minutes=MINUTES - 1)
                print(f"[precision/{name}{label}] measuring occurrences {first:%H:%M}.."
                      f"{last:%H:%M} UTC", flush=True)
                time.sleep(max(0.0, (last - datetime.now(UTC)).total_seconds()))
                expected = (DUE_PER_MINUTE + 1) * MINUTES

                def done() -> bool:
                    lags = _lags(instance, store, first, last)
                    return sum(len(v["started"]) for v in lags.values()) >= expected

                try:
                    wait_for(done, 180, "every measured run to start", poll=2)
                except TimeoutError as exc:
                    print(f"[precision/{name}{label}] {exc}", flush=True)
                lags = _lags(instance, store, first, last)
        finally:
            daemon.stop()
    summary = {kind: {metric: (percentile(v, 50), percentile(v, 99), len(v))
                      for metric, v in metrics.items()} for kind, metrics in lags.items()}
    for kind, metrics in summary.items():
        print(f"[precision/{name}{label}] {kind}: " + ", ".join(
            f"{m} p50 {p50:.2f}s p99 {p99:.2f}s (n={n})" for m, (p50, p99, n) in metrics.items()),
            flush=True)
    return summary


def rows(name: str, summary: dict[str, Any], label: str = "") -> list[Row]:
    out = []
    for metric, title in (("created", "created"), ("started", "RUN_START"),
                          ("workflow", "workflow start")):
        o50, o99, on = summary["ours"][metric]
        n50, n99, nn = summary["native"][metric]
        met = None
        if metric == "started":
            met = o50 <= n50 and o99 <= n99
        out.append(Row(
            benchmark=f"schedule lag → {title}{label} (p50 / p99)", backend=name,
            ours=f"{o50:.2f} / {o99:.2f} s (n={on})", baseline=f"{n50:.2f} / {n99:.2f} s (n={nn})",
            ratio=(o99 / n99) if n99 and n99 > 0 else None,
            target="≤ native" if metric == "started" else "", met=met,
            notes=f"{TOTAL} schedules, {DUE_PER_MINUTE} every minute, {MINUTES} minutes; "
                  "ratio is of p99"))
    return out


def measure(name: str) -> list[Row]:
    return rows(name, run(name))


def main() -> None:
    from bench.report import table

    names = sys.argv[1:] or BACKENDS
    print(table([row for n in names for row in measure(n)]))


if __name__ == "__main__":
    main()
