"""Import: valid records, every kind of invalid record, idempotent and changed re-imports."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import func, select

from threadline.config import InputSettings
from threadline.connectors.files.importer import import_file
from threadline.connectors.files.readers import CsvColumns, FileFormatError
from threadline.db.models import Contact, Conversation, Message, Source


def conversation(cid: str, *texts: str, **extra) -> dict:
    messages = [
        {
            "author": "customer" if i % 2 == 0 else "agent",
            "text": t,
            "created_at": f"2026-10-0{1 + i % 9}T10:00:00+00:00",
        }
        for i, t in enumerate(texts)
    ]
    return {"id": cid, "created_at": "2026-10-01T10:00:00+00:00", "messages": messages, **extra}


def write_jsonl(path: Path, records: list) -> Path:
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in records) + "\n", encoding="utf-8")
    return path


def count(session, model) -> int:
    return session.execute(select(func.count()).select_from(model)).scalar_one()


def test_valid_jsonl_is_imported_with_extra_fields_and_labels_kept(db_engine, db_session, tmp_path):
    path = write_jsonl(
        tmp_path / "c.jsonl",
        [
            conversation(
                "a",
                "The export fails",
                "Sorry to hear",
                labels={"task": "x"},
                channel="email",
                customer={"id": "u1", "email": "u1@example.com", "company": "Acme", "plan": "pro"},
            ),
            conversation("b", "<p>How do I <b>invite</b> a user?</p>"),
        ],
    )
    result = import_file(db_engine, path, source_name="s")
    assert result.ok and result.stats.inserted == 2
    a = db_session.execute(select(Conversation).where(Conversation.external_id == "a")).scalar_one()
    assert a.raw["labels"] == {"task": "x"} and a.raw["channel"] == "email"
    assert a.contact.company == "Acme" and a.contact.plan == "pro"
    assert [m.author_role for m in a.messages] == ["customer", "agent"]
    b = db_session.execute(select(Conversation).where(Conversation.external_id == "b")).scalar_one()
    assert b.messages[0].raw_text == "<p>How do I <b>invite</b> a user?</p>"
    assert b.messages[0].text == "How do I invite a user?"


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        ({"id": "x", "messages": [{"author": "customer", "created_at": "2026-10-01T10:00:00+00:00"}]}, "has no text"),
        ({"id": "x", "messages": [{"author": "customer", "text": "hi", "created_at": "yesterday"}]}, "not an ISO-8601"),
        (
            {"id": "x", "messages": [{"author": "customer", "text": "hi", "created_at": "2026-10-01T10:00:00"}]},
            "no time zone",
        ),
        ({"id": "x", "messages": [{"author": "wizard", "text": "hi"}]}, "unknown author role 'wizard'"),
        ({"id": "x", "messages": []}, "no messages"),
        ({"messages": [{"author": "customer", "text": "hi"}]}, "id is missing"),
        (
            {
                "id": "x",
                "messages": [{"author": "customer", "text": "hi"}]
                * (InputSettings().max_messages_per_conversation + 1),
            },
            "the limit is",
        ),
        ('{"id": "x", "messages": [', "invalid JSON"),
        ("[1, 2]", "not a JSON object"),
    ],
)
def test_invalid_record_is_reported_with_line_and_valid_ones_imported(db_engine, db_session, tmp_path, record, reason):
    path = write_jsonl(tmp_path / "c.jsonl", [conversation("ok1", "fine"), record, conversation("ok2", "also fine")])
    result = import_file(db_engine, path, source_name="s")
    assert result.stats.inserted == 2
    assert len(result.report.problems) == 1
    problem = result.report.problems[0]
    assert problem.line == 2 and problem.rejected and reason in problem.reason
    assert count(db_session, Conversation) == 2


def test_invalid_utf8_line_is_rejected_with_byte_offset(db_engine, db_session, tmp_path):
    path = tmp_path / "c.jsonl"
    good = json.dumps(conversation("ok", "fine")).encode()
    bad = (
        json.dumps(conversation("bad", "caf\u00e9"), ensure_ascii=False)
        .encode()
        .replace("caf\u00e9".encode(), b"caf\xe9")
    )
    path.write_bytes(good + b"\n" + bad + b"\n")
    result = import_file(db_engine, path, source_name="s")
    assert result.stats.inserted == 1
    [problem] = result.report.problems
    assert problem.line == 2 and "invalid UTF-8 at byte" in problem.reason


def test_oversized_message_is_truncated_and_the_truncation_recorded(db_engine, db_session, tmp_path):
    limit = InputSettings().max_message_chars
    path = write_jsonl(tmp_path / "c.jsonl", [conversation("big", "x" * (limit + 10))])
    result = import_file(db_engine, path, source_name="s")
    [problem] = result.report.problems
    assert not problem.rejected and "truncated" in problem.reason and problem.line == 1
    stored = db_session.execute(select(Conversation)).scalar_one()
    assert stored.messages[0].truncated and len(stored.messages[0].raw_text) == limit
    assert any("truncated" in note for note in stored.notes)


def test_file_level_problems_write_nothing(db_engine, db_session, tmp_path):
    not_jsonl = tmp_path / "c.jsonl"
    not_jsonl.write_text("id,text\n1,hello\n")
    with pytest.raises(FileFormatError, match="not JSONL"):
        import_file(db_engine, not_jsonl, source_name="s")
    with pytest.raises(FileFormatError, match="no such file"):
        import_file(db_engine, tmp_path / "missing.jsonl", source_name="s")
    csv_without_text = tmp_path / "c.csv"
    csv_without_text.write_text("body,id\nhello,1\n")
    with pytest.raises(FileFormatError, match="no 'text' column"):
        import_file(db_engine, csv_without_text, source_name="s")
    assert count(db_session, Conversation) == 0 and count(db_session, Source) == 0


def test_reimport_unchanged_changes_nothing_and_changed_content_updates(db_engine, db_session, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [conversation("a", "one", "two", "three"), conversation("b", "other")])
    import_file(db_engine, path, source_name="s")
    before = {
        c.external_id: (c.id, c.content_hash, c.changed_at) for c in db_session.execute(select(Conversation)).scalars()
    }
    message_ids = db_session.execute(select(Message.id).order_by(Message.id)).scalars().all()

    again = import_file(db_engine, path, source_name="s")
    assert (again.stats.inserted, again.stats.updated, again.stats.unchanged) == (0, 0, 2)
    db_session.expire_all()
    after = {
        c.external_id: (c.id, c.content_hash, c.changed_at) for c in db_session.execute(select(Conversation)).scalars()
    }
    assert after == before
    assert db_session.execute(select(Message.id).order_by(Message.id)).scalars().all() == message_ids

    write_jsonl(path, [conversation("a", "one", "two changed"), conversation("b", "other")])
    changed = import_file(db_engine, path, source_name="s")
    assert (changed.stats.inserted, changed.stats.updated, changed.stats.unchanged) == (0, 1, 1)
    db_session.expire_all()
    a = db_session.execute(select(Conversation).where(Conversation.external_id == "a")).scalar_one()
    assert a.id == before["a"][0] and a.content_hash != before["a"][1]
    assert [m.text for m in a.messages] == ["one", "two changed"]
    assert a.messages[0].id == message_ids[0]  # message ids stay stable by position


def test_duplicate_ids_in_one_file_keep_the_last(db_engine, db_session, tmp_path):
    path = write_jsonl(tmp_path / "c.jsonl", [conversation("a", "first"), conversation("a", "second")])
    result = import_file(db_engine, path, source_name="s")
    assert result.stats.duplicates_in_batch == 1
    assert db_session.execute(select(Message.text)).scalar_one() == "second"


def test_csv_rows_are_grouped_into_conversations_with_column_mapping(db_engine, db_session, tmp_path):
    path = tmp_path / "m.csv"
    path.write_text(
        "ticket,body,who,at,mid\n"
        "t1,Second message,agent,2026-10-01T10:05:00+00:00,m2\n"
        "t1,First message,customer,2026-10-01T10:00:00+00:00,m1\n"
        "t2,Only message,user,2026-10-02T09:00:00Z,m3\n"
        "t3,Bad role,robot,2026-10-02T09:00:00Z,m4\n",
        encoding="utf-8",
    )
    columns = CsvColumns(text="body", conversation_id="ticket", author="who", created_at="at", message_id="mid")
    result = import_file(db_engine, path, source_name="s", columns=columns)
    assert result.stats.inserted == 2
    [problem] = result.report.problems
    assert problem.line == 5 and "unknown author role 'robot'" in problem.reason
    t1 = db_session.execute(select(Conversation).where(Conversation.external_id == "t1")).scalar_one()
    assert [(m.author_role, m.text, m.external_id) for m in t1.messages] == [
        ("customer", "First message", "m1"),
        ("agent", "Second message", "m2"),
    ]


def test_csv_without_conversation_column_makes_one_conversation_per_row(db_engine, db_session, tmp_path):
    path = tmp_path / "q.csv"
    path.write_text("text,category\nWhere is my card?,card_arrival\nI was charged twice,duplicate\n", encoding="utf-8")
    result = import_file(db_engine, path, source_name="s")
    assert result.stats.inserted == 2
    rows = db_session.execute(select(Conversation.external_id, Conversation.raw).order_by(Conversation.id)).all()
    assert [r[0] for r in rows] == ["row-2", "row-3"]
    assert rows[0][1]["fields"]["category"] == "card_arrival"


def test_contacts_are_upserted_without_erasing_known_details(db_engine, db_session, tmp_path):
    path = write_jsonl(
        tmp_path / "c.jsonl", [conversation("a", "hi", customer={"id": "u1", "email": "u@x.io", "plan": "pro"})]
    )
    import_file(db_engine, path, source_name="s")
    write_jsonl(path, [conversation("b", "hello", customer={"id": "u1"})])
    import_file(db_engine, path, source_name="s")
    contact = db_session.execute(select(Contact)).scalar_one()
    assert contact.email == "u@x.io" and contact.plan == "pro"
