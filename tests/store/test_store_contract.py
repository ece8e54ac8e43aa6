"""The store's contract, run on SQLite and on PostgreSQL: what every caller relies on."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from orchestrator.domain.correlation import Correlation, Source
from orchestrator.domain.records import BlockEntry, ExecutionStatus, Outcome, TriggerStatus
from orchestrator.domain.schedules import validate_schedule
from orchestrator.domain.workflow import parse_workflow
from orchestrator.exceptions import NotFound, StoreError
from orchestrator.execution.blocks import block_types
from orchestrator.store import Store
from orchestrator.store import tables as t
from tests.conftest import ALL_BACKENDS, NOW, workflow_doc

pytestmark = pytest.mark.backends(*ALL_BACKENDS)


def _block(block_id: str, status: str, after: int = 0) -> BlockEntry:
    return BlockEntry(block_id=block_id, block_type="transform", status=status,
                      started_at=NOW + timedelta(seconds=after),
                      finished_at=None if status == "running" else NOW, duration_ms=None,
                      error=None, output_size=None)


def _correlation(execution_id: str = "e-1", **extra: object) -> Correlation:
    fields = dict(execution_id=execution_id, request_id="r-1", source=Source.API,
                  workflow="digest", environment="default", payload={"user": "ada"})
    fields.update(extra)
    return Correlation(**fields)  # type: ignore[arg-type]


class TestWorkflows:
    def test_apply_versions_and_keeps_history(self, store: Store) -> None:
        v1, created = store.apply_workflow(parse_workflow(workflow_doc(), block_types()), NOW)
        assert (v1.version, created) == (1, True)
        same, changed = store.apply_workflow(parse_workflow(workflow_doc(), block_types()), NOW)
        assert (same.version, changed) == (1, False)
        v2, changed = store.apply_workflow(
            parse_workflow(workflow_doc(timeout_seconds=60), block_types()), NOW)
        assert (v2.version, changed) == (2, True)
        assert store.get_workflow("default", "digest").version == 2
        assert "timeout_seconds" not in store.get_workflow("default", "digest", 1).document

    def test_environments_are_separate(self, store: Store, make_workflow) -> None:
        make_workflow("digest")
        make_workflow("digest", environment="acme")
        assert {(w.environment, w.name) for w in store.list_workflows()} == {
            ("default", "digest"), ("acme", "digest")}
        assert [w.name for w in store.list_workflows("acme")] == ["digest"]

    def test_delete_keeps_history_and_pauses_schedules(self, store: Store, make_schedule) -> None:
        schedule = make_schedule()
        assert store.delete_workflow("default", "digest", NOW) == 1
        with pytest.raises(NotFound):
            store.get_workflow("default", "digest")
        assert store.get_workflow("default", "digest", 1).version == 1
        paused = store.get_schedule(schedule.id)
        assert (paused.enabled, paused.next_run_at) == (False, None)


class TestSchedules:
    def test_pausing_cancels_what_has_not_started(self, store: Store, make_schedule) -> None:
        schedule = make_schedule()
        other = make_schedule(key="other")
        mine = [_correlation(f"e-{i}", trigger_id=schedule.id) for i in range(3)]
        for c in mine:
            store.create_execution(c, NOW, enqueue=True)
        store.start_execution("e-0", dagster_run_id="run-0", workflow_version=1, now=NOW)
        store.create_execution(_correlation("theirs", trigger_id=other.id), NOW, enqueue=True)
        paused = store.pause_schedule(schedule.id, NOW + timedelta(seconds=1))
        assert (paused.enabled, paused.next_run_at) == (False, None)
        states = {e: (r.status, r.outcome, r.finalized_by) for e in
                  ("e-0", "e-1", "e-2", "theirs") for r in [store.get_execution(e)]}
        assert states == {
            "e-0": (ExecutionStatus.RUNNING, None, None),  # started: it finishes as it will
            "e-1": (ExecutionStatus.CANCELLED, Outcome.CANCELLED, "pause"),
            "e-2": (ExecutionStatus.CANCELLED, Outcome.CANCELLED, "pause"),
            "theirs": (ExecutionStatus.QUEUED, None, None)}
        assert store.get_execution("e-1").error == {
            "message": "cancelled: its schedule was paused before it started"}
        assert [q.execution_id for q in store.queued_triggers(10)
                if q.status is TriggerStatus.QUEUED] == ["e-0", "theirs"]
        assert store.list_alerts() == []

    def test_every_created_schedule_has_next_run_at(self, store: Store, make_schedule) -> None:
        cron = make_schedule(cron="*/5 * * * *")
        once = make_schedule(run_at="2030-02-01T09:00:00+01:00")
        assert cron.next_run_at == NOW.replace(minute=5, second=0)
        assert once.next_run_at == NOW.replace(month=2, day=1, hour=8, minute=0, second=0)

    @pytest.mark.sql_only("a CHECK constraint of the schema, written around the store")
    def test_database_refuses_enabled_schedule_without_next_run_at(self, store: Store,
                                                                    make_schedule) -> None:
        schedule = make_schedule()
        with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
            conn.execute(t.schedules.update().where(t.schedules.c.id == schedule.id)
                         .values(next_run_at=None))
        assert store.get_schedule(schedule.id).next_run_at is not None

    def test_key_upserts_and_keeps_id(self, store: Store, make_schedule) -> None:
        first = make_schedule(key="tenant-7-daily", cron="0 9 * * *")
        again = make_schedule(key="tenant-7-daily", cron="0 9 * * *", payload={"user": "bob"})
        assert again.id == first.id
        assert again.next_run_at == first.next_run_at
        assert again.payload == {"user": "bob"}
        edited = make_schedule(key="tenant-7-daily", cron="0 10 * * *")
        # Editing the cron recomputes next_run_at from now (10:00 has passed today).
        assert edited.id == first.id
        assert edited.next_run_at == NOW.replace(day=16, hour=10, minute=0, second=0)
        assert len(store.list_schedules()) == 1

    def test_unknown_workflow_is_rejected_and_nothing_written(self, store: Store) -> None:
        with pytest.raises(NotFound):
            store.create_schedule(validate_schedule(workflow="nope", cron="* * * * *", now=NOW),
                                  NOW)
        assert store.list_schedules() == []

    def test_due_is_oldest_first_and_limited(self, store: Store, make_schedule) -> None:
        late = make_schedule(run_at="2030-01-15T12:03:00Z")
        early = make_schedule(run_at="2030-01-15T12:01:00Z")
        middle = make_schedule(run_at="2030-01-15T12:02:00Z")
        make_schedule(run_at="2030-01-15T13:00:00Z")  # not due
        later = NOW + timedelta(minutes=10)
        assert [s.id for s in store.due_schedules(later, 10)] == [early.id, middle.id, late.id]
        first_two = store.due_schedules(later, 2)
        assert [s.id for s in first_two] == [early.id, middle.id]
        rest = store.due_schedules(later, 2, after=(middle.next_run_at, middle.id))
        assert [s.id for s in rest] == [late.id]

    def test_advance_is_compare_and_set(self, store: Store, make_schedule) -> None:
        schedule = make_schedule()
        due, following = schedule.next_run_at, schedule.next_run_at + timedelta(minutes=1)
        assert store.advance_schedule(schedule.id, expected=due, next_run_at=following, now=NOW,
                                      dispatched=due)
        # A second, overlapping evaluation with the stale value changes nothing.
        assert not store.advance_schedule(schedule.id, expected=due,
                                          next_run_at=following + timedelta(minutes=1), now=NOW)
        stored = store.get_schedule(schedule.id)
        assert (stored.next_run_at, stored.last_scheduled_for) == (following, due)

    def test_advance_to_none_disables(self, store: Store, make_schedule) -> None:
        once = make_schedule(run_at="2030-01-15T12:01:00Z")
        assert store.advance_schedule(once.id, expected=once.next_run_at, next_run_at=None,
                                      now=NOW)
        stored = store.get_schedule(once.id)
        assert (stored.enabled, stored.next_run_at) == (False, None)
        assert store.due_schedules(NOW + timedelta(days=1), 10) == []

    def test_pause_and_resume(self, store: Store, make_schedule) -> None:
        schedule = make_schedule()
        assert store.pause_schedule(schedule.id, NOW).enabled is False
        assert store.due_schedules(NOW + timedelta(days=1), 10) == []
        resumed = store.resume_schedule(schedule.id, NOW + timedelta(hours=1), NOW)
        assert (resumed.enabled, resumed.next_run_at) == (True, NOW + timedelta(hours=1))


class TestExecutions:
    def test_insert_if_absent_keeps_first_correlation(self, store: Store, make_workflow) -> None:
        record, created = store.create_execution(_correlation(), NOW)
        assert created and record.status is ExecutionStatus.QUEUED
        again, created = store.create_execution(_correlation(request_id="other"), NOW)
        assert not created and again.request_id == "r-1"

    def test_exactly_one_terminal_write_wins(self, store: Store) -> None:
        store.create_execution(_correlation(), NOW)
        running = store.start_execution("e-1", dagster_run_id="run-1", workflow_version=1, now=NOW)
        assert (running.status, running.attempts) == (ExecutionStatus.RUNNING, 1)
        _first, won = store.finish_execution("e-1", status=ExecutionStatus.ERROR,
                                            outcome=Outcome.USER_ERROR, finalized_by="core",
                                            now=NOW, error={"message": "boom"})
        assert won
        second, won = store.finish_execution("e-1", status=ExecutionStatus.SUCCESS,
                                             outcome=Outcome.SUCCESS, finalized_by="hook", now=NOW)
        assert not won
        assert (second.status, second.outcome, second.finalized_by) == (
            ExecutionStatus.ERROR, Outcome.USER_ERROR, "core")
        # A retried run does not reopen a terminal execution.
        retried = store.start_execution("e-1", dagster_run_id="run-2", workflow_version=1, now=NOW)
        assert retried.status is ExecutionStatus.ERROR and retried.attempts == 1

    def test_open_inserts_a_missing_execution_running(self, store: Store, make_workflow) -> None:
        """A run launched by hand: no row yet; opening creates it, running, attempt 1, with the
        workflow's current version."""
        make_workflow()
        make_workflow(blocks=[{"id": "only", "type": "transform", "with": {}}])  # version 2
        workflow, opened = store.open_execution(_correlation(source=Source.MANUAL),
                                                dagster_run_id="run-1", now=NOW)
        assert (workflow.name, workflow.version, workflow.document["blocks"][0]["id"]) == (
            "digest", 2, "only")
        assert (opened.status, opened.attempts, opened.dagster_run_id, opened.workflow_version,
                opened.source, opened.request_id, opened.payload) == (
            ExecutionStatus.RUNNING, 1, "run-1", 2, Source.MANUAL, "r-1", {"user": "ada"})
        assert opened.created_at == opened.started_at == opened.heartbeat_at == NOW
        assert store.get_execution("e-1") == opened

    def test_open_starts_an_existing_execution_and_keeps_its_correlation(
            self, store: Store, make_workflow) -> None:
        make_workflow()
        store.create_execution(_correlation(), NOW, enqueue=True)
        later = NOW + timedelta(seconds=5)
        _workflow, opened = store.open_execution(_correlation(request_id="other"),
                                                 dagster_run_id="run-1", now=later)
        assert (opened.status, opened.attempts, opened.request_id, opened.workflow_version,
                opened.created_at, opened.started_at, opened.heartbeat_at) == (
            ExecutionStatus.RUNNING, 1, "r-1", 1, NOW, later, later)
        _workflow, again = store.open_execution(_correlation(), dagster_run_id="run-2",
                                                now=later)  # a retried attempt
        assert (again.attempts, again.dagster_run_id) == (2, "run-2")

    def test_open_leaves_a_terminal_execution_alone(self, store: Store, make_workflow) -> None:
        make_workflow()
        store.open_execution(_correlation(), dagster_run_id="run-1", now=NOW)
        store.finish_execution("e-1", status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                               finalized_by="core", now=NOW)
        _workflow, reopened = store.open_execution(_correlation(), dagster_run_id="run-2",
                                                   now=NOW + timedelta(seconds=1))
        assert (reopened.status, reopened.attempts, reopened.dagster_run_id) == (
            ExecutionStatus.SUCCESS, 1, "run-1")

    @pytest.mark.parametrize("deleted", [False, True])
    def test_open_without_the_workflow_writes_nothing(self, store: Store, make_workflow,
                                                      deleted: bool) -> None:
        if deleted:
            make_workflow()
            store.delete_workflow("default", "digest", NOW)
        store.create_execution(_correlation("e-queued"), NOW)
        for execution_id in ("e-queued", "e-by-hand"):
            with pytest.raises(NotFound):
                store.open_execution(_correlation(execution_id), dagster_run_id="run-1", now=NOW)
        queued = store.get_execution("e-queued")
        assert (queued.status, queued.attempts, queued.dagster_run_id) == (
            ExecutionStatus.QUEUED, 0, None)
        with pytest.raises(NotFound):
            store.get_execution("e-by-hand")

    def test_finish_writes_the_last_block_entry_with_the_terminal_state(
            self, store: Store, make_workflow) -> None:
        make_workflow()
        store.open_execution(_correlation(), dagster_run_id="run-1", now=NOW)
        store.record_block("e-1", 1, _block("fetch", "running"))
        store.record_block("e-1", 1, _block("fetch", "success"))
        record, won = store.finish_execution(
            "e-1", status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS, finalized_by="core",
            now=NOW, block=(1, _block("summary", "success", after=1)))
        assert won and record.status is ExecutionStatus.SUCCESS
        assert [(b.block_id, b.status) for b in store.get_execution("e-1").blocks] == [
            ("fetch", "success"), ("summary", "success")]
        # A second completion keeps the first outcome; its block entry is still recorded.
        second, won = store.finish_execution(
            "e-1", status=ExecutionStatus.ERROR, outcome=Outcome.USER_ERROR, finalized_by="core",
            now=NOW, block=(1, _block("summary", "error", after=1)))
        assert not won and second.outcome is Outcome.SUCCESS
        assert store.get_execution("e-1").blocks[-1].status == "error"

    def test_a_failed_terminal_write_leaves_no_block_entry(self, store: Store,
                                                           make_workflow) -> None:
        """One transaction: the entry and the terminal state are written together or not at
        all (here the terminal update fails after the entry's insert: a naive ``now``; any
        output is made storable, so it can no longer be the cause)."""
        make_workflow()
        store.open_execution(_correlation(), dagster_run_id="run-1", now=NOW)
        with pytest.raises(StoreError):
            store.finish_execution(
                "e-1", status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                finalized_by="core", now=NOW.replace(tzinfo=None), output={"n": 1},
                block=(1, _block("summary", "success")))
        record = store.get_execution("e-1")
        assert (record.status, record.blocks) == (ExecutionStatus.RUNNING, ())

    def test_list_filters(self, store: Store) -> None:
        store.create_execution(_correlation("e-1"), NOW)
        store.create_execution(_correlation("e-2", workflow="other"), NOW + timedelta(seconds=1))
        assert [e.execution_id for e in store.list_executions()] == ["e-2", "e-1"]
        assert [e.execution_id for e in store.list_executions(workflow="digest")] == ["e-1"]
        assert store.list_executions(status="success") == []

    def test_enqueue_and_mark_dispatched(self, store: Store) -> None:
        store.create_execution(_correlation("e-1"), NOW, enqueue=True)
        store.create_execution(_correlation("e-2"), NOW + timedelta(seconds=1), enqueue=True)
        assert [q.execution_id for q in store.queued_triggers(10)] == ["e-1", "e-2"]
        assert store.mark_dispatched(["e-1"], NOW) == 1
        assert store.mark_dispatched(["e-1"], NOW) == 0  # already marked
        remaining = store.queued_triggers(10)
        assert [(q.execution_id, q.status) for q in remaining] == [("e-2", TriggerStatus.QUEUED)]


