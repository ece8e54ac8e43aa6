"""What the CLI acceptance tests share: the executable, the CLI run in this process (click's
``CliRunner``) or as a subprocess, and checks of what a user sees (exit codes, stdout, stderr).
The fixtures that bind them to a test's store are in ``conftest.py``."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import re
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from click.testing import CliRunner

from orchestrator.cli.main import main
from orchestrator.store.engine import dispose_all

ORCHESTRATOR = Path(sys.executable).parent / "orchestrator"
ISO_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")
EXIT_OK, EXIT_USER_ERROR, EXIT_BAD_INPUT, EXIT_FAULT = 0, 1, 2, 3

CLI = Callable[..., subprocess.CompletedProcess[str]]


def run_process(args: tuple[str, ...], env: dict[str, str], cwd: Path,
                timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """The real ``orchestrator`` executable."""
    return subprocess.run([str(ORCHESTRATOR), *args], env=env, cwd=cwd, capture_output=True,
                          text=True, timeout=timeout)


def run_in_process(args: tuple[str, ...], env: dict[str, str],
                   cwd: Path) -> subprocess.CompletedProcess[str]:
    """``main(args)`` here, with exactly ``env`` as the environment and ``cwd`` as the working
    directory; stdout, stderr and the exit code as the executable would give them."""
    overrides: dict[str, str | None] = {k: None for k in os.environ if k not in env}
    overrides.update(env)
    with contextlib.chdir(cwd), CliRunner().isolation(env=overrides) as (out, err, _):
        try:
            main(list(args))
            code = EXIT_OK
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
        finally:
            dispose_all()  # what the process's exit does to its connections
        stdout, stderr = out.getvalue().decode(), err.getvalue().decode()
    return subprocess.CompletedProcess([str(ORCHESTRATOR), *args], code, stdout, stderr)


def describe(proc: subprocess.CompletedProcess[str]) -> str:
    return (f"command: {proc.args[1:]}\nexit: {proc.returncode}\n"
            f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}")


def ok(proc: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert proc.returncode == EXIT_OK, describe(proc)
    return proc


def ok_json(proc: subprocess.CompletedProcess[str]) -> Any:
    return json.loads(ok(proc).stdout)


def bad_input(proc: subprocess.CompletedProcess[str]) -> str:
    """Exit 2 with a message on stderr and no stack trace; returns stderr."""
    assert proc.returncode == EXIT_BAD_INPUT, describe(proc)
    assert proc.stderr.strip(), describe(proc)
    assert "Traceback" not in proc.stderr, describe(proc)
    return proc.stderr


def write_doc(path: Path, doc: dict[str, Any]) -> Path:
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def digest_doc(total: int = 3) -> dict[str, Any]:
    return {
        "name": "digest",
        "blocks": [
            {"id": "fetch", "type": "transform", "with": {"total": total}},
            {"id": "summary", "type": "transform",
             "with": {"count": "{{ fetch.total }}", "who": "{{ trigger.payload.user }}"}},
        ],
    }


def apply_digest(cli: CLI, tmp_path: Path) -> None:
    ok(cli("workflows", "apply", str(write_doc(tmp_path / "digest.yaml", digest_doc()))))


def parse_iso(value: str) -> datetime:
    assert ISO_UTC.match(value), value
    return datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def assert_upcoming_every_five_minutes(data: dict[str, Any]) -> None:
    upcoming = data["upcoming"]
    assert isinstance(upcoming, list) and len(upcoming) == 5, data
    instants = [parse_iso(u) for u in upcoming]
    assert all(b - a == timedelta(minutes=5) for a, b in itertools.pairwise(instants)), upcoming
    assert all(i.minute % 5 == 0 and i.second == 0 for i in instants), upcoming
    assert instants[0] > datetime.now(UTC) - timedelta(minutes=1), upcoming
    assert data["next_run_at"] == upcoming[0], data
