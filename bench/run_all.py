"""``make bench``: every benchmark on every backend, a table on stdout and ``docs/PERFORMANCE.md``.

Knobs (environment): ``BENCH_QUICK=1`` (smaller sizes, ~5 min), ``BENCH_BACKENDS=sqlite`` (or
``postgres``), ``BENCH_ONLY=tick_cost,exec_overhead`` (a subset), ``BENCH_MINUTES``,
``BENCH_DUE_PER_MINUTE``, ``BENCH_DRAIN_BURST``, ``BENCH_DRAIN_BARE_BURST``,
``BENCH_DRAIN_CONCURRENCY``, ``BENCH_LONE_TRIGGERS``, ``BENCH_TOH_SCHEDULES``,
``BENCH_TOH_ENVIRONMENTS``, ``BENCH_SCALE_ONLY``, ``BENCH_SCHEDULE_SAMPLES``, ``BENCH_SCALE_BURST``,
``BENCH_PROFILE=1`` (always write profiles).
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

from bench import (
    batch_cost,
    burst_gate,
    drain,
    exec_overhead,
    ingestion,
    retention,
    scale_out,
    schedule_precision,
    tick_cost,
    top_of_hour,
)
from bench.report import BACKENDS, QUICK, REPO, Row, machine, table

BENCHMARKS: dict[str, Callable[[str], list[Row]]] = {
    "tick_cost": tick_cost.measure,
    "exec_overhead": exec_overhead.measure,
    "schedule_precision": schedule_precision.measure,
    "drain": drain.measure,
    "batch_cost": batch_cost.measure,
    # PostgreSQL only: the target is PostgreSQL's (and 10,000 schedules on SQLite take long).
    # ... on the default launcher and on the production (Celery) profile.
    "top_of_hour": lambda name: [*top_of_hour.measure(name), *top_of_hour.measure(
        "postgres+celery")] if name == "postgres" else [],
    "ingestion": ingestion.measure,
    # The gate's window across `serve --workers 4` (trip count vs 1 process; p99 burst/steady).
    "burst_gate": burst_gate.measure,
    # PostgreSQL + Celery (RabbitMQ) beside the embedded default (BENCH_SCALE_ONLY=latency,...).
    "scale_out": scale_out.measure,
    # PostgreSQL only: 5 million executions beside a fresh store, and pruning under load.
    "retention": retention.measure,
}


def command() -> str:
    knobs = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                     if k.startswith("BENCH_"))
    return (knobs + " " if knobs else "") + "make bench"


RESULTS = REPO / "docs" / "performance.json"


def merge_results(fresh: dict[tuple[str, str], list[Row]], info: dict[str, str]
                  ) -> list[dict[str, Any]]:
    """Every benchmark's latest rows: those just measured replace the stored rows of the same
    benchmark and backend, the others are kept (a ``BENCH_ONLY`` run erases nothing)."""
    stored: list[dict[str, Any]] = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    kept = [r for r in stored if (r["bench"], r["backend_run"]) not in fresh]
    for (bench, backend), rows in fresh.items():
        for row in rows:
            data = asdict(row)
            data.pop("extra")
            kept.append({**data, "bench": bench, "backend_run": backend,
                         "measured": info["date"], "load": info["load"], "quick": QUICK,
                         "command": command()})
    order = {name: i for i, name in enumerate(BENCHMARKS)}
    kept.sort(key=lambda r: (order.get(r["bench"], len(order)), r["backend_run"]))
    RESULTS.write_text(json.dumps(kept, indent=1, ensure_ascii=False) + "\n")
    return kept


def write_report(results: list[dict[str, Any]], info: dict[str, str], seconds: float,
                 errors: list[str]) -> None:
    rows = [Row(**{k: r[k] for k in ("benchmark", "backend", "ours", "baseline", "ratio",
                                      "target", "met", "notes")}) for r in results]
    labels = [f"{r['measured']}, load {r['load']}{', quick sizes' if r['quick'] else ''}: "
              f"`{r['command']}`" for r in results]
    runs = list(dict.fromkeys(labels))
    when = [runs.index(label) + 1 for label in labels]
    notes = "\n".join(f"- **{r.benchmark} / {r.backend}**: {r.notes}" for r in rows if r.notes)
    measured = "\n".join(f"{i + 1}. {run}" for i, run in enumerate(runs))
    text = f"""# Performance

Latest figures of `make bench` (`bench/`). Every figure is measured in one run beside a
baseline in the same process tree on the same machine (these machines are shared and noisy:
compare the ratio, not the absolute values, between runs). A run of some benchmarks only
(`BENCH_ONLY=…`) replaces their rows and keeps the others (`docs/performance.json`); the
"when" column numbers the list of runs below the table.

- Latest run: `{command()}` ({seconds / 60:.1f} min{", quick sizes" if QUICK else ""}),
  {info['date']}
- Machine: {info['cores']} cores ({info['cpu']}), {info['ram']} RAM, load average at the end
  {info['load']}; {info['os']}
- Python {info['python']}, Dagster {info['dagster']}, SQLite {info['sqlite']},
  PostgreSQL {info['postgresql']} (127.0.0.1:5432, a fresh database per measurement, dropped
  afterwards)

{table(rows, when=when)}

When each row was measured:

{measured}

Notes per figure:

{notes or "(none)"}
""" + ("\nErrors (a benchmark that failed to complete):\n\n" +
       "\n".join(f"- {e}" for e in errors) + "\n" if errors else "") + """
See the "Findings" section below for what bounds each figure.
"""
    path = REPO / "docs" / "PERFORMANCE.md"
    path.parent.mkdir(exist_ok=True)
    old = path.read_text() if path.exists() else ""
    findings = old[old.index("\n## Findings"):] if "\n## Findings" in old else \
        "\n## Findings\n\n(none yet)\n"
    path.write_text(text + findings)


def main() -> None:
    logging.getLogger("dagster").setLevel(logging.WARNING)
    only = [b for b in os.environ.get("BENCH_ONLY", "").split(",") if b] or list(BENCHMARKS)
    unknown = sorted(set(only) - set(BENCHMARKS))
    if unknown:
        sys.exit(f"BENCH_ONLY: unknown {', '.join(unknown)}; use {', '.join(BENCHMARKS)}")
    started = time.time()
    fresh: dict[tuple[str, str], list[Row]] = {}
    errors: list[str] = []
    for bench in only:
        for name in BACKENDS:
            print(f"== {bench} on {name}", flush=True)
            try:
                fresh[(bench, name)] = BENCHMARKS[bench](name)
            except Exception as exc:
                traceback.print_exc()
                errors.append(f"{bench} on {name}: {type(exc).__name__}: {exc}")
    print()
    print(table([row for rows in fresh.values() for row in rows]))
    info = machine()
    write_report(merge_results(fresh, info), info, time.time() - started, errors)
    print(f"\nwrote docs/PERFORMANCE.md ({(time.time() - started) / 60:.1f} min)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
