"""What the benchmark scripts report: percentiles, the machine description and the result rows.
(Backends, daemons, code servers and PostgreSQL are :mod:`harness`'s, shared with ``tests/``.)

Every figure is a ratio against a baseline measured in the same run, in the same process tree:
the machines these run on are shared and noisy.
"""

from __future__ import annotations

import os
import platform
import statistics
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa

from harness.postgres import ADMIN_URL as PG_ADMIN_URL
from harness.processes import REPO

__all__ = ["BACKENDS", "QUICK", "REPO", "Row", "machine", "median", "percentile", "table"]
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
BACKENDS = [b for b in os.environ.get("BENCH_BACKENDS", "sqlite,postgres").split(",") if b]


def percentile(values: list[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100); NaN for no values."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(p / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


@dataclass(kw_only=True)
class Row:
    """One line of the report: a figure of ours beside its baseline."""

    benchmark: str
    backend: str
    ours: str
    baseline: str
    ratio: float | None
    target: str
    met: bool | None
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)


def machine() -> dict[str, str]:
    import dagster

    mem = "?"
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(line for line in f if line.startswith("MemTotal")).split()[1])
        mem = f"{kb / 1024 / 1024:.1f} GiB"
    except (OSError, StopIteration, ValueError):
        pass
    pg = "?"
    try:
        engine = sa.create_engine(PG_ADMIN_URL)
        with engine.connect() as conn:
            pg = str(conn.execute(sa.text("SHOW server_version")).scalar())
        engine.dispose()
    except Exception as exc:
        pg = f"unreachable ({type(exc).__name__})"
    return {"date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
            "cores": str(os.cpu_count()), "ram": mem, "cpu": _cpu_model(),
            "os": platform.platform(), "python": platform.python_version(),
            "dagster": dagster.__version__, "sqlite": __import__("sqlite3").sqlite_version,
            "postgresql": pg, "load": " ".join(f"{x:.2f}" for x in os.getloadavg())}


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "?"


def table(rows: list[Row], when: list[Any] | None = None) -> str:
    """A Markdown table (also what is printed); ``when``: a last column per row."""
    extra = " when |" if when else ""
    out = ["| benchmark | backend | ours | baseline | ratio | target | met |" + extra,
           "|---|---|---|---|---|---|---|" + ("---|" if when else "")]
    for i, r in enumerate(rows):
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}"
        met = "" if r.met is None else ("yes" if r.met else "**no**")
        out.append(f"| {r.benchmark} | {r.backend} | {r.ours} | {r.baseline} | {ratio} | "
                   f"{r.target} | {met} |" + (f" {when[i]} |" if when else ""))
    return "\n".join(out)
