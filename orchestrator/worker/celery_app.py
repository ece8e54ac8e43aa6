"""``celery -A orchestrator.worker.celery_app worker -Q dagster --prefetch-multiplier=1``: the
worker app read from ``DAGSTER_HOME/dagster.yaml``, for those who start Celery themselves
(``orchestrator worker`` does the same with sane defaults)."""

from orchestrator.worker.app import main_app

app = main_app()
