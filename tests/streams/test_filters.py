"""Filter criteria: Lambda's pattern syntax, as a table of pattern, data and verdict."""

from __future__ import annotations

import json
from typing import Any

import pytest

from kfaas.pollers.filters import FilterPatternError, compile_filters, parse_maybe_json

CASES: list[tuple[str, dict[str, Any], dict[str, Any], bool]] = [
    ("exact string", {"value": {"type": ["image"]}}, {"value": {"type": "image"}}, True),
    ("exact miss", {"value": {"type": ["image"]}}, {"value": {"type": "video"}}, False),
    ("OR in a list", {"value": {"type": ["a", "b"]}}, {"value": {"type": "b"}}, True),
    ("number compared as number", {"value": {"n": [5]}}, {"value": {"n": 5.0}}, True),
    ("string is not number", {"value": {"n": [5]}}, {"value": {"n": "5"}}, False),
    ("boolean", {"value": {"ok": [True]}}, {"value": {"ok": True}}, True),
    ("1 is not true", {"value": {"ok": [True]}}, {"value": {"ok": 1}}, False),
    ("null", {"value": {"x": [None]}}, {"value": {"x": None}}, True),
    ("null needs the field", {"value": {"x": [None]}}, {"value": {}}, False),
    ("prefix", {"key": [{"prefix": "user-"}]}, {"key": "user-42"}, True),
    ("prefix miss", {"key": [{"prefix": "user-"}]}, {"key": "admin-1"}, False),
    ("suffix", {"body": [{"suffix": ".png"}]}, {"body": "a.png"}, True),
    ("ignore case", {"body": [{"equals-ignore-case": "HeLLo"}]}, {"body": "hello"}, True),
    ("anything-but value", {"v": {"s": [{"anything-but": "x"}]}}, {"v": {"s": "y"}}, True),
    ("anything-but hit", {"v": {"s": [{"anything-but": ["x", "y"]}]}}, {"v": {"s": "y"}}, False),
    ("anything-but needs field", {"v": {"s": [{"anything-but": "x"}]}}, {"v": {}}, False),
    ("anything-but prefix", {"k": [{"anything-but": {"prefix": "a"}}]}, {"k": "ba"}, True),
    ("anything-but prefix hit", {"k": [{"anything-but": {"prefix": "a"}}]}, {"k": "ab"}, False),
    ("numeric range", {"v": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, {"v": {"n": 5}}, True),
    ("numeric out", {"v": {"n": [{"numeric": [">", 0, "<=", 5]}]}}, {"v": {"n": 0}}, False),
    ("numeric equals", {"v": {"n": [{"numeric": ["=", 3]}]}}, {"v": {"n": 3}}, True),
    ("numeric on text", {"v": {"n": [{"numeric": [">", 0]}]}}, {"v": {"n": "7"}}, False),
    ("exists", {"v": {"id": [{"exists": True}]}}, {"v": {"id": 0}}, True),
    ("exists miss", {"v": {"id": [{"exists": True}]}}, {"v": {}}, False),
    ("exists false", {"v": {"id": [{"exists": False}]}}, {"v": {}}, True),
    ("exists false hit", {"v": {"id": [{"exists": False}]}}, {"v": {"id": 1}}, False),
    ("list in data: any element", {"v": {"tags": ["b"]}}, {"v": {"tags": ["a", "b"]}}, True),
    ("list in data: none", {"v": {"tags": ["c"]}}, {"v": {"tags": ["a", "b"]}}, False),
    ("all fields must match", {"k": ["a"], "v": ["b"]}, {"k": "a", "v": "c"}, False),
    ("nested on non-object", {"value": {"type": ["x"]}}, {"value": "plain text"}, False),
    ("plain text value", {"value": [{"prefix": "ERR"}]}, {"value": "ERROR: disk"}, True),
]


@pytest.mark.parametrize(
    ("pattern", "data", "expected"),
    [case[1:] for case in CASES],
    ids=[case[0] for case in CASES],
)
def test_pattern(pattern: dict[str, Any], data: dict[str, Any], expected: bool) -> None:
    assert compile_filters([json.dumps(pattern)]).matches(data) is expected


def test_any_of_several_filters_matches() -> None:
    criteria = compile_filters(['{"k": ["a"]}', '{"k": ["b"]}'])
    assert criteria.matches({"k": "b"})
    assert not criteria.matches({"k": "c"})


def test_no_filters_match_everything() -> None:
    criteria = compile_filters([])
    assert not criteria.active
    assert criteria.matches({"anything": 1})


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        ("not json", "filters[0]: pattern is not JSON"),
        ("[]", "must be a non-empty JSON object"),
        ('{"k": "a"}', "k: must be a non-empty list of values or an object"),
        ('{"k": []}', "k: must be a non-empty list"),
        ('{"k": [{"wildcard": "*"}]}', 'k: unknown matcher "wildcard"'),
        ('{"k": [{"numeric": [">"]}]}', "operator, number pairs"),
        ('{"k": [{"numeric": ["~", 1]}]}', "is not an operator"),
        ('{"k": [{"prefix": 1}]}', '"prefix" takes a string'),
        ('{"k": [{"exists": "yes"}]}', '"exists" takes true or false'),
        ('{"k": [{"prefix": "a", "suffix": "b"}]}', "exactly one operator"),
        ('{"k": [["a"]]}', "lists cannot be nested"),
    ],
)
def test_invalid_patterns_are_refused_with_a_reason(pattern: str, message: str) -> None:
    with pytest.raises(FilterPatternError, match=message.replace("[", r"\[").replace("]", r"\]")):
        compile_filters([pattern])


def test_at_most_five_filters() -> None:
    with pytest.raises(FilterPatternError, match="at most 5"):
        compile_filters(['{"k": ["a"]}'] * 6)


def test_payloads_are_json_when_they_are_json() -> None:
    assert parse_maybe_json(b'{"a": 1}') == {"a": 1}
    assert parse_maybe_json(b"hello") == "hello"
    assert parse_maybe_json("12") == 12
    assert parse_maybe_json(None) is None
