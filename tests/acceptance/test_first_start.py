"""First start on a fresh, empty SQLite DAGSTER_HOME (``dagster.yaml`` = examples/dagster.dev.yaml),
with real processes: Dagster's storage is created once, whatever starts first.

Processes that open a fresh home at the same moment (the daemon, the webserver, any other Dagster
client) used to race on creating Dagster's SQLite storage: both stamped alembic, and the home
failed every later load ("Version table 'alembic_version' has more than one head present").
``orchestrator db upgrade`` now creates it first, and ``LockedSqliteStorage`` (the dev yaml's
storage) serializes its creation with an flock, so the fix does not depend on timing:
``test_storage_creation_waits_for_the_lock`` checks the lock itself, deterministically; the other
two run the first-start paths end to end.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.dagster_home import environment
from harness.processes import BIN, REPO, Daemon, wait_for
from orchestrator.dagster.storage import LOCK_FILENAME, storage_lock

DATABASES = ("history/runs.db", "history/runs/index.db", "schedules/schedules.db")
SENSOR_LINE = "Checking for new runs for sensor: schedule_trigger_sensor"
BAD = ("alembic_version", "more than one head", "UNIQUE constraint failed", "already exists",
       "Error loading repository location")
# Opens the home's instance the moment another process starts creating its storage (the
# ``history`` directory appears), the tightest race a second process can run.
RACER = """
import os, sys, time
import dagster as dg
home = sys.argv[1]
deadline = time.monotonic() + 120
while not os.path.exists(os.path.join(home, "history")) and time.monotonic() < deadline:
    time.sleep(0.001)
dg.DagsterInstance.from_config(home).dispose()
"""


@pytest.fixture
def home(tmp_path: Path) -> Path:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "examples" / "dagster.dev.yaml", home / "dagster.yaml")
    return home


@pytest.fixture
def env(home: Path) -> dict[str, str]:
    return environment(home, f"sqlite:///{home / 'orchestrator.sqlite'}")


@pytest.fixture
def daemon(env: dict[str, str], home: Path) -> Iterator[Daemon]:
    daemon = Daemon(env, home / "daemon.log")
    try:
        yield daemon
    finally:
        # SIGKILL to its process group: the code server (`dagster api grpc`) is in it too, and
        # kill() checks that nothing is left behind; nothing here needs a graceful stop.
        if daemon.process is not None:
            daemon.kill()


def _stamps(home: Path) -> dict[str, list[str]]:
    """Each storage database's alembic revisions: exactly one each when created once."""
    stamps = {}
    for name in DATABASES:
        with sqlite3.connect(f"file:{home / name}?mode=ro", uri=True) as conn:
            stamps[name] = [row[0] for row in conn.execute("SELECT version_num FROM "
                                                           "alembic_version")]
    return stamps


def _assert_loaded(daemon: Daemon, home: Path) -> None:
    """The daemon loaded the code location (its sensors tick), is still running, and no log
    shows a storage-creation error."""
    wait_for(lambda: SENSOR_LINE in daemon.log.read_text(errors="replace")
             or any(b in daemon.log.read_text(errors="replace") for b in BAD)
             or daemon.process.poll() is not None, 120, "the first sensor tick", daemon.log)
    logs = {p.name: p.read_text(errors="replace") for p in home.glob("*.log")}
    for name, text in logs.items():
        found = [b for b in BAD if b in text]
        assert not found, f"{name} shows {found}:\n{text[-3000:]}"
    assert SENSOR_LINE in logs["daemon.log"]
    assert daemon.process is not None and daemon.process.poll() is None, "the daemon exited"
    heads = _stamps(home)
    assert all(len(revisions) == 1 for revisions in heads.values()), heads
    assert len({r for revisions in heads.values() for r in revisions}) == 1, heads


def test_db_upgrade_then_daemon(home: Path, env: dict[str, str], daemon: Daemon) -> None:
    """The documented order: ``orchestrator db upgrade`` creates Dagster's storage (one
    process, before anything races), then ``dagster-daemon run`` loads the code location."""
    done = subprocess.run([str(BIN / "orchestrator"), "db", "upgrade"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "orchestrator store at revision" in done.stdout
    assert "Dagster storage ready (LockedSqliteStorage: run, event log and schedule storage)" \
        in done.stdout
    assert all(len(revisions) == 1 for revisions in _stamps(home).values())

    daemon.start()
    _assert_loaded(daemon, home)


def test_daemon_on_empty_home_beside_other_dagster_processes(
        home: Path, env: dict[str, str], daemon: Daemon) -> None:
    """``dagster-daemon run`` first, straight on the empty home, with two other Dagster
    processes opening the instance the moment the daemon starts creating its storage (as
    ``dagster-webserver`` started beside it does): they wait for the lock, then find the storage
    stamped once."""
    assert not (home / "history").exists()
    racers = [subprocess.Popen([sys.executable, "-c", RACER, str(home)], env=env, cwd=REPO,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                               start_new_session=True) for _ in range(2)]
    try:
        daemon.start()
        for racer in racers:
            output, _ = racer.communicate(timeout=120)
            assert racer.returncode == 0, output.decode(errors="replace")[-3000:]
            (home / f"racer-{racer.pid}.log").write_bytes(output)
        _assert_loaded(daemon, home)
    finally:
        for racer in racers:
            if racer.poll() is None:
                os.killpg(racer.pid, 9)
                racer.wait()


def test_storage_creation_waits_for_the_lock(home: Path, env: dict[str, str]) -> None:
    """Deterministic: while the lock is held, a process opening the fresh home blocks in flock
    (the kernel lists it as a waiter in /proc/locks) and creates nothing; once released, it
    creates the storage, stamped once."""
    with storage_lock(home):
        opener = subprocess.Popen(
            [sys.executable, "-c", "import sys, dagster as dg; "
             "dg.DagsterInstance.from_config(sys.argv[1]).dispose()", str(home)],
            env=env, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        try:
            inode = os.stat(home / LOCK_FILENAME).st_ino

            def waiting() -> bool:
                assert opener.poll() is None, opener.communicate()[0].decode(errors="replace")
                return any(" -> FLOCK " in line and f" {opener.pid} " in line
                           and f":{inode} " in line for line in Path("/proc/locks").read_text()
                           .splitlines())

            deadline = time.monotonic() + 60
            while not waiting():
                assert time.monotonic() < deadline, "the opener never waited for the lock"
                time.sleep(0.05)
            assert not any((home / name).exists() for name in DATABASES)
        except BaseException:
            opener.kill()
            opener.wait()
            raise
    output, _ = opener.communicate(timeout=60)
    assert opener.returncode == 0, output.decode(errors="replace")
    assert all(len(revisions) == 1 for revisions in _stamps(home).values())


def test_db_upgrade_reports_a_dagster_storage_fault_without_secrets(tmp_path: Path) -> None:
    """Dagster's storage cannot be opened (its dagster.yaml, which holds a password, is
    refused): exit 3, after the store was upgraded, and neither the password nor a traceback is
    printed."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "storage:\n  postgres:\n    postgres_url: postgresql://user:s3cret@127.0.0.1:1/x\n"
        "    no_such_option: 1\n")
    env = environment(home, f"sqlite:///{tmp_path / 'store.sqlite'}")
    done = subprocess.run([str(BIN / "orchestrator"), "db", "upgrade"], env=env, cwd=REPO,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done
    assert "orchestrator store at revision" in done.stdout
    assert "Dagster's storage in DAGSTER_HOME could not be created" in done.stderr
    for text in (done.stdout, done.stderr):
        assert "s3cret" not in text and "Traceback" not in text, done
