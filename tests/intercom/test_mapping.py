"""Intercom payloads (as served by the stand-in, contract-checked) -> records."""

from __future__ import annotations

import asyncio

from threadline_testing.intercom import WorkspaceSpec
from threadline_testing.intercom.data import PARTS_CAP

from threadline.connectors.intercom import mapping


def _expected_role(part: dict) -> str:
    if part["part_type"] == "note":
        return "note"
    author = part["author"]
    if author.get("from_ai_agent") or author["type"] == "bot":
        return "bot"
    return "customer" if author["type"] in ("user", "lead") else "agent"


def test_roles_fields_and_part_cap(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=60, huge_conversation_share=0.05, seed=9))
    ws = standin.workspace
    huge = next(c for c in ws.conversations.values() if len(c.parts) > PARTS_CAP)
    small = next(c for c in ws.conversations.values() if len(c.parts) >= 4 and c.tag_ids and c.admin_assignee_id)

    async def go():
        async with standin.client() as client:
            return await client.get_conversation(small.id), await client.get_conversation(huge.id)

    small_json, huge_json = asyncio.run(go())
    record = mapping.conversation_record(small_json)
    assert record.external_id == small.id
    assert record.messages[0].author_role == "customer" and record.messages[0].text == small.body
    assert [m.author_role for m in record.messages[1:]] == [_expected_role(p) for p in small.parts]
    assert [m.text for m in record.messages[1:]] == [p["body"] for p in small.parts]
    assert record.tags == [t["name"] for t in ws.tags if t["id"] in small.tag_ids]
    assert record.state == small.state and record.assignee == str(small.admin_assignee_id)
    assert record.url == f"https://app.example.com/help/{small.id}"
    assert int(record.updated_at.timestamp()) == small.updated_at
    assert not any("cap" in n for n in record.notes)

    capped = mapping.conversation_record(huge_json)
    assert len(capped.messages) == PARTS_CAP + 1
    assert any(f"{PARTS_CAP} of {len(huge.parts)} parts" in n for n in capped.notes)


def test_role_table() -> None:
    assert mapping.author_role({"type": "user"}) == "customer"
    assert mapping.author_role({"type": "lead"}) == "customer"
    assert mapping.author_role({"type": "admin"}) == "agent"
    assert mapping.author_role({"type": "team"}) == "agent"
    assert mapping.author_role({"type": "bot"}) == "bot"
    assert mapping.author_role({"type": "admin", "from_ai_agent": True}) == "bot"
    assert mapping.author_role({"type": "admin"}, "note") == "note"


def test_events_without_text_are_dropped_and_counted() -> None:
    conv = {
        "id": "7",
        "created_at": 1,
        "updated_at": 2,
        "source": {"body": "help", "author": {"type": "user", "id": "u"}},
        "conversation_parts": {
            "conversation_parts": [
                {"id": "1", "part_type": "assignment", "body": None, "author": {"type": "admin", "id": "a"}},
                {"id": "2", "part_type": "comment", "body": "on it", "author": {"type": "admin", "id": "a"}},
            ],
            "total_count": 2,
        },
    }
    record = mapping.conversation_record(conv)
    assert [m.text for m in record.messages] == ["help", "on it"]
    assert record.notes == ["1 parts without text (events) not kept as messages"]
