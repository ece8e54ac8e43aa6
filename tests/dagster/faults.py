"""Fault injection for tests: a store whose operations fail on cue, and the resource serving it.

``fail("finish_execution", when=lambda kw: kw["finalized_by"] == "core")`` makes the next matching
call raise :class:`StoreError` (not transient, so Dagster does not retry it), as a database that
refuses a write would.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from orchestrator.dagster.resources import OrchestratorStore
from orchestrator.exceptions import StoreError
from orchestrator.store import Store

_CUES: dict[str, list[list[Any]]] = {}


def fail(operation: str, *, times: int = 1,
         when: Callable[[dict[str, Any]], bool] = lambda kw: True) -> None:
    _CUES.setdefault(operation, []).append([when, times])


def clear() -> None:
    _CUES.clear()


def pending(operation: str) -> int:
    """How many injected failures of ``operation`` have not happened yet."""
    return sum(remaining for _when, remaining in _CUES.get(operation, []))


def _flaky(name: str, attribute: Any) -> Any:
    def maybe_fail(*args: Any, **kwargs: Any) -> Any:
        for cue in _CUES.get(name, []):
            when, remaining = cue
            if remaining > 0 and when(kwargs):
                cue[1] -= 1
                raise StoreError(f"{name} (injected fault)", transient=False)
        return attribute(*args, **kwargs)

    return maybe_fail


class _FlakyRepository:
    """A repository whose ``<repository>.<method>`` cues fail (``fail("batches.open")``)."""

    def __init__(self, prefix: str, repository: Any) -> None:
        self._prefix, self._repository = prefix, repository

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._repository, name)
        qualified = f"{self._prefix}.{name}"
        return _flaky(qualified, attribute) if qualified in _CUES else attribute


class FlakyStore(Store):
    """``fail("finish_execution")`` fails the facade's method; ``fail("batches.open")`` a
    repository's."""

    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if any(cue.startswith(name + ".") for cue in _CUES):
            return _FlakyRepository(name, attribute)
        if name not in _CUES or not callable(attribute):
            return attribute
        return _flaky(name, attribute)


class FlakyStoreResource(OrchestratorStore):
    def get(self) -> Store:
        return FlakyStore(self.database_url or self.settings().database_url)
