"""Shared pieces of the hostile-input tests: the real CLI, the real database, leak checks.

Every test here runs `threadline import` as a user does (a subprocess against the test's own
embedded PostgreSQL database, see `cli_env` in tests/conftest.py) and then asserts on what a
user sees: the exit code, stdout/stderr (no traceback, no SQL, no customer text) and the rows.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, select
from support import threadline_command

from threadline.db.models import Conversation, Message, Source

# Markers planted in customer text and contact details: none may ever reach the terminal.
SECRET_TEXT = "customer-secret-7f3a"
SECRET_CONTACT = "secret-contact.example"
LEAK_MARKERS = (
    "Traceback",
    SECRET_TEXT,
    SECRET_CONTACT,
    "INSERT INTO",
    "SELECT ",
    "[SQL:",
    "[parameters:",
    "psycopg",
    "sqlalchemy",
)


def good_record(key: str, index: int = 0) -> dict[str, Any]:
    """A valid conversation with customer text and contact details that must never be printed."""
    return {
        "id": key,
        "created_at": "2026-10-01T10:00:00+00:00",
        "state": "open",
        "subject": "Export",
        "customer": {
            "id": f"u-{index % 3}",
            "email": f"person{index}@{SECRET_CONTACT}",
            "name": "Secret Person",
            "attributes": {"plan_tier": "gold"},
        },
        "labels": {"task": "export"},
        "messages": [
            {
                "author": "customer",
                "text": f"{SECRET_TEXT} {index}: the CSV export fails with an error",
                "created_at": "2026-10-01T10:00:00+00:00",
            },
            {"author": "agent", "text": "We are looking into it.", "created_at": "2026-10-01T10:05:00+00:00"},
        ],
    }


def line_of(record: dict[str, Any]) -> str:
    return json.dumps(record)


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def run_import(env: dict[str, str], path: Path, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    """`threadline import PATH ARGS...` as a subprocess; output decoded leniently (it is what a terminal shows)."""
    return subprocess.run(
        [*threadline_command(), "import", str(path), *args],
        env=env,
        capture_output=True,
        timeout=timeout,
        text=True,
        encoding="utf-8",
        errors="backslashreplace",
    )


def assert_no_leaks(result: subprocess.CompletedProcess, *extra: str) -> None:
    """No traceback, SQL, driver name or customer text on stdout or stderr."""
    for stream_name, stream in (("stdout", result.stdout), ("stderr", result.stderr)):
        for marker in (*LEAK_MARKERS, *extra):
            assert marker not in stream, f"{marker!r} leaked on {stream_name}:\n{stream[-3000:]}"


def json_report(result: subprocess.CompletedProcess) -> dict[str, Any]:
    assert result.stdout.strip(), f"--json printed nothing (exit {result.returncode}); stderr: {result.stderr[-2000:]}"
    return json.loads(result.stdout)


def stored_ids(engine: Engine, source: str) -> set[str]:
    with engine.connect() as conn:
        return set(
            conn.execute(
                select(Conversation.external_id)
                .join(Source, Source.id == Conversation.source_id)
                .where(Source.name == source)
            ).scalars()
        )


def stored_messages(engine: Engine, source: str, external_id: str) -> list[tuple[str, str]]:
    """(author_role, raw_text) of one stored conversation, in order."""
    with engine.connect() as conn:
        return [
            (role, text)
            for role, text in conn.execute(
                select(Message.author_role, Message.raw_text)
                .join(Conversation, Conversation.id == Message.conversation_id)
                .join(Source, Source.id == Conversation.source_id)
                .where(Source.name == source, Conversation.external_id == external_id)
                .order_by(Message.position)
            )
        ]


def count_rows(engine: Engine, model) -> int:
    from sqlalchemy import func

    with engine.connect() as conn:
        return conn.execute(select(func.count()).select_from(model)).scalar_one()
