"""``{{ path }}`` references inside block inputs.

A reference's first segment names its root: ``trigger`` or an earlier block's id. A string that is
exactly one reference resolves to the referenced value itself (a number stays a number); a
reference embedded in a longer string is rendered into it as text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from typing import Any

from orchestrator.exceptions import WorkflowError

REFERENCE = re.compile(r"\{\{\s*([^{}]+?)\s*\}\}")
_WHOLE = re.compile(r"^\s*\{\{\s*([^{}]+?)\s*\}\}\s*$")


def references(value: Any) -> Iterator[str]:
    """Every reference path inside ``value`` (strings, lists and mappings, recursively)."""
    if isinstance(value, str):
        for match in REFERENCE.finditer(value):
            yield match.group(1)
    elif isinstance(value, Mapping):
        for item in value.values():
            yield from references(item)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from references(item)


def root_of(path: str) -> str:
    return path.split(".", 1)[0].strip()


def lookup(path: str, scope: Mapping[str, Any], *, block_id: str | None = None) -> Any:
    """The value at dotted ``path`` in ``scope``; a missing segment is a user error naming it."""
    parts = [p.strip() for p in path.split(".")]
    current: Any = scope
    walked: list[str] = []
    for part in parts:
        walked.append(part)
        if isinstance(current, Mapping) and part in current:
            current = current[part]
        elif isinstance(current, list) and part.isascii() and part.isdigit() \
                and int(part) < len(current):
            current = current[int(part)]
        else:
            where = ".".join(walked[:-1]) or "the workflow"
            available = sorted(current.keys()) if isinstance(current, Mapping) else []
            hint = f"; available: {', '.join(map(str, available))}" if available else ""
            raise WorkflowError(
                f"reference {{{{ {path} }}}}: {where} has no field {part!r}{hint}",
                block_id=block_id,
            )
    return current


def render(value: Any, scope: Mapping[str, Any], *, block_id: str | None = None) -> Any:
    """``value`` with every reference resolved against ``scope``."""
    if isinstance(value, str):
        whole = _WHOLE.match(value)
        if whole:
            return lookup(whole.group(1), scope, block_id=block_id)

        def text(match: re.Match[str]) -> str:
            found = lookup(match.group(1), scope, block_id=block_id)
            return found if isinstance(found, str) else json.dumps(found, default=str)

        return REFERENCE.sub(text, value)
    if isinstance(value, Mapping):
        return {k: render(v, scope, block_id=block_id) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, scope, block_id=block_id) for v in value]
    return value
