"""The harness leaves nothing behind: after a daemon is killed (SIGKILL to its process group, as
the crash tests do) or stopped, no process it started survives: not its code server
(``dagster api grpc``), not a descendant that left its process group."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from harness.dagster_home import environment, write_dagster_yaml
from harness.processes import Daemon, ProcessGroup, descendants, processes, wait_for
from orchestrator.store.migrate import upgrade


def _alive(pids: set[int]) -> set[int]:
    table = processes()
    return {pid for pid in pids if pid in table and table[pid].state != "Z"}


@pytest.mark.parametrize("how", ["kill", "stop"])
def test_a_descendant_that_left_the_group_is_stopped_too(tmp_path: Path, how: str) -> None:
    # the child starts a session of its own (as a daemonizing process would): signalling the
    # group does not reach it; the harness remembers it and ends it anyway
    script = ("import os, subprocess, sys, time; "
              "subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(300)'], "
              "start_new_session=True); time.sleep(300)")
    group = ProcessGroup([sys.executable, "-c", script], dict(os.environ), tmp_path / "log")
    group.start()
    assert group.process is not None
    [child] = wait_for(lambda: [p for p in group.children() if p.pgid != group.process.pid],
                       30, "the child in a session of its own")
    getattr(group, how)()
    assert group.survivors() == []
    assert _alive({child.pid}) == set()


@pytest.mark.slow
def test_no_code_server_survives_the_daemon(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    url = f"sqlite:///{home / 'orchestrator.sqlite'}"
    write_dagster_yaml(home)
    upgrade(url)
    daemon = Daemon(environment(home, url), tmp_path / "daemon.log")
    try:
        for how in ("kill", "stop"):
            daemon.start()
            assert daemon.process is not None
            grpc = wait_for(lambda: [p for p in daemon.children()
                                     if "api grpc" in p.command or "api' 'grpc" in p.command],
                            120, "the daemon's code server (dagster api grpc)", daemon.log)
            started = {p.pid for p in descendants(daemon.process.pid)} | {p.pid for p in grpc}
            getattr(daemon, how)()
            assert daemon.survivors() == [], how
            assert _alive(started) == set(), how
    finally:
        if daemon.running():
            daemon.kill()
