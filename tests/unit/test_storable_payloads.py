"""``storable`` / ``storable_json`` / ``storable_text`` (``orchestrator.domain.payloads``): what
the store writes for anything a block or a provider returns.

Properties, for arbitrary values (any Unicode including lone surrogates and NUL, NaN/Infinity,
integers past Python's 4300-digit limit, bytes, sets, tuples, non-str keys, cycles, deep
nesting): it never raises and never changes its input; the result is JSON that the input check
(``unstorable``) accepts, that Python's strict JSON writes and reads back unchanged, that is
nested at most ``MAX_DEPTH`` deep, and that ``storable`` leaves as it is; the size is the
compact UTF-8 JSON's.
"""

from __future__ import annotations

import json
import math
import os
import pickle
from datetime import UTC, date, datetime, time
from enum import Enum
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from orchestrator.domain.payloads import (
    MAX_DEPTH,
    json_size,
    storable,
    storable_json,
    storable_text,
    unstorable,
)

FFFD = "\ufffd"
FUZZ = settings(max_examples=int(os.environ.get("FUZZ_EXAMPLES", "300")), deadline=None,
                suppress_health_check=[HealthCheck.too_slow])

def _power_of_ten(digits: int) -> int:
    """10 ** |digits|, negative for a negative ``digits`` (an integer hypothesis cannot print)."""
    return (1 if digits > 0 else -1) * 10 ** abs(digits)


any_text = st.text(st.characters(exclude_categories=()), max_size=12)  # surrogates and NUL too
nasty_text = st.one_of(any_text, st.sampled_from(["\x00", "\ud800", "a\udfffb", "\ud83d\ude00",
                                                  "e+1", "-0.0", "\\u0000"]))
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.sampled_from([5000, -4400]).map(_power_of_ten),
    st.floats(), st.sampled_from([1e16, -1e20, -0.0, 1.5e-300, 9999999999999998.0]),
    nasty_text, st.binary(max_size=8),
    st.sampled_from([datetime(2030, 1, 1, tzinfo=UTC), date(2030, 1, 2), time(3, 4)]))
keys = st.one_of(nasty_text, st.integers(), st.none(), st.booleans(), st.floats(),
                 st.tuples(st.integers(), st.integers()))
values = st.recursive(
    scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.tuples(inner, inner),
        st.frozensets(st.one_of(st.integers(), any_text), max_size=4),
        st.dictionaries(keys, inner, max_size=4)),
    max_leaves=20)


