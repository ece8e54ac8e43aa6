"""Concurrency limits, as plain rules: an environment's ``max_concurrent`` (executions in flight
at once) and a workflow's ``concurrency.key_limit`` (executions in flight at once per
``concurrency_key`` of a trigger), and which waiting executions the dispatcher may hand to a
run now (:func:`grantable`).

"In flight" means handed to a run and not finished: running, or queued with a concurrency slot
granted or claimed by a batch run. The store counts and grants atomically
(:class:`~orchestrator.store.interfaces.ConcurrencyRepository`); this module decides.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from orchestrator.exceptions import Problem

MAX_LIMIT = 10_000
DEFAULT_KEY_LIMIT = 1  # executions sharing a key run one at a time unless the workflow says
KEY_MESSAGE = ("must be 1-200 characters: letters, digits and _ . : / - (starting with a "
               "letter or digit)")


def key_problem(value: Any, field: str) -> Problem | None:
    """The problem with a key (idempotency or concurrency key) named ``field``, or None."""
    from orchestrator.domain.schedules import KEY_PATTERN  # it imports workflow, which needs us

    if not isinstance(value, str) or not KEY_PATTERN.match(value):
        return Problem(field=field, message=KEY_MESSAGE)
    return None


def parse_limit(value: Any) -> int:
    """A limit of executions in flight: a whole number from 1 to 10000; ``ValueError`` fit for
    the user."""
    if isinstance(value, str) and value.isascii() and value.isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_LIMIT:
        raise ValueError(f"must be a whole number from 1 to {MAX_LIMIT}")
    return value


def workflow_concurrency_problems(document: Mapping[str, Any]) -> list[Problem]:
    """What is wrong with a workflow document's ``concurrency`` (``{key_limit: N}``)."""
    if "concurrency" not in document:
        return []
    value = document["concurrency"]
    if not isinstance(value, Mapping):
        return [Problem(field="concurrency", message="must be a mapping such as "
                        "{key_limit: 2}")]
    problems = [Problem(field=f"concurrency.{k}", message="is not a known field (allowed: "
                        "key_limit)") for k in value if k != "key_limit"]
    if "key_limit" in value:
        try:  # a document's number is a number: "2" is refused
            parse_limit(None if isinstance(value["key_limit"], str) else value["key_limit"])
        except ValueError as exc:
            problems.append(Problem(field="concurrency.key_limit", message=str(exc)))
    return problems


def key_limit(document: Mapping[str, Any]) -> int:
    """Executions of this workflow version in flight at once per concurrency key."""
    concurrency = document.get("concurrency")
    if isinstance(concurrency, Mapping) and isinstance(concurrency.get("key_limit"), int):
        return int(concurrency["key_limit"])
    return DEFAULT_KEY_LIMIT


@dataclass(frozen=True, kw_only=True)
class Candidate:
    """An execution waiting for a run, in dispatch order (priority, then age, fair across
    environments): where it belongs, its key, and whether it already holds a slot."""

    execution_id: str
    environment: str
    workflow: str
    concurrency_key: str | None
    holds_slot: bool = False


KeyScope = tuple[str, str, str]  # (environment, workflow, concurrency key)


def grantable(candidates: Sequence[Candidate], *, env_limits: Mapping[str, int],
              key_limits: Mapping[tuple[str, str], int], env_in_flight: Mapping[str, int],
              key_in_flight: Mapping[KeyScope, int]) -> list[str]:
    """The candidates that may run now, in order: one already holding a slot always (it is
    counted in flight); another while its environment and its key have room, taking a place of
    each. The others wait, in order, for a later tick."""
    env_free = {env: limit - env_in_flight.get(env, 0) for env, limit in env_limits.items()}
    key_free: dict[KeyScope, int] = {}
    granted = []
    for c in candidates:
        if c.holds_slot:
            granted.append(c.execution_id)
            continue
        scope = None
        if c.concurrency_key is not None:
            scope = (c.environment, c.workflow, c.concurrency_key)
            if scope not in key_free:
                limit = key_limits.get((c.environment, c.workflow), DEFAULT_KEY_LIMIT)
                key_free[scope] = limit - key_in_flight.get(scope, 0)
            if key_free[scope] <= 0:
                continue
        if c.environment in env_free:
            if env_free[c.environment] <= 0:
                continue
            env_free[c.environment] -= 1
        if scope is not None:
            key_free[scope] -= 1
        granted.append(c.execution_id)
    return granted
