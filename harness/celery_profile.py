"""The production profile for tests, benchmarks and fault injection: ``examples/dagster.yaml``
as shipped (its Celery queue made unique: the broker is shared), a fresh PostgreSQL database,
``orchestrator daemon``, ``orchestrator worker`` processes and the HTTP API."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import uuid
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import sqlalchemy as sa
import yaml

from harness.dagster_home import Backend, backend, environment
from harness.processes import BIN, REPO, OrchestratorDaemon, Worker, api_server, wait_for

BROKER = os.environ.get("ORCHESTRATOR_TEST_BROKER_URL", "pyamqp://guest:guest@127.0.0.1:5672//")
FAULTS_WORKSPACE = REPO / "tests" / "acceptance" / "faults" / "workspace.yaml"


def broker_unreachable(url: str = BROKER) -> str | None:
    """None when the broker accepts a TCP connection, else what to tell the user."""
    broker = sa.make_url(url.replace("pyamqp://", "amqp://"))
    host, port = broker.host or "127.0.0.1", broker.port or 5672
    try:
        socket.create_connection((host, port), timeout=2).close()
    except OSError:
        return f"RabbitMQ is not reachable at {host}:{port} (start: rabbitmq-server -detached)"
    return None


def delete_queue(home: Path, broker: str = BROKER) -> None:
    """Remove the broker queue of ``home``'s dagster.yaml (each test or benchmark has one of its
    own; left behind they pile up on the shared broker)."""
    from kombu import Connection

    config = yaml.safe_load((home / "dagster.yaml").read_text())
    queue = config["run_launcher"]["config"]["default_queue"]
    with contextlib.suppress(Exception), Connection(broker, connect_timeout=5) as connection:
        connection.default_channel.queue_delete(queue)


def write_celery_home(home: Path, store_url: str, broker: str = BROKER,
                      monitoring_poll: int = 5, run_slots: int | None = None) -> dict[str, str]:
    """``home/dagster.yaml`` from ``examples/dagster.yaml`` (``max_concurrent_runs`` set to
    ``run_slots``, the workers' total concurrency, when given); returns the variables it reads
    (Dagster's PostgreSQL, the broker), which every process opening the home needs."""
    config = yaml.safe_load((REPO / "examples" / "dagster.yaml").read_text())
    if run_slots is not None:
        config["run_coordinator"]["config"]["max_concurrent_runs"] = run_slots
    config["run_launcher"]["config"]["default_queue"] = f"orch-test-{uuid.uuid4().hex[:12]}"
    config["run_monitoring"]["poll_interval_seconds"] = monitoring_poll
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    parts = sa.make_url(store_url)
    return {"DAGSTER_PG_USERNAME": parts.username or "postgres",
            "DAGSTER_PG_PASSWORD": parts.password or "", "DAGSTER_PG_HOST": parts.host or "",
            "DAGSTER_PG_DB": parts.database or "", "ORCHESTRATOR_CELERY_BROKER_URL": broker}


@dataclass
class Profile:
    b: Backend
    store: Any  # orchestrator.store.Store
    env: dict[str, str]
    key: str
    url: str = ""
    daemon: OrchestratorDaemon | None = None
    workers: list[Worker] = field(default_factory=list)


@contextmanager
def celery_profile(workflows: list[dict[str, Any]], *, workers: int = 1, concurrency: int = 2,
                   api: bool = True, workspace: Path = REPO / "bench" / "workspace.yaml",
                   **settings: str) -> Iterator[Profile]:
    """Everything up and the ``workflows`` applied; stopped (no survivor) afterwards."""
    from orchestrator.domain.workflow import parse_workflow
    from orchestrator.execution.blocks import block_types
    from orchestrator.store import Store

    with backend("postgres") as b, ExitStack() as stack:
        extra = write_celery_home(b.home, b.store_url, run_slots=workers * concurrency)
        stack.callback(delete_queue, b.home)  # the stack unwinds backwards: after the workers
        os.environ.update(extra)  # this process opens the instance too
        env = environment(b.home, b.store_url, BENCH_MODE="ours", **extra, **settings)
        subprocess.run([str(BIN / "orchestrator"), "db", "upgrade"], env=env, check=True,
                       capture_output=True)
        store = Store(b.store_url)
        now = datetime.now(UTC)
        for workflow in workflows:
            store.apply_workflow(parse_workflow(workflow, block_types()), now)
        profile = Profile(b=b, store=store, env=env,
                          key=store.access.create_api_key("default", now)[1])
        for i in range(workers):  # started together, as on machines of their own
            worker = Worker(env, b.home / f"worker{i}.log", f"w{i}", concurrency)
            stack.callback(worker.stop)
            worker.start(timeout=None)
            profile.workers.append(worker)
        for worker in profile.workers:
            worker.ready()
        profile.daemon = OrchestratorDaemon(env, b.home / "daemon.log", workspace)
        stack.callback(profile.daemon.stop)
        profile.daemon.start()
        wait_for(lambda: b"Checking for new runs for sensor" in (b.home / "daemon.log")
                 .read_bytes(), 180, "the sensor daemon")
        if api:
            profile.url = stack.enter_context(api_server(
                b.store_url, b.home, b.home / "api.log", **{**extra, **settings}))
        yield profile
