"""Processes of the real product in process groups of their own: ``dagster-daemon run`` (which
starts its code server, ``dagster api grpc``, and the run workers as its children), ``dagster
code-server start`` and ``orchestrator serve``.

Stopping or killing a :class:`ProcessGroup` signals the whole group, then checks that nothing it
started survives (a member of the group, or a descendant that left it): a ``dagster api grpc``
left behind by a SIGKILL test keeps its port and its files open for the rest of the suite.

Stopping a daemon or a webserver kills its code server (``dagster api grpc``) first: a sensor
evaluation in flight there (the dispatch sensors wait inside theirs, up to the look-ahead) would
hold the daemon's exit for seconds, while the daemon itself still stops on SIGTERM.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def free_port() -> int:
    """A TCP port free on the loopback interface right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(condition: Callable[[], Any], timeout: float, what: str, log: Path | None = None,
             *, poll: float = 0.2) -> Any:
    """Poll ``condition`` until it returns something truthy (returned); ``TimeoutError`` after
    ``timeout`` seconds, with the tail of ``log`` when given."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(poll)
    message = f"timed out after {timeout:.0f}s waiting for {what}"
    if log is not None:
        tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
        message += f"; log tail ({log.name}):\n{tail}"
    raise TimeoutError(message)


@dataclass(frozen=True)
class ProcessInfo:
    pid: int
    ppid: int
    pgid: int
    state: str
    command: str


def processes() -> dict[int, ProcessInfo]:
    """Every process of this machine (Linux ``/proc``), by pid."""
    found: dict[int, ProcessInfo] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                command = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
        except OSError:  # ended while we looked
            continue
        # "pid (comm) state ppid pgrp ...": comm may hold spaces and parentheses
        fields = stat[stat.rindex(")") + 2:].split()
        found[int(entry)] = ProcessInfo(pid=int(entry), ppid=int(fields[1]),
                                        pgid=int(fields[2]), state=fields[0], command=command)
    return found


def descendants(pid: int) -> list[ProcessInfo]:
    """The living children of ``pid``, their children, and so on."""
    table = processes()
    children: dict[int, list[int]] = {}
    for info in table.values():
        children.setdefault(info.ppid, []).append(info.pid)
    out: list[ProcessInfo] = []
    todo = list(children.get(pid, []))
    while todo:
        child = todo.pop()
        out.append(table[child])
        todo.extend(children.get(child, []))
    return out


class OrphanedProcesses(RuntimeError):
    """Processes started by a harness process survived its stop."""


# How a code server started by a daemon or a webserver shows in its command line.
CODE_SERVER = "dagster api grpc"


class ProcessGroup:
    """``command`` in a session (process group) of its own, its output appended to ``log``.
    ``abrupt``: members whose command line contains one of these are killed (SIGKILL) when the
    group is stopped, before the rest of it gets SIGTERM."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path,
                 cwd: Path = REPO, abrupt: tuple[str, ...] = ()) -> None:
        self.command = command
        self.env = env
        self.log = log
        self.cwd = cwd
        self.abrupt = abrupt
        self.process: subprocess.Popen[bytes] | None = None
        self._seen: dict[int, ProcessInfo] = {}

    def start(self) -> None:
        self._seen = {}
        with self.log.open("ab") as out:
            self.process = subprocess.Popen(self.command, cwd=self.cwd, env=self.env,
                                            stdin=subprocess.DEVNULL, stdout=out,
                                            stderr=subprocess.STDOUT, start_new_session=True)

    def running(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def children(self) -> list[ProcessInfo]:
        """What the process started and is still running (remembered for the stop check)."""
        if self.process is None:
            return []
        found = descendants(self.process.pid)
        self._seen.update((p.pid, p) for p in found)
        return found

    def kill(self) -> None:
        """SIGKILL to the whole group at once (a crash), then check that nothing survived."""
        assert self.process is not None
        self.children()
        self._signal_group(signal.SIGKILL)
        self.process.wait(timeout=30)
        self._finish()

    def stop(self, timeout: float = 30) -> None:
        """SIGKILL to the ``abrupt`` members, SIGTERM to the rest of the group; SIGKILL to
        whatever is left of it after the leader exits (or after ``timeout``); then check that
        nothing survived."""
        if self.process is None:
            return
        children = self.children()
        if self.process.poll() is None:
            for child in children:
                if any(part in child.command for part in self.abrupt):
                    with suppress(ProcessLookupError):
                        os.kill(child.pid, signal.SIGKILL)
            self._signal_group(signal.SIGTERM)
            with suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=timeout)
        self._finish()

    def survivors(self) -> list[ProcessInfo]:
        """Living (not zombie) members of the group, and descendants seen before that left it."""
        if self.process is None:
            return []
        table = processes()
        pgid = self.process.pid
        alive = [p for p in table.values() if p.pgid == pgid and p.state != "Z"]
        for pid, seen in self._seen.items():
            now = table.get(pid)
            # same pid and command: the same process (a reused pid would differ)
            if now and now.state != "Z" and now.command == seen.command and now not in alive:
                alive.append(now)
        return alive

    def _signal_group(self, sig: signal.Signals) -> None:
        assert self.process is not None
        with suppress(ProcessLookupError):  # the whole group is gone already
            os.killpg(self.process.pid, sig)

    def _finish(self) -> None:
        """Kill what is left (the group, and descendants that left it), reap the leader, and
        wait until none of it is alive; raise :class:`OrphanedProcesses` if something is."""
        assert self.process is not None
        deadline = time.monotonic() + 15
        while True:
            self._signal_group(signal.SIGKILL)
            left = self.survivors()
            for p in left:
                with suppress(ProcessLookupError):
                    os.kill(p.pid, signal.SIGKILL)
            if self.process.poll() is None:
                with suppress(subprocess.TimeoutExpired):
                    self.process.wait(timeout=1)
            if not left and self.process.poll() is not None:
                return
            if time.monotonic() > deadline:
                raise OrphanedProcesses(
                    f"still running after stopping {self.command[0]}: "
                    + "; ".join(f"{p.pid} {p.command[:120]}" for p in left))
            time.sleep(0.1)


