"""Child executions started by a running one (the ``trigger`` block, or any block through
:meth:`BlockContext.spawn_child`), admitted over the execution's store.

The child is admitted like any trigger (:class:`~orchestrator.services.triggers.IngestService`):
``parent_execution_id`` is the running execution, ``source`` is ``child``, ``request_id`` is the
parent's (one request id follows the whole tree), and it bypasses the burst gate.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from orchestrator.domain.correlation import Source
from orchestrator.execution.blocks import BlockContext, ChildTrigger
from orchestrator.services.triggers import IngestService, TriggerInput
from orchestrator.store import Store


class StoreChildren:
    """:class:`~orchestrator.execution.blocks.Children` over the store the parent is logged in."""

    def __init__(self, store: Store) -> None:
        self._store = store

    def spawn(self, parent: BlockContext, child: ChildTrigger, now: datetime
              ) -> Mapping[str, Any]:
        item = TriggerInput(payload=dict(child.payload), idempotency_key=child.idempotency_key,
                            idempotency_ttl=child.idempotency_ttl,
                            parent_execution_id=parent.execution_id)
        [admission] = IngestService(self._store.admission).trigger(
            environment=parent.environment, workflow=child.workflow, items=[item],
            request_id=parent.request_id, source=Source.CHILD, now=now)
        return admission.body()
