"""How a dispatch evaluation waits for work (orchestrator/triggers/waiting.py), on an injected
clock: work already there returns at once; a trigger arriving mid-wait is seen at the next poll;
a debounced trigger's instant is slept to; nothing at all waits the whole window; schedules
(no poll) wait only for an instant within the window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.triggers.waiting import QUEUE_POLL, wait_for_work
from tests.conftest import FakeTime

T0 = datetime(2026, 12, 1, 12, 0, tzinfo=UTC)
WAIT = timedelta(seconds=5)


def _wait(fake: FakeTime, probe, poll=QUEUE_POLL) -> datetime:
    return wait_for_work(probe, now=fake.now, wait=WAIT, clock=fake.clock, sleep=fake.sleep,
                         poll=poll)


def test_work_waiting_returns_at_once() -> None:
    fake = FakeTime(T0)
    assert _wait(fake, lambda t: t) == T0 and fake.slept == []


def test_a_trigger_arriving_mid_wait_is_seen_at_the_next_poll() -> None:
    fake = FakeTime(T0)
    arrives = T0 + timedelta(seconds=1.23)
    woke = _wait(fake, lambda t: t if t >= arrives else None)
    assert arrives <= woke < arrives + QUEUE_POLL
    assert all(s <= QUEUE_POLL.total_seconds() for s in fake.slept)


def test_a_debounced_trigger_is_slept_to_exactly() -> None:
    fake = FakeTime(T0)
    available = T0 + timedelta(seconds=0.25)
    assert _wait(fake, lambda t: available) == available


def test_nothing_waits_the_whole_window_then_returns() -> None:
    fake = FakeTime(T0)
    assert _wait(fake, lambda t: None) == T0 + WAIT
    assert sum(fake.slept) == pytest.approx(WAIT.total_seconds())


def test_schedules_wait_only_for_an_instant_within_the_window() -> None:
    fake = FakeTime(T0)
    assert _wait(fake, lambda t: T0 + timedelta(seconds=9), poll=None) == T0  # beyond: at once
    assert _wait(fake, lambda t: None, poll=None) == T0 and fake.slept == []
    due = T0 + timedelta(seconds=3)
    assert _wait(fake, lambda t: due, poll=None) == due and fake.slept == [3.0]
