"""Turn Zendesk tickets, comments, users and organizations into `threadline.connectors.records`.

Roles: a private comment (`public: false`) is an internal note whoever wrote it; a public
comment is the customer's when its author is an end-user (or the requester when the author is
unknown), an agent's when the author is an agent or admin. Bodies: `plain_body` when present
(Zendesk's own rendering of the comment as text), else `html_body`, else `body`; the store's
normalisation turns any HTML into text like every other source's.

Kept from the ticket: subject, status, tags, assignee, and in `raw` the whole ticket
(priority, type, custom fields, satisfaction rating, via, organization id). The requester
becomes the contact with the organization's name as company and its attributes
(`organization_fields`, tags, domains) on the contact, the plan from `organization_fields.plan`
(or the user's `user_fields.plan`): what the impact factors read.

Deleted tickets (`status: "deleted"`) become deletions. A ticket closed by a merge (a private
comment whose `via.source.rel` is "merge" and that says "merged into request #N") is kept with
state "merged" and marked deleted, so its customer is counted once, in the target ticket.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from threadline.connectors.records import AuthorRole, ContactRecord, ConversationRecord, MessageRecord

DELETED_STATUS = "deleted"
MERGED_STATE = "merged"
AGENT_ROLES = frozenset({"agent", "admin"})
PLAN_FIELD = "plan"  # organization_fields / user_fields key read as the customer's plan
_MERGED_INTO = re.compile(r"merged into request #(\d+)", re.I)
_API_TICKET_URL = re.compile(r"/api/v2/tickets/(\d+)\.json$")


def parse_time(value: Any) -> datetime | None:
    """Zendesk times: ISO 8601 in UTC ("2025-06-15T10:00:00Z"); Unix seconds are accepted too."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return datetime.fromtimestamp(int(value), tz=UTC)
    text = str(value).strip()
    if not text:
        return None
    parsed = datetime.fromisoformat(text.replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def version_of(ticket: Mapping[str, Any]) -> int:
    """The ticket's version for deduplication: updated_at in Unix seconds (0 when absent)."""
    at = parse_time(ticket.get("updated_at"))
    return int(at.timestamp()) if at else 0


def generated_timestamp(ticket: Mapping[str, Any]) -> int:
    """The export's ordering key (Unix seconds; every change moves it), else updated_at."""
    value = ticket.get("generated_timestamp")
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else version_of(ticket)


def is_deleted(ticket: Mapping[str, Any]) -> bool:
    return ticket.get("status") == DELETED_STATUS


def comment_text(comment: Mapping[str, Any]) -> str:
    """plain_body, else html_body, else body (the store normalises HTML)."""
    for key in ("plain_body", "html_body", "body"):
        value = comment.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def author_role(
    comment: Mapping[str, Any], users: Mapping[str, Mapping[str, Any]], requester_id: str | None
) -> AuthorRole:
    """Private -> note; end-user -> customer; agent/admin -> agent; unknown author: requester -> customer."""
    if comment.get("public") is False:
        return "note"
    author = str(comment.get("author_id")) if comment.get("author_id") is not None else None
    user = users.get(author) if author else None
    role = str(user.get("role") or "") if user else ""
    if role in AGENT_ROLES:
        return "agent"
    if role == "end-user":
        return "customer"
    return "customer" if author is not None and author == requester_id else "agent"


def merged_into(ticket: Mapping[str, Any], comments: Sequence[Mapping[str, Any]]) -> str | None:
    """The target ticket id when this ticket was closed by a merge, else None."""
    if ticket.get("status") != "closed":
        return None
    for comment in reversed(comments):
        source = (comment.get("via") or {}).get("source") or {}
        if source.get("rel") != "merge":
            continue
        match = _MERGED_INTO.search(comment_text(comment))
        if match:
            return match.group(1)
        target = (source.get("to") or {}).get("ticket_id")
        if target is not None and str(target) != str(ticket.get("id")):
            return str(target)
    return None


def agent_url(ticket: Mapping[str, Any]) -> str | None:
    """The ticket's page in the agent interface (the API gives its JSON URL)."""
    url = ticket.get("url")
    if not isinstance(url, str):
        return None
    match = _API_TICKET_URL.search(url)
    return url[: match.start()] + f"/agent/tickets/{match.group(1)}" if match else url


def contact_record(user: Mapping[str, Any], organization: Mapping[str, Any] | None) -> ContactRecord:
    """The requester, with the organization (name, plan and attributes) the impact factors read."""
    org_fields = dict((organization or {}).get("organization_fields") or {})
    user_fields = dict(user.get("user_fields") or {})
    plan = org_fields.get(PLAN_FIELD) or user_fields.get(PLAN_FIELD)
    attributes: dict[str, Any] = {"role": user.get("role")}
    if organization:
        attributes["organization"] = {
            "id": organization.get("id"),
            "name": organization.get("name"),
            "tags": list(organization.get("tags") or []),
            "domain_names": list(organization.get("domain_names") or []),
            **{key: value for key, value in org_fields.items()},
        }
    return ContactRecord(
        external_id=str(user["id"]),
        email=user.get("email") or None,
        name=user.get("name") or None,
        company=(organization or {}).get("name") or None,
        plan=str(plan) if plan is not None else None,
        attributes=attributes,
    )


def conversation_record(
    ticket: Mapping[str, Any],
    comments: Sequence[Mapping[str, Any]],
    users: Mapping[str, Mapping[str, Any]],
    organizations: Mapping[str, Mapping[str, Any]],
    extra_notes: list[str] | None = None,
) -> ConversationRecord:
    """One ticket and its comments (oldest first) -> ConversationRecord."""
    notes = list(extra_notes or [])
    requester = str(ticket["requester_id"]) if ticket.get("requester_id") is not None else None
    messages: list[MessageRecord] = []
    empty = 0
    for comment in comments:
        text = comment_text(comment)
        if not text:
            empty += 1
            continue
        messages.append(
            MessageRecord(
                author_role=author_role(comment, users, requester),
                text=text,
                created_at=parse_time(comment.get("created_at")),
                external_id=str(comment["id"]) if comment.get("id") is not None else None,
                author_id=str(comment["author_id"]) if comment.get("author_id") is not None else None,
            )
        )
    if empty:
        notes.append(f"{empty} comments without text not kept as messages")
    contact = None
    if requester is not None and requester in users:
        org_id = ticket.get("organization_id") or users[requester].get("organization_id")
        contact = contact_record(users[requester], organizations.get(str(org_id)) if org_id is not None else None)
    elif requester is not None:
        notes.append(f"requester {requester} not side-loaded")
    state = ticket.get("status")
    target = merged_into(ticket, comments)
    if target is not None:
        state = MERGED_STATE
        notes.append(f"closed and merged into ticket {target}")
    assignee = ticket.get("assignee_id")
    return ConversationRecord(
        external_id=str(ticket["id"]),
        messages=messages,
        created_at=parse_time(ticket.get("created_at")),
        updated_at=parse_time(ticket.get("updated_at")),
        state=str(state) if state is not None else None,
        url=agent_url(ticket),
        subject=ticket.get("subject") or ticket.get("raw_subject") or None,
        tags=[str(t) for t in ticket.get("tags") or []],
        contact=contact,
        assignee=str(assignee) if assignee is not None else None,
        raw={key: value for key, value in ticket.items() if key != "generated_timestamp"},
        notes=notes,
    )


def index_by_id(items: Any) -> dict[str, dict[str, Any]]:
    """Side-loaded users or organizations by id (as strings)."""
    return {str(item["id"]): item for item in items or [] if isinstance(item, dict) and item.get("id") is not None}
