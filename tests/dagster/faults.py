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


class FlakyStore(Store):
    def __getattribute__(self, name: str) -> Any:
        attribute = super().__getattribute__(name)
        if name not in _CUES or not callable(attribute):
            return attribute

        def maybe_fail(*args: Any, **kwargs: Any) -> Any:
            for cue in _CUES.get(name, []):
                when, remaining = cue
                if remaining > 0 and when(kwargs):
                    cue[1] -= 1
                    raise StoreError(f"{name} (injected fault)", transient=False)
            return attribute(*args, **kwargs)

        return maybe_fail


class FlakyStoreResource(OrchestratorStore):
    def get(self) -> Store:
        return FlakyStore(self.database_url or self.settings().database_url)
