"""Thin Dagster adapters: the store resource, the ``execute_workflow`` job, the trigger sensors and
``orchestrator_definitions``."""
