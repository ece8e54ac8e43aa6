"""What every store can hold, in one place, for the two directions data comes in.

**Input** (payloads, request bodies, workflow documents): parsed, and checked. Python's JSON
accepts values that PostgreSQL's jsonb and text columns refuse (a NUL character, an unpaired
surrogate, NaN/Infinity/1e999) and integers too long for Python itself; each is refused up
front (:func:`unstorable`), naming where it is, instead of failing the write as a store error.

**Output** (what blocks and providers return, and the errors and alerts built from it): the
workflow already ran, so nothing is refused; it is made storable (:func:`storable_json` for
JSON columns, :func:`storable_text` for text columns), the same way on SQLite and PostgreSQL.
The store applies both to everything an execution writes (output, errors, block entries,
alerts), so no writer can hand it a value one backend refuses; the core measures each block's
output with :func:`storable` and makes an output over :data:`MAX_OUTPUT_BYTES` a user error.
"""

from __future__ import annotations

import json
import math
import numbers
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date, datetime, time
from enum import Enum
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


# ------------------------------------------------------------------------ output (made storable)

MAX_OUTPUT_BYTES = 1024 * 1024  # an execution's stored output, as compact UTF-8 JSON (= bodies)
MAX_DEPTH = 100  # arrays/objects within one another, kept as they are (MySQL's JSON limit)
MAX_MESSAGE_CHARS = 2000  # an error message a block's own exception makes
# Python's default ``sys.get_int_max_str_digits()``: longer integers cannot be written as JSON,
# nor read back, by any process with the default setting.
MAX_INT_DIGITS = 4300
REPLACEMENT = "\ufffd"  # U+FFFD REPLACEMENT CHARACTER
CIRCULAR = "<circular reference>"
_INT_BOUND = 10 ** MAX_INT_DIGITS
# A float at or above this magnitude is written by Python as 1e+16 and comes back from
# PostgreSQL's numeric as the integer 10000000000000000 (SQLite keeps the float): stored as
# that integer on both.
_FLOAT_AS_INT = 1e16
_BAD_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
_SURROGATES = re.compile("[\ud800-\udfff]")


def storable_text(text: str, *, limit: int | None = None) -> str:
    """``text`` as every text and JSON column keeps it: a NUL character and an unpaired
    surrogate each become U+FFFD (a surrogate pair becomes the character it encodes); with
    ``limit``, longer text is cut to ``limit`` characters plus a note of its full length."""
    if type(text) is not str:  # a str subclass (a str Enum): its characters, as JSON has them
        text = str.__str__(text)
    if _BAD_CHARACTERS.search(text):
        text = text.replace("\x00", REPLACEMENT)
        if _SURROGATES.search(text):
            text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    if limit is not None and len(text) > limit:
        text = f"{text[:limit]}… ({len(text):,} characters in all)"
    return text


def text_of(value: object) -> str:
    """``str(value)``, or a note naming its type when its ``__str__`` raises."""
    try:
        return str(value)
    except Exception:
        return f"<{type(value).__name__} that cannot be shown as text>"


@dataclass(frozen=True)
class Storable:
    """A value as the store keeps it, and its size."""

    value: Any
    size: int  # bytes of ``value`` as compact JSON in UTF-8


def storable(value: Any) -> Storable:
    """``value`` as JSON that SQLite and PostgreSQL both store and give back alike, with its
    size. Never raises (a value is converted, not refused), and leaves ``value`` untouched:

    - text (values and object keys): NUL and unpaired surrogates become U+FFFD;
    - NaN and ±Infinity become ``null`` (as JavaScript's ``JSON.stringify`` does); -0.0 is 0.0;
      a float of magnitude 1e16 or more becomes the integer it equals;
    - an integer of more than 4300 digits becomes the text ``<integer of more than 4300
      digits>``;
    - arrays and objects nested deeper than 100 levels: the deeper one becomes the text
      ``<list nested deeper than 100 levels>`` (or ``dict``); a value that contains itself,
      the text ``<circular reference>``;
    - not JSON: a tuple is an array; a set an array in a stable order; another mapping an
      object (keys as JSON writes them: ``1`` → ``"1"``, ``None`` → ``"null"``, others as
      text); a datetime, date or time its ISO 8601 text; bytes their UTF-8 text (invalid bytes
      U+FFFD); an Enum its value; another number (numpy's) the int or float it equals
      (Decimal its text); anything else ``str(value)``.
    """
    clean = _storable(value, 0, set())
    return Storable(clean, json_size(clean))


