"""A ``DAGSTER_HOME`` to run the product in: its ``dagster.yaml``, the environment of the
processes that use it, and :func:`backend` (a home and a store, on SQLite files or on a fresh
PostgreSQL database dropped afterwards)."""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from harness.postgres import create_database, drop_database
from harness.processes import REPO

DEV_YAML = REPO / "examples" / "dagster.dev.yaml"


def write_dagster_yaml(home: Path, *, postgres_url: str | None = None,
                       product_storage: bool = True, queued: bool = True,
                       max_concurrent_runs: int | None = None, dequeue_interval: int = 1,
                       threads: bool = False, workers: int = 4, run_retries: int | None = None,
                       start_timeout: int | None = None) -> dict[str, Any]:
    """Write ``home/dagster.yaml``; returns the config written (the benchmarks report it).

    Storage: PostgreSQL at ``postgres_url``, else SQLite under ``home``: the product's
    (``examples/dagster.dev.yaml``: created under a lock, so processes opening a fresh home
    together may create its storage together) when ``product_storage``, else Dagster's own (the
    benchmarks' baselines). The queued run coordinator (``queued``, or any
    ``max_concurrent_runs``) dequeues every ``dequeue_interval`` seconds, not Dagster's 5 (as
    the sensors tick every second); ``threads`` runs the dequeue and the schedule daemon on
    ``workers`` threads (sensors are always evaluated on threads). ``run_retries`` enables
    Dagster's run retries;
    ``start_timeout`` enables run monitoring (as ``examples/dagster.yaml`` does)."""
    config: dict[str, Any] = {"telemetry": {"enabled": False}}
    if run_retries is not None:
        config["run_retries"] = {"enabled": True, "max_retries": run_retries}
    if postgres_url:
        # postgresql+psycopg2://user@host:port/db -> dagster-postgres's own url form
        config["storage"] = {"postgres": {"postgres_url": postgres_url.replace(
            "postgresql+psycopg2://", "postgresql://")}}
    elif product_storage:
        storage = yaml.safe_load(DEV_YAML.read_text())["storage"]
        storage["custom"]["config"]["base_dir"] = str(home)  # not this process's DAGSTER_HOME
        config["storage"] = storage
    if queued or max_concurrent_runs is not None:
        coordinator: dict[str, Any] = {"dequeue_interval_seconds": dequeue_interval}
        if max_concurrent_runs is not None:
            coordinator["max_concurrent_runs"] = max_concurrent_runs
        if threads:
            coordinator.update(dequeue_use_threads=True, dequeue_num_workers=workers)
        config["run_coordinator"] = {"module": "dagster._core.run_coordinator",
                                     "class": "QueuedRunCoordinator", "config": coordinator}
    # Sensors on threads, as the product's dagster.yaml files have them: the dispatch sensors
    # wait for work inside their evaluation, so each needs a thread of its own.
    config["sensors"] = {"use_threads": True, "num_workers": workers}
    if threads:
        config["sensors"]["num_submit_workers"] = workers
        config["schedules"] = {"use_threads": True, "num_workers": workers,
                               "num_submit_workers": workers}
    if start_timeout is not None:
        config["run_monitoring"] = {"enabled": True, "start_timeout_seconds": start_timeout,
                                    "poll_interval_seconds": 5}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    return config


def environment(home: Path, store_url: str, **settings: str) -> dict[str, str]:
    """This process's environment without its ``ORCHESTRATOR_*`` variables, plus the home, the
    store, the reconciler and schedule sensors every 3 seconds (not 5: a killed run is settled
    sooner; not 1: each evaluation costs the daemon and its code server ~0.1 s of CPU, which a
    suite running several daemons at once on two cores pays dearly), and ``settings``."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(DAGSTER_HOME=str(home), ORCHESTRATOR_DATABASE_URL=store_url,
               ORCHESTRATOR_SENSOR_INTERVAL_SECONDS="3", PYTHONUNBUFFERED="1", **settings)
    return env


@dataclass(frozen=True, kw_only=True)
class Backend:
    """Where one run keeps its state: a DAGSTER_HOME and the store URL. On PostgreSQL Dagster's
    storage and the store share one fresh database (``orch_*`` beside Dagster's)."""

    name: str
    home: Path
    store_url: str
    dagster_pg_url: str | None = None


@contextmanager
def backend(name: str, **dagster_config: Any) -> Iterator[Backend]:
    """A fresh home and store on ``name`` (``sqlite`` or ``postgres``), migrated, with Dagster's
    storage created; ``dagster_config`` goes to :func:`write_dagster_yaml` (by default Dagster's
    own SQLite storage, the default coordinator and threaded daemons: the benchmarks'
    instance)."""
    root = Path(tempfile.mkdtemp(prefix=f"orch-bench-{name}-"))
    home = root / "dagster_home"
    home.mkdir()
    pg_url = None
    try:
        if name == "sqlite":
            url = f"sqlite:///{home / 'orchestrator.sqlite'}"
        elif name == "postgres":
            url = pg_url = create_database("orch_bench")
        else:
            raise ValueError(f"unknown backend {name!r}; use sqlite or postgres")
        config: dict[str, Any] = {"product_storage": False, "queued": False, "threads": True}
        write_dagster_yaml(home, postgres_url=pg_url, **{**config, **dagster_config})
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
            drop_database(pg_url)
        shutil.rmtree(root, ignore_errors=True)
