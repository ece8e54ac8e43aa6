"""The SQL store: every database operation, in domain terms. SQLite (embedded default) or
PostgreSQL; driver exceptions are translated here into :class:`~orchestrator.exceptions.StoreError`.
"""

from __future__ import annotations

from orchestrator.store.store import Store

__all__ = ["Store"]