def storable_json(value: Any) -> Any:
    """:func:`storable` without the size: what a JSON column of the store is given."""
    return _storable(value, 0, set())


def json_size(value: Any) -> int:
    """Bytes of a :func:`storable` value as compact JSON in UTF-8."""
    return _utf8_length(_compact(value))


def _compact(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def _utf8_length(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _plain(value: Any) -> bool:
    """Whether ``value`` is a JSON scalar every store keeps as it is (checked by exact type
    first: most values of a big output are such)."""
    kind = type(value)
    if kind is str:
        return _BAD_CHARACTERS.search(value) is None
    if kind is int:
        return -_INT_BOUND < value < _INT_BOUND
    if kind is float:  # False for NaN; 0.0 takes the long way (-0.0 becomes 0.0)
        return -_FLOAT_AS_INT < value < _FLOAT_AS_INT and value != 0
    return value is None or kind is bool


def _storable(value: Any, depth: int, ancestors: set[int]) -> Any:
    kind = type(value)
    if kind is dict or kind is list:
        return _container(value, kind is dict, depth, ancestors)
    if value is None or value is True or value is False:
        return value
    if isinstance(value, str):
        return storable_text(value)
    if isinstance(value, int):
        return int(value) if -_INT_BOUND < value < _INT_BOUND else _long_int()
    if isinstance(value, float):
        return _float(float(value))
    if isinstance(value, Mapping):
        return _container(value, True, depth, ancestors)
    if isinstance(value, list | tuple | set | frozenset):
        return _container(value, False, depth, ancestors)
    try:
        if isinstance(value, numbers.Integral):  # numpy's integers, ...
            return _storable(int(value), depth, ancestors)
        if isinstance(value, numbers.Real):  # numpy's floats, fractions, ...
            return _float(float(value))
        if isinstance(value, datetime | date | time):
            return storable_text(value.isoformat())
        if isinstance(value, bytes | bytearray | memoryview):
            return storable_text(bytes(value).decode("utf-8", "replace"))
        if isinstance(value, Enum):
            return _storable(value.value, depth, ancestors)
    except Exception:
        pass  # an odd subclass: shown as text
    return storable_text(text_of(value))


def _float(value: float) -> float | int | None:
    if not math.isfinite(value):
        return None
    if value == 0:
        return 0.0
    return int(value) if abs(value) >= _FLOAT_AS_INT else value


def _container(value: Any, mapping: bool, depth: int, ancestors: set[int]) -> Any:
    if depth >= MAX_DEPTH:
        kind = "dict" if mapping else type(value).__name__
        return f"<{kind} nested deeper than {MAX_DEPTH} levels>"
    if id(value) in ancestors:
        return CIRCULAR
    ancestors.add(id(value))
    try:
        if mapping:
            out: dict[str, Any] = {}
            for key, item in value.items():
                if type(key) is not str or _BAD_CHARACTERS.search(key):
                    key = _key(key)
                out[key] = item if _plain(item) else _storable(item, depth + 1, ancestors)
            return out
        items = [item if _plain(item) else _storable(item, depth + 1, ancestors)
                 for item in value]
        if isinstance(value, set | frozenset):  # no order of its own: one for every process
            items.sort(key=lambda item: json.dumps(item, sort_keys=True))
        return items
    except Exception:  # a mapping or sequence whose own code raises: shown as text
        return storable_text(text_of(value))
    finally:
        ancestors.discard(id(value))


def _key(key: Any) -> str:
    """An object key as JSON writes it (``json.dumps`` turns 1 into "1", None into "null")."""
    if isinstance(key, str):
        return storable_text(key)
    if key is None or key is True or key is False:
        return json.dumps(key)
    if isinstance(key, int):
        return str(int(key)) if -_INT_BOUND < key < _INT_BOUND else _long_int()
    if isinstance(key, float):
        return json.dumps(float(key))  # NaN, Infinity: JSON's own spelling of such keys
    return storable_text(text_of(key))


def _long_int() -> str:
    return f"<integer of more than {MAX_INT_DIGITS} digits>"