class Daemon(ProcessGroup):
    """``dagster-daemon run`` (with its code server and run workers) in its own process group:
    Dagster's own sensor loop (an iteration every 5 s)."""

    def __init__(self, env: dict[str, str], log: Path,
                 workspace: Path = REPO / "workspace.yaml") -> None:
        super().__init__([str(BIN / "dagster-daemon"), "run", "-w", str(workspace)], env, log,
                         abrupt=(CODE_SERVER,))
        self.workspace = workspace


class OrchestratorDaemon(ProcessGroup):
    """``orchestrator daemon`` (the Dagster daemon with the half-second sensor loop), as
    production runs it."""

    def __init__(self, env: dict[str, str], log: Path,
                 workspace: Path = REPO / "workspace.yaml") -> None:
        super().__init__([str(BIN / "orchestrator"), "daemon", "-w", str(workspace)], env, log,
                         abrupt=(CODE_SERVER,))
        self.workspace = workspace


class Worker(ProcessGroup):
    """``orchestrator worker`` (a Celery worker and its pool of run processes). ``name`` is
    made unique: on a shared broker a worker's name is its control queue."""

    def __init__(self, env: dict[str, str], log: Path, name: str = "worker",
                 concurrency: int = 2) -> None:
        self.name = f"{name}-{uuid.uuid4().hex[:8]}"
        self._seen_log = 0
        super().__init__([str(BIN / "orchestrator"), "worker", "-c", str(concurrency),
                          "-n", f"{self.name}@%h"], env, log)

    def start(self, timeout: float | None = 60) -> None:
        """Start it and wait until it takes runs (``timeout`` None: do not wait; ``ready``)."""
        self._seen_log = self.log.stat().st_size if self.log.exists() else 0  # restarts append
        super().start()
        if timeout is not None:
            self.ready(timeout)

    def ready(self, timeout: float = 60) -> None:
        wait_for(lambda: b" ready." in self.log.read_bytes()[self._seen_log:], timeout,
                 f"worker {self.name}", self.log)

    def pool(self) -> set[int]:
        """The pool processes that execute its runs."""
        assert self.process is not None
        return {p.pid for p in descendants(self.process.pid)}


class CodeServer(ProcessGroup):
    """``dagster code-server start`` on a loopback port, killable on its own."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = free_port()
        super().__init__([str(BIN / "dagster"), "code-server", "start", "-h", "127.0.0.1", "-p",
                          str(self.port), "-f", str(REPO / "definitions.py"), "-d", str(REPO)],
                         env, log)

    def workspace(self, path: Path) -> Path:
        """A workspace file that loads the code location from this server."""
        path.write_text(f"load_from:\n  - grpc_server:\n      host: 127.0.0.1\n"
                        f"      port: {self.port}\n      location_name: orchestrator\n")
        return path

    def stop(self, timeout: float = 30) -> None:
        if self.running():
            self.kill()


OPERATOR_TOKEN = "operator-token-of-the-harness"
"""ORCHESTRATOR_OPERATOR_TOKEN of the servers :func:`api_server` starts (unless given)."""


@contextmanager
def api_server(store_url: str, home: Path, log: Path | None = None, *, workers: int | str = 1,
               **settings: str) -> Iterator[str]:
    """``orchestrator serve --workers N`` (real uvicorn) on a free loopback port over
    ``store_url``, with ``settings`` (``ORCHESTRATOR_*``; the operator token
    :data:`OPERATOR_TOKEN` unless given) in its environment; yields its base URL once
    ``/healthz`` answers, and stops it (its own PID, which stops its worker processes)
    afterwards."""
    import requests

    from harness.dagster_home import environment

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    out = log.open("ab") if log else subprocess.DEVNULL
    settings = {"ORCHESTRATOR_OPERATOR_TOKEN": OPERATOR_TOKEN, **settings}
    server = subprocess.Popen([str(BIN / "orchestrator"), "serve", "--port", str(port),
                               "--workers", str(workers)],
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
