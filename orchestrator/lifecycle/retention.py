"""The retention rule: how long a terminal execution is kept, as a user writes it."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from orchestrator.domain.ingest import parse_duration
from orchestrator.exceptions import InvalidInput, Problem

MIN_RETENTION = timedelta(hours=1)
DEFAULT_WORD = "default"


def parse_retention(value: Any, field: str) -> timedelta | None:
    """``"7d"``, ``"36h"``, ``"90d"`` (at least an hour), or ``"default"`` (None: back to
    ``ORCHESTRATOR_RETENTION_DAYS``); :class:`InvalidInput` naming ``field`` otherwise."""
    if isinstance(value, str) and value.strip().lower() == DEFAULT_WORD:
        return None
    try:
        retention = parse_duration(value)
    except ValueError as exc:
        raise InvalidInput(Problem(field=field, message=f"{value!r} {exc}; e.g. '7d', '36h', "
                                   f"or '{DEFAULT_WORD}'")) from None
    if retention < MIN_RETENTION:
        raise InvalidInput(Problem(field=field, message=f"{value!r} is shorter than an hour; "
                                   "use at least '1h'"))
    return timedelta(seconds=int(retention.total_seconds()))
