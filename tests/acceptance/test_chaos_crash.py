"""Fast fault injection (the long version is ``make chaos``, on ``dagster-daemon run``): the real
daemon (``orchestrator daemon``, as production runs it) is SIGKILLed, and separately only its
code server, at random moments while one-time and cron schedules fall due and queued triggers
arrive; after restart every occurrence and every accepted trigger has exactly one run (its own,
or its batch's: each execution in one batch, each batch in one run)."""

from __future__ import annotations

import pytest

from harness.chaos_crash import run_crash

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("target", ["daemon", "code_server"])
def test_sigkill_loses_and_duplicates_nothing(target: str) -> None:
    result = run_crash(target=target, cycles=5, spacing=2.0, trigger_every=0.7,
                       kill_every=(3.0, 5.0), down_for=(0.3, 1.0), warmup=12.0, seed=5,
                       crons=1, orchestrator_daemon=True)
    assert result.kills >= 2, "killed too rarely to prove anything"
    assert (result.lost, result.duplicates) == (0, 0), result.details
    # Occurrences due together are dispatched in batch runs: the kills hit batched dispatch too.
    assert result.details["batch_runs"] > 0, result.details
    assert result.runs >= result.expected - result.skipped
