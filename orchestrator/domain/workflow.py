"""Workflow documents: parsing and whole-document validation.

A document is validated completely before anything is written; every problem is reported at
once, each naming its field (``blocks[2].type``) and what is allowed.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from orchestrator.domain.concurrency import workflow_concurrency_problems
from orchestrator.domain.payloads import unstorable
from orchestrator.domain.templating import references, root_of
from orchestrator.exceptions import InvalidInput, Problem

NAME_PATTERN = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
BLOCK_ID_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")
DEFAULT_ENVIRONMENT = "default"
DEFAULT_TIMEOUT_SECONDS = 300
MAX_TIMEOUT_SECONDS = 24 * 3600
TRIGGER_ROOT = "trigger"
_KNOWN_KEYS = {"name", "environment", "timeout_seconds", "blocks", "fail_run_on_user_error",
               "batch", "description", "concurrency"}
_BLOCK_KEYS = {"id", "type", "with", "depends_on"}


@dataclass(frozen=True, kw_only=True)
class BlockSpec:
    id: str
    type: str
    inputs: dict[str, Any] = field(default_factory=dict)
    depends_on: tuple[str, ...] = ()


@dataclass(frozen=True, kw_only=True)
class WorkflowSpec:
    """A validated workflow document. ``blocks`` are in a valid execution order."""

    name: str
    environment: str
    timeout_seconds: int
    fail_run_on_user_error: bool
    blocks: tuple[BlockSpec, ...]
    document: dict[str, Any]
    # False: every execution gets a Dagster run of its own, even when triggers pile up.
    batch: bool = True

    @property
    def digest(self) -> str:
        canonical = json.dumps(self.document, sort_keys=True, separators=(",", ":"))
        return hashlib.sha256(canonical.encode()).hexdigest()


def validate_name(value: Any, field_name: str) -> list[Problem]:
    if not isinstance(value, str) or not NAME_PATTERN.match(value):
        return [Problem(field=field_name, message=f"{value!r} is not allowed; use 1-64 of a-z, "
                        "0-9, '_' and '-', starting with a letter or digit")]
    return []


def _key_label(key: Any) -> str:
    """How a document's key is named in a problem: as written, or quoted when it would read as
    nothing (an empty or blank key)."""
    text = str(key)
    return text if text.strip() else repr(text)


def parse_workflow(document: Any, block_types: Collection[str]) -> WorkflowSpec:
    """Validate ``document`` against the registered ``block_types``; raise :class:`InvalidInput`
    listing every problem."""
    if not isinstance(document, Mapping):
        raise InvalidInput(Problem(field="(document)", message="must be a mapping with name and "
                                   "blocks"), subject="workflow")
    problems: list[Problem] = []
    unfit = unstorable(document, brackets=True)
    if unfit is not None:
        problems.append(unfit)
    for key in sorted(set(document) - _KNOWN_KEYS):
        problems.append(Problem(field=_key_label(key), message="unknown field; allowed: "
                                + ", ".join(sorted(_KNOWN_KEYS))))
    name = document.get("name")
    problems += validate_name(name, "name")
    environment = document.get("environment", DEFAULT_ENVIRONMENT)
    problems += validate_name(environment, "environment")

    timeout = document.get("timeout_seconds", DEFAULT_TIMEOUT_SECONDS)
    if isinstance(timeout, bool) or not isinstance(timeout, int) or not (
        1 <= timeout <= MAX_TIMEOUT_SECONDS
    ):
        problems.append(Problem(field="timeout_seconds", message=f"{timeout!r} is not allowed; "
                                f"use a whole number of seconds from 1 to {MAX_TIMEOUT_SECONDS}"))
    fail_run = document.get("fail_run_on_user_error", False)
    if not isinstance(fail_run, bool):
        problems.append(Problem(field="fail_run_on_user_error", message="must be true or false"))
    batch = document.get("batch", True)
    if not isinstance(batch, bool):
        problems.append(Problem(field="batch", message="must be true or false"))
    problems += workflow_concurrency_problems(document)

    raw_blocks = document.get("blocks")
    blocks: list[BlockSpec] = []
    if not isinstance(raw_blocks, list) or not raw_blocks:
        problems.append(Problem(field="blocks", message="must be a non-empty list of blocks"))
        raw_blocks = []
    seen: dict[str, int] = {}
    for index, raw in enumerate(raw_blocks):
        where = f"blocks[{index}]"
        if not isinstance(raw, Mapping):
            problems.append(Problem(field=where, message="must be a mapping with id and type"))
            continue
        for key in sorted(set(raw) - _BLOCK_KEYS):
            problems.append(Problem(field=f"{where}.{_key_label(key)}",
                                    message="unknown field; allowed: "
                                    + ", ".join(sorted(_BLOCK_KEYS))))
        block_id = raw.get("id")
        if not isinstance(block_id, str) or not BLOCK_ID_PATTERN.match(block_id):
            problems.append(Problem(field=f"{where}.id", message=f"{block_id!r} is not allowed; "
                                    "use letters, digits and '_', starting with a letter or '_'"))
            continue
        if block_id == TRIGGER_ROOT:
            problems.append(Problem(field=f"{where}.id", message="'trigger' is reserved for the "
                                    "trigger's fields"))
        if block_id in seen:
            problems.append(Problem(field=f"{where}.id", message=f"duplicate block id {block_id!r}"
                                    f" (also blocks[{seen[block_id]}])"))
            continue
        seen[block_id] = index
        block_type = raw.get("type")
        if block_type not in block_types:
            problems.append(Problem(field=f"{where}.type", message=f"unknown block type "
                                    f"{block_type!r}; registered: "
                                    f"{', '.join(sorted(block_types))}"))
        inputs = raw.get("with", {})
        if not isinstance(inputs, Mapping):
            problems.append(Problem(field=f"{where}.with", message="must be a mapping of inputs"))
            inputs = {}
        depends = raw.get("depends_on", [])
        if not isinstance(depends, list) or not all(isinstance(d, str) for d in depends):
            problems.append(Problem(field=f"{where}.depends_on", message="must be a list of "
                                    "block ids"))
            depends = []
        blocks.append(BlockSpec(id=block_id, type=str(block_type), inputs=dict(inputs),
                                depends_on=tuple(depends)))

    edges: dict[str, set[str]] = {}
    for block in blocks:
        where = f"blocks[{seen[block.id]}]"
        deps: set[str] = set()
        for path in references(block.inputs):
            root = root_of(path)
            if root == TRIGGER_ROOT:
                continue
            if root == block.id:
                problems.append(Problem(field=f"{where}.with", message=f"block {block.id!r} "
                                        f"references its own output ({{{{ {path} }}}})"))
            elif root not in seen:
                problems.append(Problem(field=f"{where}.with", message=f"reference {{{{ {path} }}}}"
                                        f" names unknown block {root!r}; known: trigger, "
                                        + ", ".join(sorted(seen))))
            else:
                deps.add(root)
        for dep in block.depends_on:
            if dep not in seen:
                problems.append(Problem(field=f"{where}.depends_on", message=f"unknown block "
                                        f"{dep!r}"))
            else:
                deps.add(dep)
        edges[block.id] = deps

    order, cycle = _topological(edges, [b.id for b in blocks])
    if cycle:
        problems.append(Problem(field="blocks", message="dependency cycle: "
                                + " -> ".join([*cycle, cycle[0]])))
    if problems:
        raise InvalidInput(problems, subject=f"workflow {name!r}" if isinstance(name, str)
                           else "workflow")
    by_id = {b.id: b for b in blocks}
    return WorkflowSpec(
        name=str(name), environment=str(environment), timeout_seconds=int(timeout),
        fail_run_on_user_error=bool(fail_run), blocks=tuple(by_id[i] for i in order),
        document=dict(document) | {"environment": environment}, batch=bool(batch),
    )


def _topological(edges: dict[str, set[str]], declared: list[str]) -> tuple[list[str], list[str]]:
    """Kahn's order, stable in declaration order; on a cycle, the blocks forming one."""
    remaining = {k: set(v) for k, v in edges.items()}
    order: list[str] = []
    while True:
        ready = [b for b in declared if b in remaining and not remaining[b]]
        if not ready:
            break
        for block in ready:
            order.append(block)
            del remaining[block]
            for deps in remaining.values():
                deps.discard(block)
    if not remaining:
        return order, []
    # Walk dependencies from any blocked node until one repeats: that loop is a cycle.
    node = next(b for b in declared if b in remaining)
    path: list[str] = []
    while node not in path:
        path.append(node)
        node = sorted(remaining[node])[0]
    return order, path[path.index(node):]
