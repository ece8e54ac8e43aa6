"""Warm run workers: Dagster runs executed inside long-lived Celery workers.

``examples/dagster.yaml`` configures dagster-celery's ``CeleryRunLauncher``: the daemon hands
each run (single or batch) to the broker instead of spawning a process for it, and any machine
that runs ``orchestrator worker`` (same ``DAGSTER_HOME`` storage, same store URL, the broker)
executes it. :mod:`orchestrator.worker.app` builds the worker's Celery app from that launcher's
configuration, so the broker URL is written once, in ``dagster.yaml``.
"""
