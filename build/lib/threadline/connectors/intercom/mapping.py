"""Turn Intercom 2.16 payloads into `threadline.connectors.records` dataclasses.

Roles: user/lead/contact -> customer, admin/team -> agent, bot or AI agent -> bot, and any
`note` part -> note. Parts without text (assignments, state changes) carry no message and are
dropped; the count is recorded in `notes`, as is Intercom's 500-part cap when it applies.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from threadline.connectors.records import AuthorRole, ContactRecord, ConversationRecord, MessageRecord

PARTS_CAP = 500  # parts in GET /conversations/{id}: Intercom returns at most the 500 most recent
CUSTOMER_AUTHOR_TYPES = frozenset({"user", "lead", "contact"})
AGENT_AUTHOR_TYPES = frozenset({"admin", "team"})


def from_unix(value: Any) -> datetime | None:
    """Intercom times are Unix seconds (UTC)."""
    if value is None or isinstance(value, bool):
        return None
    return datetime.fromtimestamp(int(value), tz=UTC)


def author_role(author: Mapping[str, Any] | None, part_type: str | None = None) -> AuthorRole:
    """Map an Intercom author (and part type) to our role."""
    if part_type == "note":
        return "note"
    author = author or {}
    if author.get("from_ai_agent") or author.get("is_ai_answer"):
        return "bot"
    kind = str(author.get("type") or "")
    if kind in CUSTOMER_AUTHOR_TYPES:
        return "customer"
    if kind in AGENT_AUTHOR_TYPES:
        return "agent"
    if kind == "bot":
        return "bot"
    return "customer" if kind == "" else "agent"


def contact_record(
    contact: Mapping[str, Any], company_name: str | None = None, notes: list[str] | None = None
) -> ContactRecord:
    """Contact enrichment: email, name, company (name when the conversation has it, else id), plan."""
    custom = contact.get("custom_attributes") or {}
    companies = ((contact.get("companies") or {}).get("data")) or []
    company = company_name or (str(companies[0].get("id")) if companies else None)
    attributes: dict[str, Any] = {"role": contact.get("role")}
    if notes:
        attributes["notes"] = list(notes)
    plan = custom.get("plan")
    return ContactRecord(
        external_id=str(contact["id"]),
        email=contact.get("email") or None,
        name=contact.get("name"),
        company=company,
        plan=str(plan) if plan is not None else None,
        attributes=attributes,
    )


def conversation_record(
    conv: Mapping[str, Any], contact: ContactRecord | None = None, extra_notes: list[str] | None = None
) -> ConversationRecord:
    """One retrieved conversation (display_as=plaintext) -> ConversationRecord."""
    notes = list(extra_notes or [])
    messages: list[MessageRecord] = []
    source = conv.get("source") or {}
    if source.get("body"):
        src_author = source.get("author") or {}
        messages.append(
            MessageRecord(
                author_role=author_role(src_author),
                text=str(source["body"]),
                created_at=from_unix(conv.get("created_at")),
                external_id=str(source["id"]) if source.get("id") else None,
                author_id=str(src_author["id"]) if src_author.get("id") else None,
            )
        )
    parts_obj = conv.get("conversation_parts") or {}
    parts = parts_obj.get("conversation_parts") or []
    total = parts_obj.get("total_count")
    if len(parts) >= PARTS_CAP or (isinstance(total, int) and total > len(parts)):
        notes.append(
            f"intercom 500-part cap: {len(parts)} of {total if isinstance(total, int) else 'unknown'} parts returned; "
            "older parts missing"
        )
    dropped = 0
    for part in parts:
        body = part.get("body")
        if not body:
            dropped += 1
            continue
        author = part.get("author") or {}
        messages.append(
            MessageRecord(
                author_role=author_role(author, part.get("part_type")),
                text=str(body),
                created_at=from_unix(part.get("created_at")),
                external_id=str(part["id"]) if part.get("id") is not None else None,
                author_id=str(author["id"]) if author.get("id") else None,
            )
        )
    if dropped:
        notes.append(f"{dropped} parts without text (events) not kept as messages")
    tags = [str(t["name"]) for t in ((conv.get("tags") or {}).get("tags") or []) if t.get("name")]
    assignee = conv.get("admin_assignee_id")
    subject = conv.get("title") or source.get("subject") or None
    return ConversationRecord(
        external_id=str(conv["id"]),
        messages=messages,
        created_at=from_unix(conv.get("created_at")),
        updated_at=from_unix(conv.get("updated_at")),
        state=conv.get("state"),
        url=source.get("url"),
        subject=subject,
        tags=tags,
        contact=contact,
        assignee=str(assignee) if assignee is not None else None,
        raw=dict(conv),
        notes=notes,
    )


def first_contact_id(item: Mapping[str, Any]) -> str | None:
    contacts = ((item.get("contacts") or {}).get("contacts")) or []
    return str(contacts[0]["id"]) if contacts and contacts[0].get("id") else None


def company_name(item: Mapping[str, Any]) -> str | None:
    company = item.get("company") or {}
    return company.get("name") or None
