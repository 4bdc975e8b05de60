"""Hostile CSV files through the real `threadline import`: quotes, mappings, headers, memory."""

from __future__ import annotations

import os
import subprocess

import pytest
from hostile_helpers import (
    SECRET_TEXT,
    assert_no_leaks,
    count_rows,
    json_report,
    run_import,
    stored_ids,
    stored_messages,
)
from support import threadline_command

from threadline.db.models import Conversation, Source

HEADER = "conversation_id,text,author,created_at\n"


def test_unterminated_quote_is_reported_and_does_not_swallow_the_following_rows(cli_env, db_engine, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + "c1,Hello there,customer,2026-10-01T10:00:00+00:00\n"
        + f'c2,"{SECRET_TEXT} the quote never closes,customer,2026-10-01T10:00:00+00:00\n'
        + "c3,Third row,customer,2026-10-01T10:00:00+00:00\n"
        + 'c4,"a ""quoted"" cell\nover two lines",agent,2026-10-01T10:00:00+00:00\n'
        + "c5,Fifth row,customer,2026-10-01T10:00:00+00:00\n",
        encoding="utf-8",
    )
    result = run_import(cli_env, path, "--source", "s", "--json")
    assert result.returncode == 1, result.stderr[-2000:]
    assert_no_leaks(result)
    report = json_report(result)
    [problem] = report["problems"]
    assert problem["line"] == 3 and problem["rejected"] and "quote" in problem["reason"]
    assert stored_ids(db_engine, "s") == {"c1", "c3", "c4", "c5"}
    assert stored_messages(db_engine, "s", "c3") == [("customer", "Third row")]
    assert stored_messages(db_engine, "s", "c4") == [("agent", 'a "quoted" cell\nover two lines')]


@pytest.mark.parametrize(
    "option",
    [
        ("--time-col", "created"),
        ("--author-col", "who"),
        ("--conversation-col", "ticket"),
        ("--message-col", "mid"),
        ("--text-col", "body"),
    ],
    ids=lambda o: o[0],
)
def test_explicit_column_missing_from_the_header_exits_2_and_writes_nothing(cli_env, db_engine, tmp_path, option):
    path = tmp_path / "m.csv"
    path.write_text(HEADER + "c1,Hello,customer,2026-10-01T10:00:00+00:00\n", encoding="utf-8")
    result = run_import(cli_env, path, *option)
    assert result.returncode == 2
    assert_no_leaks(result)
    assert repr(option[1]) in result.stderr and option[0] in result.stderr
    assert count_rows(db_engine, Conversation) == 0 and count_rows(db_engine, Source) == 0
    as_json = run_import(cli_env, path, *option, "--json")
    assert as_json.returncode == 2 and json_report(as_json)["error"]


def test_a_wrong_author_column_never_imports_an_agent_reply_as_customer_text(cli_env, db_engine, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "ticket,body,role\nt1,The export fails,customer\nt1,Have you tried turning it off and on,agent\n",
        encoding="utf-8",
    )
    wrong = run_import(cli_env, path, "--conversation-col", "ticket", "--text-col", "body", "--author-col", "who")
    assert wrong.returncode == 2 and "'who'" in wrong.stderr
    assert count_rows(db_engine, Conversation) == 0
    right = run_import(cli_env, path, "--conversation-col", "ticket", "--text-col", "body", "--author-col", "role")
    assert right.returncode == 0, right.stderr
    assert stored_messages(db_engine, "default", "t1") == [
        ("customer", "The export fails"),
        ("agent", "Have you tried turning it off and on"),
    ]


