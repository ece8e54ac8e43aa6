"""The in-memory store: every repository of :mod:`orchestrator.store.interfaces`, on Python
dicts, shipped in the package (like procrastinate's ``InMemoryConnector`` or APScheduler's
``MemoryDataStore``). Open it with ``Store("memory://NAME")``: one state per name per process,
so every ``Store`` (and every Dagster resource) of one process given that URL shares it.

It passes the same contract suite as SQLite and PostgreSQL (``tests/store``), and service-level
tests run on it without a database. What it cannot honour:

- **Other processes.** The state lives in one process: a daemon, a code server, a run worker
  or the CLI in another process sees nothing of it. Use SQLite or PostgreSQL for anything that
  spans processes (the end-to-end tests do).
- **Durability.** Nothing survives the process.
- **SQL itself.** There is no engine (``Store.engine`` raises ``TypeError``), no schema, no
  migrations; a database's refusals are imitated where callers rely on them (a naive datetime,
  a value JSON cannot hold, a duplicate key become ``StoreError``, as on SQLite), and
  PostgreSQL-only refusals (a NUL character in JSON) are not.
- **Concurrency.** Transactions hold one lock in turn (serializable, like SQLite's single
  writer); there is no row locking, no lock wait and no deadlock to observe.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from orchestrator.store.memory.admission import MemoryAdmission
from orchestrator.store.memory.cancellation import MemoryCancellation
from orchestrator.store.memory.catalog import MemoryAccess, MemorySchedules, MemoryWorkflows
from orchestrator.store.memory.concurrency import MemoryConcurrency
from orchestrator.store.memory.executions import MemoryAlerts, MemoryExecutions
from orchestrator.store.memory.occurrences import MemoryOccurrences
from orchestrator.store.memory.queue import MemoryBatches, MemoryQueue
from orchestrator.store.memory.retention import MemoryRetention
from orchestrator.store.memory.state import MemoryState

if TYPE_CHECKING:
    from orchestrator.store.store import Store

__all__ = ["MemoryState", "forget", "memory_state", "open_memory"]

_states: dict[str, MemoryState] = {}
_lock = threading.Lock()


def memory_state(url: str) -> MemoryState:
    """The state of ``memory://NAME`` in this process (created on first use)."""
    with _lock:
        state = _states.get(url)
        if state is None:
            state = _states[url] = MemoryState()
        return state


def forget(url: str) -> None:
    """Drop the state of ``url`` (the next ``Store(url)`` starts empty)."""
    with _lock:
        _states.pop(url, None)


def open_memory(store: Store, state: MemoryState) -> None:
    """Give ``store`` the in-memory repositories on ``state``."""
    executions = MemoryExecutions(state)
    store.workflows = workflows = MemoryWorkflows(state)
    store.schedules = MemorySchedules(state, workflows)
    store.executions = executions
    store.queue = MemoryQueue(state)
    store.batches = MemoryBatches(state)
    store.admission = MemoryAdmission(state, executions)
    store.alerts = MemoryAlerts(state)
    store.access = MemoryAccess(state, workflows)
    store.retention = MemoryRetention(state)
    store.cancellation = MemoryCancellation(state)
    store.concurrency = MemoryConcurrency(state)
    store.occurrences = MemoryOccurrences(state)
