"""The Threadline sample (examples/conversations.jsonl) as a Zendesk account the stand-in can serve.

`load_sample(path)` maps each sample conversation to a ticket, each message to a comment
(its text as `plain_body`, escaped into `html_body`), each customer to an end-user and each
company to an organization (plan and the customer's attributes in `organization_fields`), so
`threadline sync` of a Zendesk source pointed at the stand-in brings the same conversations
as `threadline import` of the file. Roles map as the connector reads them back: customer ->
the requester's public comment, agent -> an agent's public comment, bot -> a public comment of
an agent user named like a bot, note -> an agent's private comment.

Ticket ids are assigned in the order of the sample's ids, all of one width (so both sort alike as strings); `ticket_ids`
maps each ticket id (as a string) back to the sample id, for comparing what each path produced.
"""

from __future__ import annotations

import html
import json
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from threadline_testing.zendesk.data import (
    FIRST_ORG_ID,
    FIRST_USER_ID,
    STATUSES,
    Account,
    AccountSpec,
    Comment,
    Ticket,
    iso,
)

SAMPLE_STATES = {"snoozed": "pending"}  # the sample's states Zendesk has no word for, and the nearest status
CUSTOMER_USER_OFFSET = 10_000  # sample customers' user ids start here (above the generated placeholder users)
# Ticket ids of equal width sort as strings like the sample's ids: theme discovery reads a run's conversations
# in external-id order, so both paths must hand it the same order (1000..9999: samples up to 9,000 conversations).
SAMPLE_FIRST_TICKET_ID = 1_000
EMPTY_SPEC = AccountSpec(tickets=0, organizations=0, agents=2, end_users=1)  # agent 0: agents, agent 1: the bot


@dataclass
class SampleAccount:
    """The account to serve and the ticket id -> sample conversation id map."""

    account: Account
    ticket_ids: dict[str, str]


def _epoch(value: Any, default: int) -> int:
    if not value:
        return default
    return int(datetime.fromisoformat(str(value).replace("Z", "+00:00")).timestamp())


def _comment(account: Account, author_id: int, public: bool, text: str, at: int) -> Comment:
    body = '<div class="zd-comment" dir="auto">' + "".join(f"<p>{html.escape(line)}</p>" for line in text.split("\n"))
    return Comment(account._comment_id(), author_id, public, body + "</div>", text, at, {"channel": "web"})


def load_sample(path: Path) -> SampleAccount:
    """The sample at `path` (JSONL of the Threadline format) as a stand-in account."""
    records = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    account = Account(EMPTY_SPEC)
    agent_id, bot_id = account.agent_ids
    account.users[bot_id]["name"] = "Answer Bot"
    orgs: dict[str, int] = {}
    users: dict[str, int] = {}
    ticket_ids: dict[str, str] = {}
    for position, record in enumerate(sorted(records, key=lambda r: str(r["id"]))):
        customer = record.get("customer") or {}
        key = str(customer.get("id") or customer.get("email") or f"anonymous-{record['id']}")
        company = customer.get("company")
        org_id = None
        if company:
            if company not in orgs:
                orgs[company] = FIRST_ORG_ID + len(orgs)
                account.organizations[orgs[company]] = {
                    "id": orgs[company],
                    "name": company,
                    "domain_names": [],
                    "tags": [],
                    "organization_fields": {"plan": customer.get("plan"), **(customer.get("attributes") or {})},
                    "created_at": iso(0),
                    "updated_at": iso(0),
                }
            org_id = orgs[company]
        if key not in users:
            users[key] = FIRST_USER_ID + CUSTOMER_USER_OFFSET + len(users)
            user = account._user(
                users[key], customer.get("name") or key, customer.get("email") or "", "end-user", org_id
            )
            user["user_fields"] = {"plan": customer.get("plan")} if customer.get("plan") else {}
            account.users[users[key]] = user
        requester = users[key]
        created = _epoch(record.get("created_at"), 0)
        comments: list[Comment] = []
        for message in record.get("messages") or []:
            role = message.get("author")
            author = {"customer": requester, "bot": bot_id}.get(role, agent_id)
            at = _epoch(message.get("created_at"), created)
            comments.append(_comment(account, author, role != "note", str(message.get("text") or ""), at))
        updated = max([_epoch(record.get("updated_at"), created), *(c.created_at for c in comments)])
        state = SAMPLE_STATES.get(record.get("state") or "", record.get("state") or "open")
        tid = SAMPLE_FIRST_TICKET_ID + position
        account.tickets[tid] = Ticket(
            id=tid,
            subject=record.get("subject") or "",
            status=state if state in STATUSES else "open",
            priority=None,
            type=None,
            requester_id=requester,
            assignee_id=agent_id,
            organization_id=org_id,
            tags=[str(t) for t in record.get("tags") or []],
            custom_fields=[],
            satisfaction_rating=None,
            created_at=created,
            updated_at=updated,
            generated_timestamp=updated,
            via={"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
            comments=comments,
        )
        ticket_ids[str(tid)] = str(record["id"])
    return SampleAccount(account, ticket_ids)
