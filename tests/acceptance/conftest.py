"""Fixtures of the CLI acceptance tests: a DAGSTER_HOME of the test's own, and the CLI bound to
the test's store (``store_url``), in this process (``cli``) or as the real executable
(``process``). Helpers and checks: ``commands.py``."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.acceptance.commands import CLI, run_in_process, run_process


@pytest.fixture
def base_env(tmp_path: Path) -> dict[str, str]:
    """A DAGSTER_HOME of the test's own and no ORCHESTRATOR_* setting."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("ORCHESTRATOR_")}
    env["DAGSTER_HOME"] = str(home)
    return env


@pytest.fixture
def cli_env(base_env: dict[str, str], store_url: str) -> dict[str, str]:
    return base_env | {"ORCHESTRATOR_DATABASE_URL": store_url}


@pytest.fixture
def cli(cli_env: dict[str, str], tmp_path: Path) -> CLI:
    """The CLI in this process."""
    def run(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
        return run_in_process(args, cli_env if env is None else env, tmp_path)

    return run


@pytest.fixture
def process(cli_env: dict[str, str], tmp_path: Path) -> CLI:
    """The CLI as the real executable, in a subprocess."""
    def run(*args: str, env: dict[str, str] | None = None,
            timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return run_process(args, cli_env if env is None else env, tmp_path, timeout)

    return run
