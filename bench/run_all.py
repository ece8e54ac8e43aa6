"""``make bench``: every benchmark on every backend, a table on stdout and ``docs/PERFORMANCE.md``.

Knobs (environment): ``BENCH_QUICK=1`` (smaller sizes, ~5 min), ``BENCH_BACKENDS=sqlite`` (or
``postgres``), ``BENCH_ONLY=tick_cost,exec_overhead`` (a subset), ``BENCH_MINUTES``,
``BENCH_DUE_PER_MINUTE``, ``BENCH_DRAIN_BURST``, ``BENCH_DRAIN_CONCURRENCY``,
``BENCH_PROFILE=1`` (always write profiles).
"""

from __future__ import annotations

import logging
import os
import sys
import time
import traceback
from collections.abc import Callable

from bench import drain, exec_overhead, schedule_precision, tick_cost
from bench.harness import BACKENDS, QUICK, REPO, Row, machine, table

BENCHMARKS: dict[str, Callable[[str], list[Row]]] = {
    "tick_cost": tick_cost.measure,
    "exec_overhead": exec_overhead.measure,
    "schedule_precision": schedule_precision.measure,
    "drain": drain.measure,
}
PENDING = [Row(benchmark="ingestion: accepted/s and p50/p99 of POST …/trigger, steady and 10x "
                         "burst", backend="—", ours="pending HTTP API", baseline="—", ratio=None,
               target="≥ 2,000/s; burst p99 ≤ 2x steady", met=None,
               notes="issue 5 item 3: measured once the HTTP API (another branch) lands")]


def command() -> str:
    knobs = " ".join(f"{k}={v}" for k, v in sorted(os.environ.items())
                     if k.startswith("BENCH_"))
    return (knobs + " " if knobs else "") + "make bench"


def write_report(rows: list[Row], info: dict[str, str], seconds: float,
                 errors: list[str]) -> None:
    notes = "\n".join(f"- **{r.benchmark} / {r.backend}**: {r.notes}" for r in rows if r.notes)
    text = f"""# Performance

Latest figures of `make bench` (`bench/`). Every figure is measured in one run beside a
baseline in the same process tree on the same machine (these machines are shared and noisy:
compare the ratio, not the absolute values, between runs).

- Command: `{command()}` ({seconds / 60:.1f} min{", quick sizes" if QUICK else ""})
- Date: {info['date']}
- Machine: {info['cores']} cores ({info['cpu']}), {info['ram']} RAM, load average at the end
  {info['load']}; {info['os']}
- Python {info['python']}, Dagster {info['dagster']}, SQLite {info['sqlite']},
  PostgreSQL {info['postgresql']} (127.0.0.1:5432, a fresh database per measurement, dropped
  afterwards)

{table(rows + PENDING)}

Notes per figure:

{notes}
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
    started = time.time()
    rows: list[Row] = []
    errors: list[str] = []
    for bench in only:
        for name in BACKENDS:
            print(f"== {bench} on {name}", flush=True)
            try:
                rows += BENCHMARKS[bench](name)
            except Exception as exc:
                traceback.print_exc()
                errors.append(f"{bench} on {name}: {type(exc).__name__}: {exc}")
    print()
    print(table(rows + PENDING))
    write_report(rows, machine(), time.time() - started, errors)
    print(f"\nwrote docs/PERFORMANCE.md ({(time.time() - started) / 60:.1f} min)")
    sys.exit(1 if errors else 0)


if __name__ == "__main__":
    main()