def test_default_columns_that_are_absent_keep_their_meaning_with_a_notice(cli_env, db_engine, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("text,category\nWhere is my card?,card\nI was charged twice,billing\n", encoding="utf-8")
    result = run_import(cli_env, path, "--json")
    assert result.returncode == 0
    report = json_report(result)
    assert report["inserted"] == 2
    assert any("author" in notice for notice in report["notices"])
    assert stored_ids(db_engine, "default") == {"row-2", "row-3"}


def test_markup_in_a_header_is_printed_literally(cli_env, db_engine, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("[/bold],[link=file:///etc/passwd]x[/link]\nhello,world\n", encoding="utf-8")
    result = run_import(cli_env, path)
    assert result.returncode == 2
    assert_no_leaks(result)
    assert "[/bold]" in result.stderr and "[link=file:///etc/passwd]x[/link]" in result.stderr


def test_csv_cells_with_nul_and_bad_times_are_reported_by_line_and_column(cli_env, db_engine, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        HEADER
        + "c1,fine,customer,2026-10-01T10:00:00+00:00\n"
        + f"c2,bad\x00{SECRET_TEXT},customer,2026-10-01T10:00:00+00:00\n"
        + "c3,fine,customer,0001-01-01T00:00:00+00:00\n"
        + "c4,fine,customer,2026-10-01T10:00:00+00:00,surplus\n"
        + "c5,fine,customer,2026-10-01T10:00:00+00:00\n",
        encoding="utf-8",
    )
    result = run_import(cli_env, path, "--json")
    assert result.returncode == 1
    assert_no_leaks(result)
    report = json_report(result)
    got = sorted((p["line"], p["field"]) for p in report["problems"])
    assert got == [(3, "text"), (4, "created_at"), (5, None)]
    assert stored_ids(db_engine, "default") == {"c1", "c5"}


VALID_CONVERSATIONS = 200  # written to the database, five messages each
OVERSIZED_ROWS = 600  # rows per oversized conversation: read, grouped and rejected (over the 500-message limit)


def _write_csv(path, target_bytes: int) -> int:
    """A CSV of about `target_bytes`: interleaved rows (never grouped in the file) of VALID_CONVERSATIONS
    valid conversations, then of oversized ones. Short rows with ten extra columns make reading,
    not writing, the work, so the import's memory is what a file of this size costs to read."""
    extra = ",".join(f"x{i}" for i in range(10))
    with path.open("w", encoding="utf-8") as out:
        out.write(f"conversation_id,text,author,created_at,{extra}\n")
        size = 0
        for row in range(VALID_CONVERSATIONS * 5):
            out.write(
                f"ok-{row % VALID_CONVERSATIONS},message {row} the export fails,customer,2026-10-01T10:00:00Z,{extra}\n"
            )
        row = 0
        while size < target_bytes:
            line = f"big-{row % (target_bytes // 60_000 + 1)},message {row} the export fails again,agent,2026-10-01T10:00:00Z,{extra}\n"
            out.write(line)
            size += len(line)
            row += 1
    return row


def _peak_rss_mib(env, path) -> float:
    """Peak RSS of one `threadline import` process (its own rusage, from wait4)."""
    log = path.with_suffix(".stderr")
    with log.open("wb") as stderr:
        process = subprocess.Popen(
            [*threadline_command(), "import", str(path), "--source", path.stem],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
        _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    assert process.returncode == 1, log.read_text()[-2000:]  # 1: the oversized conversations are rejected
    return usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


@pytest.mark.slow
def test_csv_import_memory_does_not_grow_with_the_file(cli_env, db_engine, tmp_path):
    """Peak RSS of the import process for a 6 MB and a 48 MB CSV of interleaved conversations."""
    small, large = tmp_path / "small.csv", tmp_path / "large.csv"
    _write_csv(small, 6_000_000)
    rows = _write_csv(large, 48_000_000)
    small_peak = _peak_rss_mib(cli_env, small)
    large_peak = _peak_rss_mib(cli_env, large)
    print(
        f"peak RSS: {small_peak:.0f} MiB for 6 MB, {large_peak:.0f} MiB for 48 MB ({rows} oversized-conversation rows)"
    )
    assert large_peak < small_peak + 64, (small_peak, large_peak)
    assert stored_ids(db_engine, "large") == {f"ok-{i}" for i in range(VALID_CONVERSATIONS)}
