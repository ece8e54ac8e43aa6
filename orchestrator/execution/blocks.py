"""Block types. Built-ins: ``transform`` (outputs its resolved inputs), ``python`` (calls a
callable registered in code by name; never an import path taken from a document), ``http``
(:mod:`orchestrator.execution.http_block`) and ``trigger``
(:mod:`orchestrator.execution.trigger_block`, starts another workflow as a child execution).

Custom block types register in code::

    from orchestrator.execution.blocks import register_block_type

    @register_block_type("uppercase")
    def uppercase(inputs, context):
        context.log.info("uppercasing %d characters", len(inputs["text"]))
        return {"text": str(inputs["text"]).upper(), "at": context.now().isoformat()}

A block gets its resolved inputs and a :class:`BlockContext`: which execution and block it runs
in, the execution's clock (``context.now()``), a logger whose lines carry the execution's
correlation (``context.log``) and ``context.spawn_child(...)`` to start another workflow of the
same environment as a child execution. That is all a block may do to the system: it never sees
the store.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Protocol

from orchestrator.domain.ingest import DEFAULT_IDEMPOTENCY_TTL
from orchestrator.exceptions import InvalidInput, Problem, WorkflowError

log = logging.getLogger(__name__)
Clock = Callable[[], datetime]


def _utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, kw_only=True)
class ChildTrigger:
    """A child execution a block asks for: a workflow of the parent's environment, its payload
    and, optionally, an idempotency key (while it holds, asking again answers the same child)."""

    workflow: str
    payload: Mapping[str, Any] = field(default_factory=dict)
    idempotency_key: str | None = None
    idempotency_ttl: timedelta = DEFAULT_IDEMPOTENCY_TTL


class Children(Protocol):
    """Starts child executions for a running one (the core passes one over its store)."""

    def spawn(self, parent: BlockContext, child: ChildTrigger, now: datetime
              ) -> Mapping[str, Any]:
        """Admit ``child`` as a trigger of ``parent``; answers ``{execution_id, request_id,
        status, deduplicated}``. Raises ``NotFound`` for an unknown workflow and
        ``InvalidInput`` for a child the trigger rules refuse."""
        ...


@dataclass(frozen=True, kw_only=True)
class BlockContext:
    """What a block knows about the execution running it and may do: read the execution's
    clock, log with its correlation, spawn a child execution. The core sets ``clock`` and
    ``children``; without ``children`` (a block run outside an execution) spawning is refused."""

    execution_id: str
    block_id: str
    workflow: str
    environment: str
    request_id: str | None = None
    clock: Clock = _utc_now
    children: Children | None = field(default=None, repr=False)

    def now(self) -> datetime:
        """The execution's clock (injected; tests freeze it)."""
        return self.clock()

    @property
    def log(self) -> logging.LoggerAdapter[logging.Logger]:
        """A logger whose lines carry ``execution_id``, ``request_id`` and ``block_id``."""
        return logging.LoggerAdapter(log, {"execution_id": self.execution_id,
                                           "request_id": self.request_id,
                                           "block_id": self.block_id})

    def spawn_child(self, child: ChildTrigger) -> Mapping[str, Any]:
        """Start ``child`` as a child execution of this one (queued; the parent does not wait)."""
        if self.children is None:
            raise WorkflowError(f"block `{self.block_id}`: a child execution can be started "
                                "only inside an execution", block_id=self.block_id)
        return self.children.spawn(self, child, self.now())


BlockFunction = Callable[[dict[str, Any], BlockContext], Any]
_BLOCK_TYPES: dict[str, BlockFunction] = {}
_PYTHON_CALLABLES: dict[str, Callable[..., Any]] = {}


def register_block_type(name: str) -> Callable[[BlockFunction], BlockFunction]:
    def decorate(fn: BlockFunction) -> BlockFunction:
        _BLOCK_TYPES[name] = fn
        return fn

    return decorate


def import_block_modules(modules: Iterable[str]) -> None:
    """Import the modules that register block types of their own (``ORCHESTRATOR_BLOCK_MODULES``;
    each calls :func:`register_block_type` when imported). A module that cannot be imported is
    bad input naming the setting, never a stack trace."""
    for name in sorted(modules):
        try:
            importlib.import_module(name)
        except Exception as exc:
            detail = str(exc) if isinstance(exc, ImportError) else f"it raised {type(exc).__name__}"
            raise InvalidInput(Problem(
                field="ORCHESTRATOR_BLOCK_MODULES",
                message=f"module {name!r} could not be imported ({detail}); list importable "
                        "modules, comma-separated"), subject="settings") from None


def register_callable(name: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Make ``fn`` callable from a ``python`` block as ``with: {callable: name, ...}``."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        _PYTHON_CALLABLES[name] = fn
        return fn

    return decorate


def block_types() -> Mapping[str, BlockFunction]:
    return dict(_BLOCK_TYPES)


def require(inputs: Mapping[str, Any], field: str, context: BlockContext) -> Any:
    if field not in inputs or inputs[field] is None:
        raise WorkflowError(f"block `{context.block_id}` is missing required field `{field}`",
                            block_id=context.block_id)
    return inputs[field]


@register_block_type("transform")
def _transform(inputs: dict[str, Any], context: BlockContext) -> Any:
    return inputs


@register_block_type("python")
def _python(inputs: dict[str, Any], context: BlockContext) -> Any:
    name = require(inputs, "callable", context)
    fn = _PYTHON_CALLABLES.get(name)
    if fn is None:
        raise WorkflowError(f"block `{context.block_id}`: no callable registered as {name!r}; "
                            f"registered: {', '.join(sorted(_PYTHON_CALLABLES)) or 'none'}",
                            block_id=context.block_id)
    arguments = {k: v for k, v in inputs.items() if k != "callable"}
    return fn(**arguments)
