"""``PromptRunCoordinator``: Dagster's queued run coordinator, without the wait for an idle slot.

``QueuedRunCoordinator`` queues every submitted run and its daemon launches queued runs once per
``dequeue_interval_seconds`` (at least a second): a lone trigger waits half a second on average
for a slot that is free. This coordinator launches a submitted run at once, in the process that
submitted it (the sensor daemon), when nothing is queued ahead of it and fewer than
``max_concurrent_runs`` runs are in flight; otherwise it queues the run exactly as its parent
does, so a burst still waits in Dagster's queue and the limit holds. With
``tag_concurrency_limits`` every run goes through the queue (it is the queue that applies them).

The limit is checked, not reserved: submissions racing each other (the daemon's submit threads)
can pass it by at most their number, never more.

Same configuration as ``QueuedRunCoordinator`` (``examples/dagster.yaml``)::

    run_coordinator:
      module: orchestrator.dagster.coordinator
      class: PromptRunCoordinator
      config: {max_concurrent_runs: 4, dequeue_interval_seconds: 1}

:func:`run_slots` reads the same slots for the queue sensor, which requests no more runs than
are free (:mod:`orchestrator.triggers.queue`).
"""

from __future__ import annotations

import logging

import dagster as dg

from orchestrator.triggers.dispatch import RunSlots

log = logging.getLogger(__name__)
IN_FLIGHT = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED,
             dg.DagsterRunStatus.CANCELING]
# What holds a slot or waits for one (a NOT_STARTED run was never submitted: a crash left it).
OCCUPYING = [dg.DagsterRunStatus.QUEUED, *IN_FLIGHT]


def run_slots(instance: dg.DagsterInstance) -> RunSlots | None:
    """The instance's run slots (``max_concurrent_runs`` of a queued run coordinator, and the
    runs queued or in flight, whatever their job), or None when no limit is set."""
    coordinator = instance.run_coordinator
    if not isinstance(coordinator, dg.QueuedRunCoordinator):
        return None
    capacity = coordinator.get_run_queue_config().max_concurrent_runs
    if capacity < 0:
        return None
    return RunSlots(capacity=capacity,
                    in_use=instance.get_runs_count(dg.RunsFilter(statuses=OCCUPYING)))


class PromptRunCoordinator(dg.QueuedRunCoordinator):
    def submit_run(self, context: dg.SubmitRunContext) -> dg.DagsterRun:
        run = context.dagster_run
        if run.status == dg.DagsterRunStatus.NOT_STARTED and self._slot_free():
            try:
                return self._instance.launch_run(run.run_id, context.workspace)
            except Exception:
                # launch_run has failed the run with the error as an engine event (the broker
                # unreachable, say); the reconciler settles its executions. The submitter's
                # other runs go on.
                log.warning("run %s failed to launch (see its engine events)", run.run_id,
                            exc_info=True)
                return self._instance.get_run_by_id(run.run_id) or run
        return super().submit_run(context)

    def _slot_free(self) -> bool:
        if self.get_run_queue_config().tag_concurrency_limits:
            return False
        instance = self._instance
        if instance.get_runs_count(dg.RunsFilter(statuses=[dg.DagsterRunStatus.QUEUED])):
            return False  # launching now would overtake runs waiting in the queue
        limit = self.get_run_queue_config().max_concurrent_runs
        return limit == -1 or instance.get_runs_count(dg.RunsFilter(statuses=IN_FLIGHT)) < limit