def _depth(value: Any) -> int:
    if isinstance(value, dict):
        return 1 + max((_depth(v) for v in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((_depth(v) for v in value), default=0)
    return 0


def _assert_storable(result: Any) -> None:
    assert unstorable(result, "value") is None  # the input check accepts it
    text = json.dumps(result, allow_nan=False)  # strict JSON writes it
    assert json.loads(text) == result  # and it comes back as it was
    assert _depth(result) <= MAX_DEPTH
    assert storable_json(result) == result  # already storable: left as it is


@FUZZ
@given(values)
def test_any_value_becomes_storable_json_without_touching_the_input(value: Any) -> None:
    before = pickle.dumps(value)  # (repr cannot print an integer of 5000 digits)
    stored = storable(value)
    assert pickle.dumps(value) == before
    _assert_storable(stored.value)
    assert stored.size == len(json.dumps(stored.value, ensure_ascii=False,
                                         separators=(",", ":")).encode("utf-8"))
    assert stored.size == json_size(stored.value)


@FUZZ
@given(any_text)
def test_any_text_becomes_storable_text(text: str) -> None:
    stored = storable_text(text)
    assert "\x00" not in stored
    stored.encode("utf-8")  # no unpaired surrogate left
    assert storable_text(stored) == stored
    if "\x00" not in text and not any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        assert stored == text  # valid text is kept as it is


@pytest.mark.parametrize(("value", "expected"), [
    ("a\x00b", f"a{FFFD}b"),
    ("x\ud800y", f"x{FFFD}y"),
    ("\ud83d\ude00", "\U0001f600"),  # a surrogate pair is the character it encodes
    ("\udfff\ud800", f"{FFFD}{FFFD}"),  # in the wrong order: two unpaired ones
    (math.nan, None), (math.inf, None), (-math.inf, None),
    (-0.0, 0.0), (1e16, 10 ** 16), (-1e20, -(10 ** 20)), (1.5, 1.5),
    (9999999999999998.0, 9999999999999998.0), (1e-7, 1e-7),
    (b"\xe2\x82\xac\x00\xff", f"\u20ac{FFFD}{FFFD}"),
    ({3, 1, 2}, [1, 2, 3]), ((1, "a"), [1, "a"]),
    ({1: "a", None: "b", False: "c", 2.5: "d", (1, 2): "e"},
     {"1": "a", "null": "b", "false": "c", "2.5": "d", "(1, 2)": "e"}),
    ({"k\x00": {"\ud800": 1}}, {f"k{FFFD}": {FFFD: 1}}),
    (datetime(2030, 1, 15, 12, 0, 30, tzinfo=UTC), "2030-01-15T12:00:30+00:00"),
])
def test_the_rule_for_each_kind_of_value(value: Any, expected: Any) -> None:
    result = storable_json(value)
    assert result == expected and type(result) is type(expected)


def test_integers_of_up_to_4300_digits_are_kept_longer_ones_named() -> None:
    # (not parametrized: pytest cannot name a test after an integer it cannot print)
    assert storable_json([10 ** 4299, -(10 ** 4299)]) == [10 ** 4299, -(10 ** 4299)]
    assert storable_json({10 ** 4300: -(10 ** 4300)}) == {
        "<integer of more than 4300 digits>": "<integer of more than 4300 digits>"}


def test_enums_are_their_values() -> None:
    class Color(Enum):
        RED = (255, 0, 0)

    class Name(str, Enum):
        ADA = "ada"

    assert storable_json({"c": Color.RED, "n": Name.ADA}) == {"c": [255, 0, 0], "n": "ada"}
    assert type(storable_json(Name.ADA)) is str


def test_other_objects_are_their_text_and_a_failing_str_is_named() -> None:
    class Point:
        def __str__(self) -> str:
            return "Point(1, 2)\x00"

    class Broken:
        def __str__(self) -> str:
            raise RuntimeError

    assert storable_json([Point(), Broken()]) == [
        f"Point(1, 2){FFFD}", "<Broken that cannot be shown as text>"]


def test_deep_nesting_is_cut_at_max_depth_and_cycles_are_named() -> None:
    value: Any = "x"
    for _ in range(5000):
        value = {"a": value}
    result = storable_json(value)
    assert _depth(result) == MAX_DEPTH
    inner = result
    for _ in range(MAX_DEPTH - 1):
        inner = inner["a"]
    assert inner == {"a": f"<dict nested deeper than {MAX_DEPTH} levels>"}

    cycle: dict[str, Any] = {"name": "loop"}
    cycle["self"] = [cycle]
    shared = [1]
    assert storable_json(cycle) == {"name": "loop", "self": ["<circular reference>"]}
    assert storable_json([shared, shared]) == [[1], [1]]  # shared is not circular


def test_a_mapping_whose_own_code_raises_is_shown_as_text() -> None:
    class Odd(dict):  # type: ignore[type-arg]
        def items(self):  # type: ignore[override]
            raise KeyError("boom")

        def __str__(self) -> str:
            return "Odd()"

    assert storable_json({"odd": Odd(a=1)}) == {"odd": "Odd()"}


def test_text_limit_notes_the_full_length() -> None:
    assert storable_text("abcdef", limit=3) == "abc… (6 characters in all)"
    assert storable_text("abc", limit=3) == "abc"


def test_size_is_compact_utf8_json() -> None:
    assert storable({"a": [1, "é"]}).size == len('{"a":[1,"é"]}'.encode())
    assert storable("x" * 10).size == 12
