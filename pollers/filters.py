"""Lambda's event filtering (EventBridge pattern syntax) for event source mappings, no I/O.

A mapping's `filterCriteria` holds up to five patterns; a record is delivered when any of them
matches, and records that match none are committed without being delivered. Patterns are compiled
once when the poller starts, so a pattern Lambda would reject fails the mapping at start-up with a
message naming the pattern, rather than silently filtering every record out.

Supported, as in Lambda: exact values (strings, numbers compared numerically, booleans, null),
`prefix`, `suffix`, `equals-ignore-case`, `anything-but` (a value, a list, or `{"prefix": …}`),
`numeric` ranges (`=`, `>`, `>=`, `<`, `<=`), `exists`, OR within a list and nested objects. A field
whose value is a list matches when any element does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

MAX_FILTERS = 5
_MISSING = object()

Matcher = Callable[[Any], bool]
_NUMERIC_OPERATORS: dict[str, Callable[[float, float], bool]] = {
    "=": lambda a, b: a == b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
}


class FilterPatternError(ValueError):
    """A filter pattern Lambda would reject; the message says which part and why."""


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _exact(expected: Any) -> Matcher:
    if _is_number(expected):
        return lambda value: _is_number(value) and float(value) == float(expected)
    return lambda value: (
        value is not _MISSING and type(value) is type(expected) and value == expected
    )


def _string_matcher(name: str, argument: Any, test: Callable[[str], bool]) -> Matcher:
    if not isinstance(argument, str):
        raise FilterPatternError(f'"{name}" takes a string, got {json.dumps(argument)}')
    return lambda value: isinstance(value, str) and test(value)


def _numeric(argument: Any) -> Matcher:
    if not isinstance(argument, list) or not argument or len(argument) % 2:
        raise FilterPatternError('"numeric" takes a list of operator, number pairs')
    checks: list[tuple[Callable[[float, float], bool], float]] = []
    for operator, bound in zip(argument[::2], argument[1::2], strict=True):
        if operator not in _NUMERIC_OPERATORS or not _is_number(bound):
            raise FilterPatternError(
                f'"numeric": {json.dumps(operator)} {json.dumps(bound)} is not an operator '
                "(=, >, >=, <, <=) followed by a number"
            )
        checks.append((_NUMERIC_OPERATORS[operator], float(bound)))
    return lambda value: _is_number(value) and all(op(float(value), b) for op, b in checks)


def _anything_but(argument: Any) -> Matcher:
    if isinstance(argument, Mapping):
        if set(argument) != {"prefix"}:
            raise FilterPatternError('"anything-but" takes a value, a list or {"prefix": …}')
        inner = _string_matcher("prefix", argument["prefix"], lambda v: True)
        prefix = argument["prefix"]
        return lambda value: inner(value) and not value.startswith(prefix)
    excluded = argument if isinstance(argument, list) else [argument]
    for item in excluded:
        if isinstance(item, Mapping | list):
            raise FilterPatternError('"anything-but" takes strings or numbers')
    matchers = [_exact(item) for item in excluded]
    return lambda value: value is not _MISSING and not any(m(value) for m in matchers)


def _operator(rule: Mapping[str, Any]) -> Matcher:
    if len(rule) != 1:
        raise FilterPatternError(f"a matcher has exactly one operator, got {json.dumps(rule)}")
    ((name, argument),) = rule.items()
    if name == "prefix":
        return _string_matcher(name, argument, lambda v: v.startswith(argument))
    if name == "suffix":
        return _string_matcher(name, argument, lambda v: v.endswith(argument))
    if name == "equals-ignore-case":
        lowered = str(argument).lower()
        return _string_matcher(name, argument, lambda v: v.lower() == lowered)
    if name == "anything-but":
        return _anything_but(argument)
    if name == "numeric":
        return _numeric(argument)
    if name == "exists":
        if not isinstance(argument, bool):
            raise FilterPatternError('"exists" takes true or false')
        return lambda value: (value is not _MISSING) == argument
    raise FilterPatternError(f"unknown matcher {json.dumps(name)}")


@dataclass(frozen=True)
class _Field:
    """One key of a pattern: a list of alternatives, or a nested pattern."""

    name: str
    alternatives: tuple[Matcher, ...] = ()
    nested: _Pattern | None = None


@dataclass(frozen=True)
class _Pattern:
    fields: tuple[_Field, ...]

    def matches(self, data: Any) -> bool:
        for field in self.fields:
            value = data.get(field.name, _MISSING) if isinstance(data, Mapping) else _MISSING
            if field.nested is not None:
                if not _matches_nested(field.nested, value):
                    return False
            elif not _matches_alternatives(field.alternatives, value):
                return False
        return True


def _matches_nested(pattern: _Pattern, value: Any) -> bool:
    if isinstance(value, list):
        return any(pattern.matches(item) for item in value)
    return pattern.matches(value)


def _matches_alternatives(alternatives: Sequence[Matcher], value: Any) -> bool:
    # A list in the data matches when any element does; `exists` looks at the field itself.
    if isinstance(value, list):
        candidates: list[Any] = [*value, value] if value else [value]
    else:
        candidates = [value]
    return any(m(candidate) for m in alternatives for candidate in candidates)


def _compile(pattern: Any, where: str) -> _Pattern:
    if not isinstance(pattern, Mapping) or not pattern:
        raise FilterPatternError(f"{where}: must be a non-empty JSON object")
    fields = []
    for name, rule in pattern.items():
        path = f"{where}.{name}" if where else name
        if isinstance(rule, Mapping):
            fields.append(_Field(name, nested=_compile(rule, path)))
            continue
        if not isinstance(rule, list) or not rule:
            raise FilterPatternError(f"{path}: must be a non-empty list of values or an object")
        try:
            alternatives = tuple(
                _operator(item) if isinstance(item, Mapping) else _exact_checked(item)
                for item in rule
            )
        except FilterPatternError as exc:
            raise FilterPatternError(f"{path}: {exc}") from None
        fields.append(_Field(name, alternatives=alternatives))
    return _Pattern(tuple(fields))


def _exact_checked(item: Any) -> Matcher:
    if isinstance(item, list):
        raise FilterPatternError("lists cannot be nested in a list of values")
    return _exact(item)


@dataclass(frozen=True)
class RecordFilter:
    """Compiled filter criteria: `matches(data)` is true when any pattern matches (or none set)."""

    patterns: tuple[_Pattern, ...] = ()

    def matches(self, data: Mapping[str, Any]) -> bool:
        return not self.patterns or any(p.matches(data) for p in self.patterns)

    @property
    def active(self) -> bool:
        return bool(self.patterns)


def compile_filters(patterns: Sequence[str]) -> RecordFilter:
    """Compile the patterns of `filterCriteria.filters`; raises FilterPatternError when invalid."""
    if len(patterns) > MAX_FILTERS:
        raise FilterPatternError(f"at most {MAX_FILTERS} filters are allowed, got {len(patterns)}")
    compiled = []
    for number, text in enumerate(patterns):
        where = f"filters[{number}]"
        try:
            parsed = json.loads(text)
        except ValueError:
            raise FilterPatternError(f"{where}: pattern is not JSON") from None
        try:
            compiled.append(_compile(parsed, ""))
        except FilterPatternError as exc:
            raise FilterPatternError(f"{where}: {exc}") from None
    return RecordFilter(tuple(compiled))


def parse_maybe_json(raw: bytes | str | None) -> Any:
    """What a pattern sees for a payload: the JSON value when it is JSON, else the text."""
    if raw is None:
        return None
    text = raw.decode("utf-8", errors="replace") if isinstance(raw, bytes) else raw
    try:
        return json.loads(text)
    except ValueError:
        return text
