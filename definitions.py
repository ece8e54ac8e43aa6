"""Dagster entry point (``dagster dev -w workspace.yaml``): thin, everything lives in the package."""

from orchestrator.dagster.definitions import orchestrator_definitions

defs = orchestrator_definitions()
