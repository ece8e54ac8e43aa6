"""Turning due schedules and queued triggers into run requests (plain Python; the Dagster sensors
in ``orchestrator.dagster.sensors`` are thin adapters over these)."""
