"""The burst gate's window as counters (plain Python, ``domain.burst``): ten buckets per window;
the window's sum counts whole buckets whole, the one it starts in by the share still inside, and
older ones not at all. A server's counts not yet written survive a failed transaction."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.domain.burst import BurstPolicy, BurstWindow
from orchestrator.store.burst import BurstCounts

POLICY = BurstPolicy(enabled=True, environments=frozenset({"*"}), threshold=10,
                     window=timedelta(seconds=10), hold=timedelta(seconds=30))
T0 = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)  # a bucket's start


def test_a_trigger_is_counted_in_the_bucket_of_its_instant() -> None:
    assert POLICY.bucket_width == timedelta(seconds=1)
    assert POLICY.bucket(T0) == T0
    assert POLICY.bucket(T0 + timedelta(milliseconds=999)) == T0
    assert POLICY.bucket(T0 + timedelta(seconds=1)) == T0 + timedelta(seconds=1)
    assert BurstWindow.first_bucket(POLICY, T0 + timedelta(seconds=10, milliseconds=500)) == T0


def test_the_window_sums_every_server_and_weighs_the_bucket_it_starts_in() -> None:
    buckets = [(T0, 4), (T0, 6),  # two servers, the oldest bucket
               (T0 + timedelta(seconds=5), 3), (T0 + timedelta(seconds=9), 2)]
    # the window (T0, T0 + 9.5 s]: every bucket whole
    assert BurstWindow.count(POLICY, T0 + timedelta(seconds=9.5), buckets) == 15
    # (T0 + 0.25 s, T0 + 10.25 s]: three quarters of the first bucket's 10
    assert BurstWindow.count(POLICY, T0 + timedelta(seconds=10.25), buckets) == 7 + 5
    # (T0 + 1 s, T0 + 11 s]: the first bucket has left
    assert BurstWindow.count(POLICY, T0 + timedelta(seconds=11), buckets) == 5
    assert BurstWindow.count(POLICY, T0 + timedelta(seconds=30), buckets) == 0


def test_a_window_not_read_counts_at_the_threshold_and_what_it_admits() -> None:
    window = BurstWindow(POLICY, T0, counted=None, tripped_until=T0 + timedelta(seconds=20))
    assert not window.read and window.counted == POLICY.threshold
    assert window.admit(True) and window.admitted == 1


def test_a_transaction_that_does_not_commit_keeps_the_pending_counts_as_they_were() -> None:
    """A server's counts buffered while tripped wait in memory; the transaction that writes
    them takes them, and gives them back if it fails; what a failed transaction left pending
    (its own triggers, rolled back) is dropped."""
    counts = BurstCounts()
    with counts.transaction() as first:
        first.leave("acme", T0, 3)
    assert counts.pending("acme") == [(T0, 3)]
    with pytest.raises(RuntimeError), counts.transaction() as failed:
        assert failed.take("acme") == {("acme", T0): 3}
        failed.leave("acme", T0 + timedelta(seconds=1), 5)
        raise RuntimeError("the store went away")
    assert counts.pending("acme") == [(T0, 3)]
    with counts.transaction() as written:
        written.take("acme")
    assert counts.pending("acme") == []
