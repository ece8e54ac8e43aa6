"""Dagster's run storage seen through the small interfaces our plain-Python logic needs: run-key
lookups for the dispatchers, ended runs and run updates for the reconciler."""

# No `from __future__ import annotations`: kept consistent with the other Dagster adapters.

from collections.abc import Sequence
from datetime import UTC, datetime

import dagster as dg

from orchestrator.dagster.batch_job import BATCH_JOB_NAME
from orchestrator.dagster.compat import AUTO_RETRY_RUN_ID_TAG, SENSOR_NAME_TAG, WILL_RETRY_TAG
from orchestrator.dagster.jobs import JOB_NAME
from orchestrator.domain.correlation import (
    DAGSTER_RUN_KEY_TAG,
    TAG_BATCH_ID,
    TAG_EXECUTION_ID,
    TAG_OUTCOME,
)
from orchestrator.execution.reconcile import RunInfo, RunPhase
from orchestrator.triggers.dispatch import RunLookup, RunState

_PHASES = {dg.DagsterRunStatus.SUCCESS: RunPhase.SUCCESS,
           dg.DagsterRunStatus.FAILURE: RunPhase.FAILURE,
           dg.DagsterRunStatus.CANCELED: RunPhase.CANCELED}


def run_lookup(instance: dg.DagsterInstance, sensor_name: str) -> RunLookup:
    """One query to Dagster's run storage for a batch of run keys."""

    def lookup(keys: Sequence[str]) -> dict[str, RunState]:
        if not keys:
            return {}
        records = instance.get_run_records(
            dg.RunsFilter(tags={DAGSTER_RUN_KEY_TAG: list(keys), SENSOR_NAME_TAG: sensor_name}))
        states: dict[str, RunState] = {}
        for record in records:
            key = record.dagster_run.tags.get(DAGSTER_RUN_KEY_TAG)
            started = record.dagster_run.status != dg.DagsterRunStatus.NOT_STARTED
            if key and (started or key not in states):
                states[key] = RunState.SUBMITTED if started else RunState.NOT_STARTED
        return states

    return lookup


def _info(record: dg.RunRecord, *, retries_enabled: bool) -> RunInfo:
    run = record.dagster_run
    phase = _PHASES.get(run.status, RunPhase.ACTIVE)
    will_retry = run.tags.get(WILL_RETRY_TAG)
    if phase is RunPhase.FAILURE and will_retry is None and not retries_enabled:
        will_retry = "false"  # Dagster only tags failures when run retries are enabled
    return RunInfo(run_id=run.run_id, execution_id=run.tags.get(TAG_EXECUTION_ID),
                   batch_id=run.tags.get(TAG_BATCH_ID), phase=phase,
                   updated_at=record.update_timestamp,
                   will_retry=None if will_retry is None else will_retry.lower() == "true",
                   retry_run_id=run.tags.get(AUTO_RETRY_RUN_ID_TAG),
                   has_outcome_tag=TAG_OUTCOME in run.tags)


class DagsterRuns:
    """The reconciler's :class:`~orchestrator.execution.reconcile.RunSource` on an instance."""

    def __init__(self, instance: dg.DagsterInstance) -> None:
        self.instance = instance

    def _infos(self, records: Sequence[dg.RunRecord]) -> list[RunInfo]:
        retries_enabled = self.instance.run_retries_enabled
        return [_info(record, retries_enabled=retries_enabled) for record in records]

    def ended_since(self, after: datetime, limit: int) -> list[RunInfo]:
        # One indexed query per job (single and batch runs), merged: the first ``limit`` of
        # the union are among the first ``limit`` of each.
        records = [record for job in (JOB_NAME, BATCH_JOB_NAME)
                   for record in self.instance.get_run_records(
                       dg.RunsFilter(job_name=job, statuses=list(_PHASES),
                                     updated_after=after.astimezone(UTC)),
                       limit=limit, order_by="update_timestamp", ascending=True)]
        records.sort(key=lambda r: r.update_timestamp)
        return self._infos(records[:limit])

    def by_id(self, run_ids: Sequence[str]) -> dict[str, RunInfo]:
        if not run_ids:
            return {}
        records = self.instance.get_run_records(dg.RunsFilter(run_ids=list(run_ids)))
        return {info.run_id: info for info in self._infos(records)}

    def silent_since(self, before: datetime, limit: int) -> list[RunInfo]:
        records = [record for job in (JOB_NAME, BATCH_JOB_NAME)
                   for record in self.instance.get_run_records(
                       dg.RunsFilter(job_name=job, statuses=[dg.DagsterRunStatus.STARTED],
                                     updated_before=before.astimezone(UTC)), limit=limit)]
        return self._infos(records[:limit])

    def mark_failed(self, run_id: str, message: str) -> None:
        run = self.instance.get_run_by_id(run_id)
        if run is not None and not run.is_finished:
            self.instance.report_run_failed(run, message)

    def tag_outcome(self, run_id: str, outcome: str) -> None:
        self.instance.add_run_tags(run_id, {TAG_OUTCOME: outcome})

    def terminate(self, run_id: str) -> bool:
        run = self.instance.get_run_by_id(run_id)
        if run is None or run.is_finished or run.status == dg.DagsterRunStatus.CANCELING:
            return False
        if run.status in (dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.QUEUED):
            self.instance.report_run_canceled(run, "cancelled on request before it started")
            return True
        return self.instance.run_launcher.terminate(run_id)

    def delete_runs(self, execution_ids: Sequence[str], batch_ids: Sequence[str]) -> int:
        """The pruner's :class:`~orchestrator.lifecycle.prune.RunPruner`: delete the finished
        runs tagged with these executions (their own runs, retries included) or batches,
        through Dagster's API (run, event log and tags together)."""
        records: list[dg.RunRecord] = []
        for tag, values in ((TAG_EXECUTION_ID, execution_ids), (TAG_BATCH_ID, batch_ids)):
            if values:
                records += self.instance.get_run_records(dg.RunsFilter(tags={tag: list(values)}))
        deleted = 0
        for record in records:
            if record.dagster_run.is_finished:  # an unfinished run is never pulled from under
                self.instance.delete_run(record.dagster_run.run_id)
                deleted += 1
        return deleted
