"""Hostile JSONL values through the real `threadline import`: one bad record never costs its neighbours.

Each case is a file of valid conversations with one hostile record on line 6. The import must
store every valid record, exit exactly 1, report the bad one with its line and field, and print
no traceback, SQL or customer text, in human and in --json mode.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import pytest
from hostile_helpers import (
    SECRET_CONTACT,
    SECRET_TEXT,
    assert_no_leaks,
    good_record,
    json_report,
    line_of,
    run_import,
    stored_ids,
    write_lines,
)
from sqlalchemy import select, text

from threadline.db.models import Conversation

BAD_LINE = 6
VALID = 10  # valid records around the bad one (lines 1-5 and 7-11)


def _with(mutate: Callable[[dict[str, Any]], None]) -> Callable[[], str]:
    def build() -> str:
        record = good_record("bad-record", 99)
        mutate(record)
        return json.dumps(record)

    return build


def _raw(replace: str, by: str) -> Callable[[], str]:
    """A line whose JSON text is edited directly (values json.dumps cannot produce)."""

    def build() -> str:
        record = good_record("bad-record", 99)
        line = json.dumps(record)
        assert replace in line
        return line.replace(replace, by, 1)

    return build


def _set(path: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def mutate(record: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        target: Any = record
        for part in parents:
            target = target[int(part)] if part.isdigit() else target[part]
        if last.isdigit():
            target[int(last)] = value
        else:
            target[last] = value

    return mutate


DEEP = "[" * 5000 + "]" * 5000

# (case id, line builder, expected field prefix, expected words in the reason)
CASES = [
    ("nul-in-text", _with(_set("messages.0.text", f"bad\u0000byte {SECRET_TEXT}")), "messages[0].text", "NUL"),
    ("nul-in-id", _with(_set("id", "bad\u0000id")), "id", "NUL"),
    ("nul-in-key", _with(_set("labels", {"ta\u0000sk": "export"})), "labels", "NUL"),
    ("nul-in-label", _with(_set("labels", {"task": "ex\u0000port"})), "labels.task", "NUL"),
    (
        "nul-in-contact-attribute",
        _with(_set("customer.attributes", {"plan_tier": "go\u0000ld"})),
        "customer.attributes.plan_tier",
        "NUL",
    ),
    ("nul-in-contact-email", _with(_set("customer.email", "a\u0000b@x.io")), "customer.email", "NUL"),
    ("lone-surrogate-in-text", _with(_set("messages.0.text", "bad \ud800 here")), "messages[0].text", "surrogate"),
    ("lone-surrogate-in-key", _with(_set("labels", {"\udc00": 1})), "labels", "surrogate"),
    ("nesting-5000-deep", _raw('"task": "export"', f'"task": {DEEP}'), "labels", "nest"),
    ("nesting-200-deep", _raw('"task": "export"', '"task": ' + "[" * 200 + "]" * 200), "labels.task", "nest"),
    ("5000-digit-id", _raw('"id": "bad-record"', '"id": ' + "9" * 5000), "id", "digits"),
    ("1e400-id", _raw('"id": "bad-record"', '"id": 1e400'), "id", "range"),
    ("unix-1e20", _raw('"created_at": "2026-10-01T10:00:00+00:00"', '"created_at": 1e20'), "created_at", "range"),
    (
        "unix-minus-1e15",
        _raw('"created_at": "2026-10-01T10:00:00+00:00"', '"created_at": -1e15'),
        "created_at",
        "range",
    ),
    (
        "unix-nan",
        _raw('"created_at": "2026-10-01T10:00:00+00:00", "state"', '"created_at": NaN, "state"'),
        "created_at",
        "NaN",
    ),
    ("year-1", _with(_set("created_at", "0001-01-01T00:00:00+00:00")), "created_at", "range"),
    ("year-9999", _with(_set("messages.0.created_at", "9999-12-31T23:59:59+00:00")), "messages[0].created_at", "range"),
    ("state-over-32", _with(_set("state", "s" * 33)), "state", "32"),
    (
        "markup-link-id",
        _with(lambda r: (r.update(id="[link=file:///etc/passwd]x[/link]"), r.update(messages=[]))),
        "messages",
        "no messages",
    ),
    (
        "markup-bold-id",
        _with(lambda r: (r.update(id="[/bold]"), r.update(created_at="noon"))),
        "created_at",
        "ISO-8601",
    ),
]


def _file(tmp_path, build: Callable[[], str]):
    lines = [line_of(good_record(f"ok-{i}", i)) for i in range(1, VALID + 1)]
    lines.insert(BAD_LINE - 1, build())
    return write_lines(tmp_path / "mixed.jsonl", lines)


@pytest.mark.parametrize(("build", "field", "reason"), [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_hostile_value_is_reported_and_every_valid_record_stored(cli_env, db_engine, tmp_path, build, field, reason):
    path = _file(tmp_path, build)
    human = run_import(cli_env, path, "--source", "s")
    assert human.returncode == 1, human.stderr[-2000:]
    assert_no_leaks(human)
    assert f"line {BAD_LINE}" in human.stderr
    assert stored_ids(db_engine, "s") == {f"ok-{i}" for i in range(1, VALID + 1)}


def test_every_hostile_value_in_one_file_is_reported_with_line_and_field(cli_env, db_engine, tmp_path):
    """All the cases above in one file, through --json: each bad line with its field and reason."""
    lines = [line_of(good_record(f"ok-{i}", i)) for i in range(1, VALID + 1)]
    expected = {}
    for case_id, build, field, reason in CASES:
        lines.append(build())
        expected[len(lines)] = (case_id, field, reason)
    path = write_lines(tmp_path / "all.jsonl", lines)
    result = run_import(cli_env, path, "--source", "s", "--json")
    assert result.returncode == 1
    assert_no_leaks(result)
    report = json_report(result)
    assert report["valid_records"] == VALID and report["rejected"] == len(CASES) and report["inserted"] == VALID
    by_line: dict[int, list[dict]] = {}
    for problem in report["problems"]:
        assert problem["rejected"]
        by_line.setdefault(problem["line"], []).append(problem)
    assert set(by_line) == set(expected)
    for line, (case_id, field, reason) in expected.items():
        assert any(
            p["field"] and p["field"].startswith(field) and reason.lower() in p["reason"].lower() for p in by_line[line]
        ), (case_id, by_line[line])
    assert stored_ids(db_engine, "s") == {f"ok-{i}" for i in range(1, VALID + 1)}


def test_markup_in_ids_is_printed_literally(cli_env, tmp_path):
    path = write_lines(
        tmp_path / "[bold]markup[red].jsonl",
        [
            line_of(good_record("ok", 1)),
            json.dumps({"id": "[link=file:///etc/passwd]click[/link]", "messages": []}),
            json.dumps({**good_record("[/bold]", 2), "created_at": "noon"}),
            json.dumps({**good_record("[red]x", 3), "state": "s" * 40}),
        ],
    )
    result = run_import(cli_env, path, "--source", "s")
    assert result.returncode == 1
    assert_no_leaks(result)
    assert "[link=file:///etc/passwd]click[/link]" in result.stderr
    assert "(id [/bold])" in result.stderr and "(id [red]x)" in result.stderr
    assert "[bold]markup[red].jsonl" in result.stderr
    assert "\x1b]8;" not in result.stderr  # no terminal hyperlink was emitted


def test_1500_records_with_a_nul_on_line_701_lose_nothing(cli_env, db_engine, tmp_path):
    lines = [line_of(good_record(f"c-{i}", i)) for i in range(1, 1501)]
    bad = good_record("c-701", 701)
    bad["messages"][0]["text"] = "bad\u0000byte"
    lines[700] = json.dumps(bad)
    path = write_lines(tmp_path / "big.jsonl", lines)
    result = run_import(cli_env, path, "--source", "s", "--json")
    assert result.returncode == 1
    assert_no_leaks(result)
    report = json_report(result)
    assert report["inserted"] == 1499 and report["rejected"] == 1
    [problem] = report["problems"]
    assert (problem["line"], problem["id"], problem["field"]) == (701, "c-701", "messages[0].text")
    assert len(stored_ids(db_engine, "s")) == 1499


def test_records_the_database_refuses_are_isolated_from_their_batch(cli_env, db_engine, tmp_path):
    """A record that passes validation but that the database refuses costs only itself."""
    with db_engine.begin() as conn:  # a real constraint in the real database: no mock
        conn.execute(
            text("ALTER TABLE conversations ADD CONSTRAINT test_no_poison CHECK (external_id NOT LIKE 'poison%')")
        )
        conn.execute(
            text("ALTER TABLE messages ADD CONSTRAINT test_no_poison_text CHECK (raw_text NOT LIKE '%poison-text%')")
        )
    lines = [line_of(good_record(f"ok-{i}", i)) for i in range(1, 41)]
    lines[7] = line_of(good_record("poison-8", 8))
    poisoned_text = good_record("ok-30", 30)
    poisoned_text["messages"][1]["text"] = "poison-text"
    lines[29] = json.dumps(poisoned_text)
    path = write_lines(tmp_path / "c.jsonl", lines)
    result = run_import(cli_env, path, "--source", "s", "--json")
    assert result.returncode == 1, result.stderr[-2000:]
    assert_no_leaks(result, "poison-text")
    report = json_report(result)
    assert report["inserted"] == 38 and report["rejected"] == 2
    assert sorted((p["line"], p["id"]) for p in report["problems"]) == [(8, "poison-8"), (30, "ok-30")]
    assert all("database refused" in p["reason"] for p in report["problems"])
    assert stored_ids(db_engine, "s") == {f"ok-{i}" for i in range(1, 41)} - {"ok-8", "ok-30"}
    debug = run_import({**cli_env, "THREADLINE_LOG_LEVEL": "DEBUG"}, path, "--source", "s2")
    assert debug.returncode == 1 and "refused" in debug.stderr  # details at DEBUG: class, SQLSTATE, frames
    for leak in (SECRET_TEXT, SECRET_CONTACT, "poison-text", "[parameters:", "INSERT INTO"):
        assert leak not in debug.stderr and leak not in debug.stdout


def test_an_unexpected_error_is_one_line_with_exit_3_and_a_json_report(cli_env, tmp_path):
    env = {**cli_env, "THREADLINE_DATABASE_URL": "postgresql://postgres@/threadline?host=/nonexistent-socket-dir"}
    path = write_lines(tmp_path / "c.jsonl", [line_of(good_record("a", 1))])
    result = run_import(env, path, "--json")
    assert result.returncode == 3
    assert_no_leaks(result)
    report = json_report(result)
    assert report["exit_code"] == 3 and "OperationalError" in report["error"]
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_duplicate_ids_are_counted_and_reported_with_their_lines(cli_env, db_engine, tmp_path):
    first, second, third = (good_record("a", i) for i in (1, 3, 5))
    second["subject"], third["subject"] = "second", "third"
    path = write_lines(
        tmp_path / "c.jsonl",
        [line_of(first), line_of(good_record("b", 2)), line_of(second), line_of(good_record("c", 4)), line_of(third)],
    )
    result = run_import(cli_env, path, "--source", "s", "--json")
    assert result.returncode == 1
    report = json_report(result)
    assert report["duplicates"] == 2
    assert report["duplicate_ids"] == [{"id": "a", "lines": [1, 3, 5], "kept_line": 5}]
    with db_engine.connect() as conn:
        assert conn.execute(select(Conversation.subject).where(Conversation.external_id == "a")).scalar_one() == "third"
    human = run_import(cli_env, path, "--source", "s")
    assert "line 1 (id a): duplicate id, superseded by line 5" in " ".join(human.stderr.split())


def test_missing_created_at_is_the_first_message_time_or_reported(cli_env, db_engine, tmp_path):
    from_messages = good_record("from-messages", 1)
    del from_messages["created_at"]
    from_messages["messages"][0]["created_at"] = "2026-10-03T08:00:00+00:00"
    from_messages["messages"][1]["created_at"] = "2026-10-02T08:00:00+00:00"
    no_time = good_record("no-time", 2)
    del no_time["created_at"]
    for message in no_time["messages"]:
        del message["created_at"]
    path = write_lines(tmp_path / "c.jsonl", [line_of(from_messages), line_of(no_time)])
    result = run_import(cli_env, path, "--source", "s", "--json")
    assert result.returncode == 1
    report = json_report(result)
    assert report["inserted"] == 2 and report["rejected"] == 0
    [problem] = report["problems"]
    assert (problem["line"], problem["field"], problem["rejected"]) == (2, "created_at", False)
    with db_engine.connect() as conn:
        rows = dict(conn.execute(select(Conversation.external_id, Conversation.created_at)).all())
        notes = conn.execute(select(Conversation.notes).where(Conversation.external_id == "no-time")).scalar_one()
    assert rows["from-messages"].isoformat() == "2026-10-02T08:00:00+00:00"
    assert rows["no-time"] is None and any("no time" in note for note in notes)
