"""What a block may do (``BlockContext``): read the execution's clock, log with its correlation,
spawn a child. The ``trigger`` block does all of it through the context, never the store or the
wall clock; here with a recording ``Children`` and a frozen clock, no database."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from orchestrator.exceptions import NotFound, WorkflowError
from orchestrator.execution.blocks import BlockContext, ChildTrigger
from orchestrator.execution.trigger_block import trigger_block

FROZEN = datetime(2031, 6, 1, 8, 30, tzinfo=UTC)


@dataclass
class RecordingChildren:
    spawned: list[tuple[str, ChildTrigger, datetime]] = field(default_factory=list)
    unknown: set[str] = field(default_factory=set)

    def spawn(self, parent: BlockContext, child: ChildTrigger, now: datetime
              ) -> Mapping[str, Any]:
        if child.workflow in self.unknown:
            raise NotFound("workflow", child.workflow)
        self.spawned.append((parent.execution_id, child, now))
        return {"execution_id": "child-1", "request_id": parent.request_id, "status": "queued",
                "deduplicated": False}


def _context(children: RecordingChildren | None) -> BlockContext:
    return BlockContext(execution_id="exe-1", block_id="spawn", workflow="parent",
                        environment="acme", request_id="req-1", clock=lambda: FROZEN,
                        children=children)


def test_a_block_context_offers_no_store() -> None:
    assert {f.name for f in fields(BlockContext)} == {
        "execution_id", "block_id", "workflow", "environment", "request_id", "clock",
        "children"}


def test_trigger_block_spawns_through_the_context_at_the_injected_time() -> None:
    children = RecordingChildren()
    answer = trigger_block({"workflow": "child", "payload": {"n": 1},
                            "idempotency_key": "k-1", "idempotency_ttl": "1h"},
                           _context(children))
    assert answer == {"execution_id": "child-1", "request_id": "req-1", "status": "queued",
                      "deduplicated": False}
    [(parent, child, now)] = children.spawned
    assert (parent, now) == ("exe-1", FROZEN)
    assert child == ChildTrigger(workflow="child", payload={"n": 1}, idempotency_key="k-1",
                                 idempotency_ttl=timedelta(hours=1))


def test_an_unknown_child_workflow_is_the_workflows_error() -> None:
    children = RecordingChildren(unknown={"nope"})
    with pytest.raises(WorkflowError, match="`workflow`: no workflow 'nope' in environment "
                                            "'acme'"):
        trigger_block({"workflow": "nope"}, _context(children))


def test_outside_an_execution_spawning_is_refused_naming_the_block() -> None:
    with pytest.raises(WorkflowError, match="block `spawn`: a child execution can be started "
                                            "only inside an execution"):
        trigger_block({"workflow": "child"}, _context(None))


def test_context_log_lines_carry_the_correlation(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="orchestrator.execution.blocks"):
        _context(None).log.info("hello %s", "there")
    [record] = caplog.records
    assert record.getMessage() == "hello there"
    assert (record.execution_id, record.request_id, record.block_id) == \
        ("exe-1", "req-1", "spawn")
