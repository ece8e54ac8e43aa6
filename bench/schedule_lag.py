"""Lag of scheduled runs in a DAGSTER_HOME: ``scheduled_for`` -> run created -> RUN_START.

Usage: DAGSTER_HOME=.dagster_home .venv/bin/python bench/schedule_lag.py
Reads the runs our schedule sensor launched (tag ``orchestrator/source=schedule``) and prints each
lag and the p50/max, in seconds.
"""

from __future__ import annotations

import statistics

import dagster as dg

from orchestrator.domain.correlation import TAG_SCHEDULED_FOR, TAG_SOURCE, parse_iso


def main() -> None:
    with dg.DagsterInstance.get() as instance:
        records = instance.get_run_records(dg.RunsFilter(tags={TAG_SOURCE: "schedule"}))
        created, started = [], []
        for record in sorted(records, key=lambda r: r.create_timestamp):
            due = parse_iso(record.dagster_run.tags[TAG_SCHEDULED_FOR])
            created.append((record.create_timestamp - due).total_seconds())
            if record.start_time:
                started.append(record.start_time - due.timestamp())
            print(f"{due.isoformat()}  created +{created[-1]:.2f}s  "
                  f"started +{started[-1] if record.start_time else float('nan'):.2f}s")
    for label, values in (("created", created), ("started", started)):
        if values:
            print(f"{label}: n={len(values)} p50={statistics.median(values):.2f}s "
                  f"max={max(values):.2f}s")


if __name__ == "__main__":
    main()
