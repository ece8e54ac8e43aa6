"""``OrchestratorCeleryRunLauncher``: dagster-celery's ``CeleryRunLauncher``, terminating a run
the way Dagster's own launchers do, and not claiming a health check it cannot make.

**Terminate.** dagster-celery revokes the run's task (SIGTERM to the pool process running it)
without marking the run ``CANCELING`` first, so the interrupted run ends ``FAILURE``: a run a
user terminated would be settled as a pipeline fault and alert. This launcher marks it
``CANCELING`` first, as ``DefaultRunLauncher`` does; the worker turns the SIGTERM into Dagster's
interrupt (:mod:`orchestrator.worker.app`), the run ends ``CANCELED`` and its executions
``cancelled``, with no alert.

**Worker health.** dagster-celery reads a run's health from its task's state in the Celery
result backend. The default backend (``rpc://``) answers only the process that sent the task,
and the workers store no results (nothing reads them), so every other process sees
``PENDING``, and Dagster's run monitoring fails a healthy run at its first check. A worker that
dies is caught by the executions' heartbeat lease instead (``execution_reconciler``: the run is
failed and its executions settled, one alert); run monitoring still fails runs stuck in
``STARTING`` (sent to a broker no worker takes from).

Everything else (configuration, queues, priorities) is dagster-celery's::

    run_launcher:
      module: orchestrator.worker.launcher
      class: OrchestratorCeleryRunLauncher
      config: {broker: ..., default_queue: dagster}
"""

from __future__ import annotations

import time

import dagster as dg
from dagster_celery.launcher import CeleryRunLauncher
from dagster_celery.tags import DAGSTER_CELERY_TASK_ID_TAG

# dagster-celery tags the run with its task id just after sending the task, so a worker can
# start the run a moment before the tag exists: wait that long for it.
TASK_ID_WAIT_SECONDS = 10.0


class OrchestratorCeleryRunLauncher(CeleryRunLauncher):
    @property
    def supports_check_run_worker_health(self) -> bool:
        return False

    def terminate(self, run_id: str) -> bool:
        run = self._launched(run_id)
        if run is None:
            return False  # finished, unknown, or never sent to the broker: nothing to stop
        self._instance.report_run_canceling(run)
        return super().terminate(run_id)

    def _launched(self, run_id: str) -> dg.DagsterRun | None:
        deadline = time.monotonic() + TASK_ID_WAIT_SECONDS
        while True:
            run = self._instance.get_run_by_id(run_id)
            if run is None or run.is_finished:
                return None
            if DAGSTER_CELERY_TASK_ID_TAG in run.tags:
                return run
            if time.monotonic() >= deadline:
                return None
            time.sleep(0.1)
