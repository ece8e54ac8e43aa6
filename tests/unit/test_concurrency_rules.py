"""The concurrency rules as plain functions: which waiting executions may run (in order, a
holder of a slot always, each limit taking a place), and a workflow's ``concurrency`` field."""

from __future__ import annotations

import pytest

from orchestrator.domain.concurrency import Candidate, grantable, key_limit, parse_limit
from orchestrator.domain.workflow import parse_workflow
from orchestrator.exceptions import InvalidInput


def _c(i: str, env: str = "a", key: str | None = None, held: bool = False) -> Candidate:
    return Candidate(execution_id=i, environment=env, workflow="w", concurrency_key=key,
                     holds_slot=held)


def test_grant_in_order_within_every_limit() -> None:
    waiting = [_c("1", key="k"), _c("2", key="k"), _c("3"), _c("4", env="b"), _c("5"),
               _c("6", held=True)]
    assert grantable(waiting, env_limits={"a": 3}, key_limits={("a", "w"): 1},
                     env_in_flight={"a": 1}, key_in_flight={}) == ["1", "3", "4", "6"]
    # a key full already: its executions wait; the environment's place goes to the next
    assert grantable(waiting[:3], env_limits={"a": 1}, key_limits={},
                     env_in_flight={}, key_in_flight={("a", "w", "k"): 1}) == ["3"]


@pytest.mark.parametrize("value", [0, -1, 10_001, "two", 1.5, True, None])
def test_a_limit_is_a_whole_number_from_1_to_10000(value: object) -> None:
    with pytest.raises(ValueError, match="from 1 to 10000"):
        parse_limit(value)


def test_a_workflows_concurrency_field_is_validated_with_the_document() -> None:
    doc = {"name": "w", "blocks": [{"id": "a", "type": "transform", "with": {}}]}
    assert key_limit(parse_workflow({**doc, "concurrency": {"key_limit": 3}},
                                    ["transform"]).document) == 3
    assert key_limit(parse_workflow(doc, ["transform"]).document) == 1
    for bad, field in (({"key_limit": 0}, "concurrency.key_limit"),
                       ({"key_limit": "2"}, "concurrency.key_limit"),
                       ({"limit": 2}, "concurrency.limit"), (5, "concurrency")):
        with pytest.raises(InvalidInput) as caught:
            parse_workflow({**doc, "concurrency": bad}, ["transform"])
        assert [p.field for p in caught.value.problems] == [field]
