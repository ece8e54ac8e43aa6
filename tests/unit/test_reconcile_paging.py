"""The reconciler's paging through ended runs, on a run source whose update times are whole
seconds (Dagster's SQLite run storage) or microseconds: every ended run is read, the read
always moves on (more runs than a page in one instant, or within one second), and a run ending
within the cursor's second after a tick is read by the next."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import pytest

from orchestrator.alerts import Alerter
from orchestrator.execution import reconcile as reconcile_module
from orchestrator.execution.reconcile import RunInfo, RunPhase, reconcile
from orchestrator.store import Store

T0 = datetime(2030, 1, 15, 12, 0, 0, tzinfo=UTC)


class Runs:
    """Ended runs with no execution of ours (nothing to settle): what matters is what is read."""

    def __init__(self, times: Sequence[datetime]) -> None:
        self.runs = [RunInfo(run_id=f"r{i}", execution_id=None, phase=RunPhase.CANCELED,
                             updated_at=t) for i, t in enumerate(times)]
        self.reads = 0
        self.seen: set[str] = set()

    def ended_since(self, after: datetime, limit: int) -> list[RunInfo]:
        self.reads += 1
        assert self.reads < 100, "the reconciler reads the same runs again and again"
        page = sorted((r for r in self.runs if r.updated_at > after),
                      key=lambda r: r.updated_at)[:limit]
        self.seen.update(r.run_id for r in page)
        return page

    def by_id(self, run_ids: Sequence[str]) -> dict[str, RunInfo]:
        return {}

    def silent_since(self, before: datetime, limit: int) -> list[RunInfo]:
        return []

    def mark_failed(self, run_id: str, message: str) -> None: ...

    def tag_outcome(self, run_id: str, outcome: str) -> None: ...

    def terminate(self, run_id: str) -> bool:
        return False


@pytest.fixture
def store() -> Store:
    return Store("memory://reconcile-paging")


def _tick(store: Store, runs: Runs, cursor: datetime | None) -> datetime:
    alerter = Alerter(store=store, webhook_url=None, ui_url="http://127.0.0.1:3000",
                      clock=lambda: T0)
    return reconcile(store, runs, alerter, now=T0 + timedelta(minutes=5), cursor=cursor,
                     lease_timeout=timedelta(seconds=60)).cursor


@pytest.mark.parametrize("times", [
    [T0] * 25 + [T0 + timedelta(seconds=1)] * 3,  # whole seconds, more than a page in one
    [T0 + timedelta(microseconds=i * 1000) for i in range(35)],  # 35 within one second
    [T0 + timedelta(milliseconds=i * 300) for i in range(40)],  # spread over seconds
], ids=["whole_seconds", "within_one_second", "spread"])
def test_every_ended_run_is_read_and_the_read_moves_on(store, monkeypatch, times) -> None:
    monkeypatch.setattr(reconcile_module, "PAGE", 10)
    runs = Runs(times)
    assert _tick(store, runs, None) == max(times)
    assert runs.seen == {r.run_id for r in runs.runs}


def test_a_run_ending_within_the_cursors_second_is_read_by_the_next_tick(store) -> None:
    runs = Runs([T0])
    cursor = _tick(store, runs, None)
    runs.runs.append(RunInfo(run_id="late", execution_id=None, phase=RunPhase.CANCELED,
                             updated_at=T0))  # the same whole second, after the read
    assert _tick(store, runs, cursor) == T0
    assert "late" in runs.seen
