"""Block types. Built-ins: ``transform`` (outputs its resolved inputs), ``python`` (calls a
callable registered in code by name; never an import path taken from a document), ``http``
(:mod:`orchestrator.execution.http_block`) and ``trigger``
(:mod:`orchestrator.execution.trigger_block`, starts another workflow as a child execution).

Custom block types register in code::

    from orchestrator.execution.blocks import register_block_type

    @register_block_type("uppercase")
    def uppercase(inputs, context):
        return {"text": str(inputs["text"]).upper()}
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from orchestrator.exceptions import WorkflowError
from orchestrator.store import Store


@dataclass(frozen=True, kw_only=True)
class BlockContext:
    """What a block knows about the execution running it. The core sets ``store`` (the store the
    execution is logged in) and ``request_id``; a block that reaches the store (``trigger``)
    uses them, others ignore them."""

    execution_id: str
    block_id: str
    workflow: str
    environment: str
    request_id: str | None = None
    store: Store | None = None


BlockFunction = Callable[[dict[str, Any], BlockContext], Any]
_BLOCK_TYPES: dict[str, BlockFunction] = {}
_PYTHON_CALLABLES: dict[str, Callable[..., Any]] = {}


def register_block_type(name: str) -> Callable[[BlockFunction], BlockFunction]:
    def decorate(fn: BlockFunction) -> BlockFunction:
        _BLOCK_TYPES[name] = fn
        return fn

    return decorate


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
