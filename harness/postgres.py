"""PostgreSQL for tests and benchmarks: fresh databases on the shared server
(``ORCHESTRATOR_TEST_PG_URL``, default the local server on 5432), and private servers (same
binaries, their own data directory and loopback port) that a test can stop mid-run and start
again without disturbing anything else that uses the shared server."""

from __future__ import annotations

import glob
import os
import shutil
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import sqlalchemy as sa

from harness.processes import free_port

ADMIN_URL = os.environ.get("ORCHESTRATOR_TEST_PG_URL",
                           "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")


def unreachable() -> str | None:
    """Why the shared server cannot be used (the exception's name), or None when it can."""
    try:
        engine = sa.create_engine(ADMIN_URL)
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
        return None
    except Exception as exc:
        return type(exc).__name__


def create_database(prefix: str) -> str:
    """A fresh database ``<prefix>_<random>`` on the shared server; returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:10]}"
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    engine.dispose()
    return ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"


def drop_database(url: str) -> None:
    """Drop the database of ``url`` (closing this process's pools first, and any other
    connection to it)."""
    from orchestrator.store.engine import dispose_all

    dispose_all()
    name = url.rsplit("/", 1)[1]
    engine = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    engine.dispose()


def server_binaries() -> Path | None:
    """The directory of ``initdb`` and ``pg_ctl`` (the newest installed), or None."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


MISSING_BINARIES = "PostgreSQL server binaries (initdb, pg_ctl) are not installed"


class PrivatePostgres:
    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.url = f"postgresql+psycopg2://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str) -> None:
        command = [str(self.bindir / args[0]), *args[1:]]
        if os.geteuid() == 0:  # PostgreSQL refuses to run as root
            command = ["runuser", "-u", "postgres", "--", *command]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                       timeout=60)

    def init(self) -> None:
        self._run("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                  "-o", f"-p {self.port} -k {self.root} -c listen_addresses=127.0.0.1 "
                        "-c fsync=off", "start")

    def stop(self) -> None:
        """Stop now (fast mode: open connections are cut, as in an outage)."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "stop")


@contextmanager
def private_postgres() -> Iterator[PrivatePostgres]:
    """A private server, started; stopped and deleted afterwards. ``RuntimeError`` when the
    server binaries are not installed (tests check :func:`server_binaries` first)."""
    bindir = server_binaries()
    if bindir is None:
        raise RuntimeError(MISSING_BINARIES)
    root = Path(tempfile.mkdtemp(prefix="orch-pg-"))
    root.chmod(0o755)
    if os.geteuid() == 0:
        shutil.chown(root, "postgres", "postgres")
    server = PrivatePostgres(bindir, root)
    server.init()
    server.start()
    try:
        yield server
    finally:
        with suppress(subprocess.CalledProcessError):  # already stopped by the test
            server.stop()
        shutil.rmtree(root, ignore_errors=True)
