"""Intercom conversation-search query evaluation for the stand-in (operator/type matrix, limits).

Rules reproduced from Intercom's documentation: at most 2 levels of nested AND/OR groups,
at most 15 filters per group, and operators that depend on the field's type. Violations
raise `SearchError`, which the app answers with 400.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from threadline_testing.intercom.data import Conversation

MAX_NESTING_LEVELS = 2  # AND/OR group depth: Intercom's documented limit
MAX_FILTERS_PER_GROUP = 15  # filters in one AND/OR group: Intercom's documented limit

_INT_OPS = {"=", "!=", "IN", "NIN", "<", ">", "<=", ">="}
_STR_OPS = {"=", "!=", "IN", "NIN", "~", "!~", "^", "$"}
_BOOL_OPS = {"=", "!="}


def _field_getters() -> dict[str, tuple[str, Callable[[Conversation], Any]]]:
    return {
        "id": ("string", lambda c: c.id),
        "created_at": ("integer", lambda c: c.created_at),
        "updated_at": ("integer", lambda c: c.updated_at),
        "state": ("string", lambda c: c.state),
        "open": ("boolean", lambda c: c.state != "closed"),
        "admin_assignee_id": ("integer", lambda c: c.admin_assignee_id),
        "contact_ids": ("string", lambda c: [c.contact_id]),
        "tag_ids": ("string", lambda c: list(c.tag_ids)),
        "source.subject": ("string", lambda c: c.subject),
        "source.body": ("string", lambda c: c.body),
    }


FIELDS = _field_getters()


class SearchError(ValueError):
    """A query Intercom would reject with 400 (`code` is Intercom's error code)."""

    def __init__(self, message: str, code: str = "parameter_invalid") -> None:
        super().__init__(message)
        self.code = code


Predicate = Callable[[Conversation], bool]


def compile_query(query: Any, level: int = 0) -> Predicate:
    """Turn a search `query` object into a predicate, validating it like Intercom does."""
    if not isinstance(query, dict):
        raise SearchError("query must be an object")
    operator = query.get("operator")
    if operator in ("AND", "OR"):
        if level + 1 > MAX_NESTING_LEVELS:
            raise SearchError(f"at most {MAX_NESTING_LEVELS} levels of nested filters are allowed")
        items = query.get("value")
        if not isinstance(items, list) or not items:
            raise SearchError("AND/OR groups need a non-empty list of filters")
        if len(items) > MAX_FILTERS_PER_GROUP:
            raise SearchError(f"at most {MAX_FILTERS_PER_GROUP} filters are allowed per group")
        preds = [compile_query(item, level + 1) for item in items]
        if operator == "AND":
            return lambda c: all(p(c) for p in preds)
        return lambda c: any(p(c) for p in preds)
    return _compile_filter(query)


def _compile_filter(query: dict[str, Any]) -> Predicate:
    field = query.get("field")
    operator = query.get("operator")
    value = query.get("value")
    if field not in FIELDS:
        raise SearchError(f"unsupported field {field!r}")
    kind, get = FIELDS[field]
    allowed = {"integer": _INT_OPS, "string": _STR_OPS, "boolean": _BOOL_OPS}[kind]
    if operator not in allowed:
        raise SearchError(f"operator {operator!r} is not valid for {kind} field {field!r}")
    if operator in ("IN", "NIN"):
        if not isinstance(value, list):
            raise SearchError(f"operator {operator} needs a list value")
        values = [_coerce(kind, v, field) for v in value]
    else:
        values = [_coerce(kind, value, field)]
    target = values[0]

    def test(actual: Any) -> bool:
        if operator == "=":
            return actual == target
        if operator == "!=":
            return actual != target
        if operator == "IN":
            return actual in values
        if operator == "NIN":
            return actual not in values
        if actual is None:
            return False
        if operator == "<":
            return actual < target
        if operator == ">":
            return actual > target
        if operator == "<=":
            return actual <= target
        if operator == ">=":
            return actual >= target
        text, needle = str(actual).lower(), str(target).lower()
        if operator == "~":
            return needle in text
        if operator == "!~":
            return needle not in text
        if operator == "^":
            return text.startswith(needle)
        return text.endswith(needle)  # "$"

    def pred(conv: Conversation) -> bool:
        actual = get(conv)
        if isinstance(actual, list):  # multi-valued fields match if any value matches
            if operator in ("!=", "NIN", "!~"):
                return all(test(a) for a in actual)
            return any(test(a) for a in actual)
        return test(actual)

    return pred


def _coerce(kind: str, value: Any, field: str) -> Any:
    if kind == "integer":
        if isinstance(value, bool):
            raise SearchError(f"{field} needs an integer value")
        if isinstance(value, str) and value.lstrip("-").isdigit():
            return int(value)
        if isinstance(value, int):
            return value
        raise SearchError(f"{field} needs an integer value")
    if kind == "boolean":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
        raise SearchError(f"{field} needs a boolean value")
    if value is None or isinstance(value, (list, dict)):
        raise SearchError(f"{field} needs a string value")
    return str(value)