class TestBatches:
    def test_unfinished_counts_each_batchs_open_members(self, store: Store) -> None:
        for i in range(6):
            store.create_execution(_correlation(f"e-{i}"), NOW + timedelta(seconds=i),
                                   enqueue=True)
        big = store.batches.claim_queued("default", ["e-0", "e-1", "e-2"], NOW)
        small = store.batches.claim_queued("default", ["e-3", "e-4"], NOW)
        assert big is not None and small is not None
        # e-5 waits unclaimed: the backlog, not a batch in flight
        assert sorted(store.batches.unfinished("queue")) == [2, 3]
        assert store.batches.unfinished("schedule") == []
        store.batches.open(small.batch_id, dagster_run_id="run-small", now=NOW)
        assert sorted(store.batches.unfinished("queue")) == [2, 3]  # running members count
        store.batches.finish_open(small.batch_id, run_id="run-small",
                                  status=ExecutionStatus.SUCCESS, outcome=Outcome.SUCCESS,
                                  error={}, finalized_by="core", now=NOW)
        assert store.batches.unfinished("queue") == [3]


def test_unreachable_database_is_a_store_error_without_the_url() -> None:
    store = Store("postgresql+psycopg2://secret_user:hunter2@127.0.0.1:1/nowhere")
    with pytest.raises(StoreError) as raised:
        store.list_schedules()
    assert "hunter2" not in str(raised.value) and "127.0.0.1" not in str(raised.value)
    assert "could not list schedules" in str(raised.value)


def test_schedule_view_upcoming_starts_at_the_occurrence_waiting_for_dispatch(
        store, make_schedule) -> None:
    """Around an occurrence, `schedules show` agrees with itself: while the due occurrence
    waits for dispatch, ``upcoming[0]`` is that occurrence (``next_run_at``), not the next."""
    from orchestrator.domain.correlation import iso_utc
    from orchestrator.services.schedules import schedule_view

    created = datetime(2030, 1, 15, 12, 3, 10, tzinfo=UTC)
    schedule = make_schedule(now=created, cron="*/5 * * * *")
    due = datetime(2030, 1, 15, 12, 5, tzinfo=UTC)
    assert schedule.next_run_at == due
    stored = store.get_schedule(schedule.id)
    for now in (created, due + timedelta(seconds=20)):  # before, and due but not dispatched
        view = schedule_view(stored, now).to_dict()  # the CLI's and the API's
        assert view["next_run_at"] == iso_utc(due)
        assert view["upcoming"][:2] == [iso_utc(due), iso_utc(due + timedelta(minutes=5))]
        assert len(view["upcoming"]) == 5
    store.pause_schedule(schedule.id, created)
    assert schedule_view(store.get_schedule(schedule.id), created).upcoming == []
