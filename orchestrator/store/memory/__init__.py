"""The in-memory store (work in progress)."""

from __future__ import annotations

from typing import Any


def memory_state(url: str) -> Any:
    raise NotImplementedError(url)


def open_memory(store: Any, state: Any) -> None:
    raise NotImplementedError
