"""What the benchmark and fault-injection scripts share: a backend (SQLite files, or a fresh
PostgreSQL database that is dropped afterwards), ``dagster.yaml`` writing, a daemon in its own
process group, percentiles, the machine description and the result rows.

Every figure is a ratio against a baseline measured in the same run, in the same process tree:
the machines these run on are shared and noisy.
"""

from __future__ import annotations

import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
PG_ADMIN_URL = os.environ.get("ORCHESTRATOR_TEST_PG_URL",
                              "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
QUICK = os.environ.get("BENCH_QUICK", "") not in ("", "0")
BACKENDS = [b for b in os.environ.get("BENCH_BACKENDS", "sqlite,postgres").split(",") if b]


@dataclass(frozen=True, kw_only=True)
class Backend:
    """Where one measurement keeps its state: a DAGSTER_HOME and the store URL. On PostgreSQL
    Dagster's storage and the store share one fresh database (``orch_*`` beside Dagster's)."""

    name: str
    home: Path
    store_url: str
    dagster_pg_url: str | None = None


@contextmanager
def backend(name: str, **dagster_config: Any) -> Iterator[Backend]:
    root = Path(tempfile.mkdtemp(prefix=f"orch-bench-{name}-"))
    home = root / "dagster_home"
    home.mkdir()
    pg_url = None
    try:
        if name == "sqlite":
            url = f"sqlite:///{home / 'orchestrator.sqlite'}"
        elif name == "postgres":
            url = pg_url = create_pg_database("orch_bench")
        else:
            raise ValueError(f"unknown backend {name!r}; use sqlite or postgres")
        write_dagster_yaml(home, postgres_url=pg_url, **dagster_config)
        # What `orchestrator db upgrade` does: the store, then Dagster's storage, in this one
        # process, before the daemon and this process open the home together (Dagster's own
        # SQLite storage, kept here for the baselines, would race on its creation).
        from orchestrator.dagster.storage import create_dagster_storage
        from orchestrator.store.migrate import upgrade

        upgrade(url)
        create_dagster_storage(home)
        yield Backend(name=name, home=home, store_url=url, dagster_pg_url=pg_url)
    finally:
        from orchestrator.store.engine import dispose_all

        dispose_all()
        if pg_url:
            drop_pg_database(pg_url)
        shutil.rmtree(root, ignore_errors=True)


def create_pg_database(prefix: str) -> str:
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_pg_database(url: str) -> None:
    name = url.rsplit("/", 1)[1]
    engine = sa.create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def write_dagster_yaml(home: Path, *, postgres_url: str | None = None,
                       max_concurrent_runs: int | None = None, dequeue_interval: int = 1,
                       threads: bool = True, workers: int = 4,
                       start_timeout: int | None = None) -> dict[str, Any]:
    """The instance both the product and its baseline run on. ``max_concurrent_runs=None`` keeps
    the default (synchronous) run coordinator; otherwise the queued coordinator, with threaded
    dequeue when ``threads``. Returns the config written (it goes into the report)."""
    config: dict[str, Any] = {"telemetry": {"enabled": False}}
    if postgres_url:
        config["storage"] = {"postgres": {"postgres_url": postgres_url.replace(
            "postgresql+psycopg2://", "postgresql://")}}
    if max_concurrent_runs is not None:
        coordinator: dict[str, Any] = {"max_concurrent_runs": max_concurrent_runs,
                                       "dequeue_interval_seconds": dequeue_interval}
        if threads:
            coordinator.update(dequeue_use_threads=True, dequeue_num_workers=workers)
        config["run_coordinator"] = {"module": "dagster._core.run_coordinator",
                                     "class": "QueuedRunCoordinator", "config": coordinator}
    if threads:
        for daemon in ("sensors", "schedules"):
            config[daemon] = {"use_threads": True, "num_workers": workers,
                              "num_submit_workers": workers}
    if start_timeout is not None:  # run monitoring, as examples/dagster.yaml enables it
        config["run_monitoring"] = {"enabled": True, "start_timeout_seconds": start_timeout,
                                    "poll_interval_seconds": 5}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return config


def environment(home: Path, store_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(DAGSTER_HOME=str(home), ORCHESTRATOR_DATABASE_URL=store_url,
               ORCHESTRATOR_SENSOR_INTERVAL_SECONDS="1", PYTHONUNBUFFERED="1", **settings)
    return env


class Daemon:
    """``dagster-daemon run`` (with its code server) in its own process group."""

    def __init__(self, env: dict[str, str], log: Path, workspace: Path) -> None:
        self.env = env
        self.log = log
        self.workspace = workspace
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(
                [str(BIN / "dagster-daemon"), "run", "-w", str(self.workspace)],
                cwd=REPO, env=self.env, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def kill(self) -> None:
        assert self.process is not None
        os.killpg(self.process.pid, signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)


def wait_for(condition: Callable[[], Any], timeout: float, what: str, poll: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what}")


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


@contextmanager
def api_server(store_url: str, home: Path, log: Path | None = None,
               **settings: str) -> Iterator[str]:
    """``orchestrator serve`` (real uvicorn) on a free loopback port over ``store_url``, with
    ``settings`` (``ORCHESTRATOR_*``) in its environment; yields its base URL once ``/healthz``
    answers, and stops it (its own PID) afterwards."""
    import requests

    from tests.http_server import free_port

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = log.open("ab") if log else subprocess.DEVNULL
    server = subprocess.Popen([str(BIN / "orchestrator"), "serve", "--port", str(port)],
                              cwd=REPO, env=environment(home, store_url, **settings),
                              stdout=out,
                              stderr=subprocess.STDOUT)
    try:
        def up() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"orchestrator serve exited ({server.returncode})")
            try:
                return requests.get(url + "/healthz", timeout=2).ok
            except requests.ConnectionError:
                return False

        wait_for(up, 60, "orchestrator serve to answer /healthz", poll=0.1)
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=30)
        if log:
            out.close()  # type: ignore[union-attr]
