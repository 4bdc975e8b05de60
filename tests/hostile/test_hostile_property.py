"""Property: valid records mixed with generated hostile values, through the real CLI and database.

Whatever hostile value lands in whatever field, `threadline import --json` stores exactly the
valid records, reports exactly the invalid ones by line, exits 0 or 1 accordingly, always prints
its JSON report and never prints a traceback, SQL or customer text.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import dataclass

import pytest
from hostile_helpers import assert_no_leaks, good_record, json_report, run_import, stored_ids, write_lines
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

_sources = itertools.count()


@dataclass(frozen=True)
class Raw:
    """A JSON token spliced into the line as is (NaN, 1e400, 5,000 digits, deep nesting)."""

    text: str


# Values that make any record invalid wherever they appear (value or key).
INVALID_STRINGS = st.sampled_from(["bad\u0000byte", "\u0000", "lone \ud800 high", "\udfff", "x\udbff"])
INVALID_TOKENS = st.sampled_from(
    [Raw("NaN"), Raw("Infinity"), Raw("-Infinity"), Raw("1e400"), Raw("-1e999"), Raw("9" * 5000)]
) | st.integers(min_value=70, max_value=3000).map(lambda depth: Raw("[" * depth + "1" + "]" * depth))
INVALID_TIMES = st.sampled_from(
    [1e20, -1e15, 1e13, "0001-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00", "2026-10-01T10:00:00", "noon", True]
)
# Strange but valid text: markup, escapes, control and bidi characters, emoji, long runs.
HARMLESS_TEXT = st.sampled_from(
    [
        "[bold]x[/bold]",
        "[link=file:///etc/passwd]click[/link]",
        "[/bold]",
        ":thumbs_up:",
        "\x1b[31mred\x1b[0m",
        "\u202eevil",
        "e\u0301\u0301\u0301",
        "\U0001f4a9",
        "\x07\x08\x7f",
        "' OR 1=1; --",
        "<script>alert(1)</script>",
        "x" * 3000,
    ]
) | st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), min_size=1, max_size=40).filter(
    str.strip
)

FREE_TEXT_FIELDS = [
    "subject",
    "url",
    "assignee",
    "tags.0",
    "customer.name",
    "customer.company",
    "customer.attributes.note",
    "labels.note",
    "messages.0.text",
    "channel",
]
ANY_VALUE_FIELDS = [*FREE_TEXT_FIELDS, "id", "state", "customer.email", "customer.id", "messages.1.id"]
TIME_FIELDS = ["created_at", "updated_at", "messages.0.created_at", "messages.1.created_at"]
KEY_PARENTS = ["labels", "customer.attributes", ""]


def _put(record: dict, path: str, value) -> None:
    parts = path.split(".") if path else []
    target = record
    for part in parts[:-1]:
        target = target[int(part)] if part.isdigit() else target.setdefault(part, {})
    last = parts[-1]
    if last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


@st.composite
def hostile_file(draw):
    """(lines, valid ids, invalid line numbers)."""
    count = draw(st.integers(min_value=2, max_value=8))
    lines, valid, invalid = [], set(), set()
    for index in range(count):
        key = f"r{index}"
        record = good_record(key, index)
        record["tags"] = ["t"]
        raws: dict[str, str] = {}
        kind = draw(st.sampled_from(["clean", "harmless", "invalid-value", "invalid-token", "invalid-key", "bad-time"]))
        if kind == "harmless":
            field, value = draw(st.sampled_from(FREE_TEXT_FIELDS)), draw(HARMLESS_TEXT)
            _put(record, field, value)
        elif kind == "invalid-value":
            _put(record, draw(st.sampled_from(ANY_VALUE_FIELDS)), draw(INVALID_STRINGS))
        elif kind == "invalid-token":
            token = draw(INVALID_TOKENS)
            placeholder = f"__raw_{index}__"
            raws[json.dumps(placeholder)] = token.text
            _put(record, draw(st.sampled_from(ANY_VALUE_FIELDS + TIME_FIELDS)), placeholder)
        elif kind == "invalid-key":
            parent, bad_key = draw(st.sampled_from(KEY_PARENTS)), draw(INVALID_STRINGS)
            target = record
            for part in parent.split(".") if parent else []:
                target = target[part]
            target[bad_key] = "v"
        elif kind == "bad-time":
            _put(record, draw(st.sampled_from(TIME_FIELDS)), draw(INVALID_TIMES))
        line = json.dumps(record)
        for placeholder, token in raws.items():
            line = line.replace(placeholder, token)
        lines.append(line)
        if kind in ("clean", "harmless"):
            valid.add(key)
        else:
            invalid.add(index + 1)
    return lines, valid, invalid


@pytest.mark.slow
@settings(
    max_examples=8,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(data=hostile_file())
def test_hostile_values_anywhere_never_cost_a_valid_record(cli_env, db_engine, tmp_path, data):
    lines, valid, invalid = data
    source = f"p{next(_sources)}"
    path = write_lines(tmp_path / f"{source}.jsonl", lines)
    result = run_import(cli_env, path, "--source", source, "--json")
    assert_no_leaks(result)
    report = json_report(result)
    assert result.returncode == (1 if invalid else 0), (result.returncode, report)
    assert {p["line"] for p in report["problems"] if p["rejected"]} == invalid
    assert all(p["field"] for p in report["problems"]), report["problems"]
    assert stored_ids(db_engine, source) == valid
    assert report["valid_records"] == len(valid)
