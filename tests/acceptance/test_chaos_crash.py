"""Fast fault injection (the long version is ``make chaos``, on ``dagster-daemon run``, one
target at a time): the real daemon (``orchestrator daemon``, as production runs it) and its
separate code server are SIGKILLed in turn, at random moments while one-time and cron schedules
fall due and queued triggers arrive; after restart every occurrence and every accepted trigger
has exactly one run (its own, or its batch's: each execution in one batch, each batch in one
run). One daemon for both targets: each daemon a test starts costs the suite seconds of CPU."""

from __future__ import annotations

import pytest

from harness.chaos_crash import run_crash

pytestmark = pytest.mark.slow


def test_sigkill_of_the_daemon_and_of_its_code_server_loses_and_duplicates_nothing() -> None:
    result = run_crash(target="both", cycles=7, spacing=2.0, trigger_every=0.7,
                       kill_every=(3.0, 5.0), down_for=(0.3, 1.0), warmup=12.0, seed=5,
                       crons=1, orchestrator_daemon=True)
    kills = result.details["kills"]
    assert kills.get("daemon", 0) >= 2 and kills.get("code_server", 0) >= 1, (
        f"killed too rarely to prove anything: {kills}")
    assert (result.lost, result.duplicates) == (0, 0), result.details
    # Occurrences due together are dispatched in batch runs: the kills hit batched dispatch too.
    assert result.details["batch_runs"] > 0, result.details
    assert result.runs >= result.expected - result.skipped
