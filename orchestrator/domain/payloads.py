"""Checks on the JSON values users send (payloads, workflow documents): what every store can
hold. PostgreSQL refuses the NUL character (``\\u0000``) in text and JSON, so it is refused up
front, naming where it is, instead of failing the write as a store error."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from orchestrator.exceptions import Problem


def nul_problem(value: Any, field: str) -> Problem | None:
    """A :class:`Problem` naming the first key or string under ``field`` with a NUL, if any
    (``field`` empty: paths from the top of ``value``)."""
    path = _nul_at(value, field or None)
    if path is None:
        return None
    return Problem(field=path, message="contains the NUL character (\\u0000), which cannot be "
                                       "stored; remove it")


def _nul_at(value: Any, path: str | None) -> str | None:
    if isinstance(value, str):
        return (path or "(value)") if "\x00" in value else None
    if isinstance(value, Mapping):
        for key, item in value.items():
            label = str(key) if str(key).strip() else repr(str(key))  # '' or ' ' shown quoted
            where = (label if path is None else f"{path}.{label}").replace("\x00", "\\u0000")
            if "\x00" in str(key):
                return where
            found = _nul_at(item, where)
            if found is not None:
                return found
    elif isinstance(value, list | tuple):
        for index, item in enumerate(value):
            found = _nul_at(item, f"{path or ''}[{index}]")
            if found is not None:
                return found
    return None
