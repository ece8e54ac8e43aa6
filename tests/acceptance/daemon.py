"""Running the real ``dagster-daemon`` against a temporary ``DAGSTER_HOME``."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent
DEV_YAML = REPO / "examples" / "dagster.dev.yaml"


def write_dagster_yaml(home: Path, *, postgres_url: str | None = None,
                       queued_max_concurrent: int | None = None,
                       run_retries: int | None = None) -> None:
    config: dict[str, Any] = {"telemetry": {"enabled": False}}
    if run_retries is not None:
        config["run_retries"] = {"enabled": True, "max_retries": run_retries}
    if postgres_url:
        # postgresql+psycopg2://user@host:port/db -> dagster-postgres's own url form
        config["storage"] = {"postgres": {"postgres_url": postgres_url.replace(
            "postgresql+psycopg2://", "postgresql://")}}
    else:
        # The product's SQLite storage (examples/dagster.dev.yaml): created under a lock, so the
        # daemon and this test process (it opens the instance while the daemon starts) may
        # create the fresh home's storage together.
        storage = yaml.safe_load(DEV_YAML.read_text())["storage"]
        storage["custom"]["config"]["base_dir"] = str(home)  # not this process's DAGSTER_HOME
        config["storage"] = storage
    # Dagster's default coordinator, dequeuing every second instead of every 5 (as the sensors
    # tick every second): a queued run launches without waiting up to 5 s.
    coordinator: dict[str, Any] = {"dequeue_interval_seconds": 1}
    if queued_max_concurrent is not None:
        coordinator["max_concurrent_runs"] = queued_max_concurrent
    config["run_coordinator"] = {
        "module": "dagster._core.run_coordinator", "class": "QueuedRunCoordinator",
        "config": coordinator}
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))


def environment(home: Path, store_url: str, **settings: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env.update(DAGSTER_HOME=str(home), ORCHESTRATOR_DATABASE_URL=store_url,
               ORCHESTRATOR_SENSOR_INTERVAL_SECONDS="1", PYTHONUNBUFFERED="1", **settings)
    return env


class Daemon:
    """``dagster-daemon run`` in its own process group, so SIGKILL takes its code server too."""

    def __init__(self, env: dict[str, str], log: Path,
                 workspace: Path = REPO / "workspace.yaml") -> None:
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


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; daemon log tail:\n{tail}")
