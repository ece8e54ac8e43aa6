"""JSON values users send (payloads, request bodies, workflow documents): parsed, and checked
for what every store can hold. Python's JSON accepts values that PostgreSQL's jsonb and text
columns refuse (a NUL character, an unpaired surrogate, NaN/Infinity/1e999) and integers too
long for Python itself; each is refused up front, naming where it is, instead of failing the
write as a store error."""

from __future__ import annotations

import json
import math
from typing import Any

from orchestrator.exceptions import Problem


class TooLong:
    """Stands for an integer literal past Python's digit limit until it is reported."""


def load_json(text: str | bytes) -> Any:
    """``json.loads``, with an integer of thousands of digits kept as a :class:`TooLong` marker
    (reported by :func:`unstorable`) instead of raising. Raises ``json.JSONDecodeError``,
    ``UnicodeDecodeError`` and ``RecursionError`` (nested too deeply)."""
    return json.loads(text, parse_int=_int_or_marker)


def _int_or_marker(literal: str) -> int | TooLong:
    try:
        return int(literal)
    except ValueError:  # more than sys.get_int_max_str_digits() digits
        return TooLong()


def unstorable(value: Any, root: str | None = None, *, brackets: bool = False
               ) -> Problem | None:
    """The first value under ``root`` that no store can keep, as a :class:`Problem` naming its
    path (``root.a.0``; ``root.a[0]`` with ``brackets``; from the top keys without ``root``).
    Iterative: values nest as deep as the JSON parser allows."""
    stack: list[tuple[tuple[str | int, ...], Any]] = [(() if root is None else (root,), value)]
    while stack:
        path, item = stack.pop()
        if isinstance(item, dict):
            for key, child in item.items():
                if _bad_text(str(key)):
                    return Problem(field=_path((*path, str(key)), brackets),
                                   message="the name has a NUL character or an unpaired "
                                           "surrogate; use valid Unicode text")
                stack.append(((*path, str(key)), child))
        elif isinstance(item, list | tuple):
            stack.extend(((*path, i), child) for i, child in enumerate(item))
        elif isinstance(item, str) and _bad_text(item):
            return Problem(field=_path(path, brackets), message="has a NUL character or an "
                           "unpaired surrogate; use valid Unicode text")
        elif isinstance(item, float) and not math.isfinite(item):
            return Problem(field=_path(path, brackets), message="must be a finite number")
        elif isinstance(item, TooLong):
            return Problem(field=_path(path, brackets), message="is a number with too many "
                                                                "digits")
    return None


def _bad_text(text: str) -> bool:
    if "\x00" in text:
        return True
    if text.isascii():
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def _path(parts: tuple[str | int, ...], brackets: bool) -> str:
    """Dotted (``a.b.0``) or with list indices in brackets (``a.b[0]``); names that cannot be
    shown as text are escaped; an empty or blank name is quoted."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]" if brackets else f"{'.' if out else ''}{part}"
            continue
        out += f"{'.' if out else ''}{field_name(part)}"
    return out or "(value)"


def field_name(name: str) -> str:
    """A name as a field shows it: escaped (as ``ascii``) when it cannot be shown as text,
    quoted when empty or blank."""
    shown = ascii(name)[1:-1] if _bad_text(name) else name
    return shown if shown.strip() else repr(shown)
