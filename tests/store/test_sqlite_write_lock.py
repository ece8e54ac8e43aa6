"""The SQLite write lock (``orchestrator.store.engine.sqlite_write_lock``): one writer of a file
at a time across processes, released when its holder dies (even by SIGKILL), and never a wait
longer than SQLite's own busy timeout behind a stuck holder."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

import pytest

from harness.processes import wait_for
from orchestrator.store import engine
from orchestrator.store.engine import sqlite_write_lock

HOLDER = """
import sys, time
from pathlib import Path
from orchestrator.store.engine import sqlite_write_lock
with sqlite_write_lock(sys.argv[1]):
    Path(sys.argv[2]).write_text("held")
    while not Path(sys.argv[3]).exists():
        time.sleep(0.01)
"""


def _holder(tmp_path: Path, url: str) -> tuple[subprocess.Popen[bytes], Path, Path]:
    held, release = tmp_path / "held", tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HOLDER, url, str(held), str(release)])
    wait_for(held.exists, 30, "the other process to hold the write lock")
    return proc, held, release


def _acquire_in_thread(url: str) -> threading.Event:
    acquired = threading.Event()

    def take() -> None:
        with sqlite_write_lock(url):
            acquired.set()

    threading.Thread(target=take, daemon=True).start()
    return acquired


def test_a_writer_waits_for_another_processes_write_and_goes_on_when_it_ends(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    proc, _, release = _holder(tmp_path, url)
    acquired = _acquire_in_thread(url)
    assert not acquired.wait(0.5), "took the lock while another process held it"
    release.write_text("")
    assert proc.wait(timeout=30) == 0
    assert acquired.wait(30)


def test_a_killed_holder_releases_the_lock(tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    proc, _, _ = _holder(tmp_path, url)
    acquired = _acquire_in_thread(url)
    assert not acquired.wait(0.5)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    assert acquired.wait(30)


def test_a_stuck_holder_delays_a_writer_no_longer_than_the_busy_timeout(tmp_path, monkeypatch):
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    proc, _, release = _holder(tmp_path, url)
    try:
        acquired = _acquire_in_thread(url)  # goes on to SQLite's own locking after 0.3 s
        assert acquired.wait(30)
    finally:
        release.write_text("")
        proc.wait(timeout=30)


@pytest.mark.parametrize("url", ["sqlite://", "sqlite:///:memory:",
                                 "postgresql+psycopg2://u@127.0.0.1:5432/db"])
def test_nothing_to_lock_for_memory_databases_and_postgresql(url):
    assert isinstance(sqlite_write_lock(url), nullcontext)


def test_the_thread_holding_the_lock_takes_it_again_and_others_wait_for_the_outer_hold(
        tmp_path):
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    with sqlite_write_lock(url):
        with sqlite_write_lock(url):  # (the API's writer: its turn, then each transaction)
            pass
        acquired = _acquire_in_thread(url)
        assert not acquired.wait(0.3), "another thread took the lock inside the outer hold"
    assert acquired.wait(30)


def test_a_writer_that_gave_up_leaves_the_lock_to_the_next_process(tmp_path, monkeypatch):
    """A writer gives up behind a stuck holder; its wait for the lock, still pending in the
    kernel, must not keep the lock once the holder lets go: another process takes it."""
    monkeypatch.setattr(engine, "SQLITE_BUSY_TIMEOUT_MS", 300)
    url = f"sqlite:///{tmp_path / 'store.sqlite'}"
    (tmp_path / "1").mkdir()
    first, _, release = _holder(tmp_path / "1", url)
    assert _acquire_in_thread(url).wait(30)  # gave up after 0.3 s
    release.write_text("")
    assert first.wait(timeout=30) == 0
    (tmp_path / "2").mkdir()
    second, _, release = _holder(tmp_path / "2", url)  # waits until it holds the lock
    try:
        acquired = _acquire_in_thread(url)
        assert not acquired.wait(0.2), "took the lock while the second process held it"
    finally:
        release.write_text("")
        assert second.wait(timeout=30) == 0
