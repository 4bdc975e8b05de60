"""Deterministic in-memory Zendesk account for the stand-in server.

An `Account` is generated from an `AccountSpec` (size, seed, time span) and renders its
objects in the JSON shapes of Zendesk's Support API (tickets, ticket comments, users,
organizations). It can be changed while a client pages through it (`touch`, `add_comment`,
`delete`, `merge`), which is how the stand-in reproduces records changing mid-export: every
change moves the ticket's `generated_timestamp` past the export cursor.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

DEFAULT_BASE_TIME = 1_750_000_000  # Unix s (2025-06-15): fixed so accounts are reproducible
DEFAULT_SPAN_SECONDS = 90 * 86_400  # tickets created over 90 days before the base time
FIRST_TICKET_ID = 1  # Zendesk ticket ids are small sequential integers per account
FIRST_USER_ID = 360_000_000_000  # user and organization ids are large integers
FIRST_ORG_ID = 360_100_000_000
FIRST_COMMENT_ID = 900_000_000_000

STATUSES = ("new", "open", "pending", "hold", "solved", "closed")  # ticket status values (not "deleted")
PRIORITIES = ("urgent", "high", "normal", "low")
TYPES = ("problem", "incident", "question", "task")
PLANS = ("Starter", "Business", "Enterprise")
CUSTOM_FIELD_PRODUCT = 360_200_000_001  # a drop-down custom field ("product area")
CUSTOM_FIELD_SEVERITY = 360_200_000_002  # a text custom field

_WORDS = (
    "invoice export login password reset billing refund crash slow dashboard report sync "
    "mobile app email notification integration webhook api token permission team invite "
    "csv upload timeout error payment card plan upgrade downgrade search filter calendar"
).split()


def iso(ts: int) -> str:
    """Zendesk timestamps: ISO 8601 in UTC with a Z suffix."""
    return datetime.fromtimestamp(ts, tz=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class AccountSpec:
    """Shape of a generated account (counts are objects, times Unix seconds)."""

    tickets: int = 200
    seed: int = 0
    base_time: int = DEFAULT_BASE_TIME
    span_seconds: int = DEFAULT_SPAN_SECONDS
    end_users: int | None = None  # default: one per 3 tickets
    organizations: int = 12
    agents: int = 5
    max_comments: int = 6  # comments per ticket (1..max_comments); the first is the description
    long_ticket_share: float = 0.0  # tickets with more comments than one comments page (150)
    private_share: float = 0.2  # share of agent comments that are private (internal notes)
    deleted: int = 0  # tickets deleted before the first sync
    merged: int = 0  # tickets merged into another before the first sync


@dataclass
class Comment:
    id: int
    author_id: int
    public: bool
    html_body: str
    plain_body: str
    created_at: int
    via: dict[str, Any]


@dataclass
class Ticket:
    id: int
    subject: str
    status: str
    priority: str | None
    type: str | None
    requester_id: int
    assignee_id: int | None
    organization_id: int | None
    tags: list[str]
    custom_fields: list[dict[str, Any]]
    satisfaction_rating: dict[str, Any] | None
    created_at: int
    updated_at: int
    generated_timestamp: int
    via: dict[str, Any]
    comments: list[Comment] = field(default_factory=list)


class Account:
    """All objects of one generated account, safe to mutate from the server thread."""

    def __init__(self, spec: AccountSpec) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        rng = random.Random(spec.seed)
        self._rng = rng
        self._next_comment = FIRST_COMMENT_ID
        self.organizations: dict[int, dict[str, Any]] = {}
        for i in range(spec.organizations):
            org_id = FIRST_ORG_ID + i
            self.organizations[org_id] = {
                "id": org_id,
                "name": f"Company {i}",
                "domain_names": [f"company{i}.example.com"],
                "details": "",
                "notes": "",
                "group_id": None,
                "shared_tickets": False,
                "shared_comments": False,
                "external_id": None,
                "tags": [PLANS[i % len(PLANS)].lower()],
                "organization_fields": {"plan": PLANS[i % len(PLANS)], "seats": 5 + 7 * i, "mrr": 100 * (i + 1)},
                "created_at": iso(spec.base_time - spec.span_seconds - 86_400),
                "updated_at": iso(spec.base_time - spec.span_seconds - 86_400),
            }
        self.users: dict[int, dict[str, Any]] = {}
        self.agent_ids: list[int] = []
        for i in range(spec.agents):
            uid = FIRST_USER_ID + i
            self.agent_ids.append(uid)
            self.users[uid] = self._user(
                uid, f"Agent {i}", f"agent{i}@support.example.com", "admin" if i == 0 else "agent"
            )
        n_end_users = spec.end_users or max(1, spec.tickets // 3)
        self.end_user_ids: list[int] = []
        org_ids = sorted(self.organizations)
        for i in range(n_end_users):
            uid = FIRST_USER_ID + 1_000 + i
            self.end_user_ids.append(uid)
            org = org_ids[i % len(org_ids)] if org_ids and i % 7 != 6 else None  # some customers have no org
            self.users[uid] = self._user(uid, f"Customer {i}", f"customer{i}@mail.example.com", "end-user", org)
        self.tickets: dict[int, Ticket] = {}
        self.deleted: dict[int, int] = {}  # ticket id -> deleted at (Unix s)
        self.merged_into: dict[int, int] = {}  # source ticket id -> target ticket id
        for i in range(spec.tickets):
            self._generate_ticket(FIRST_TICKET_ID + i, rng)
        ids = sorted(self.tickets)
        for tid in rng.sample(ids, min(spec.deleted, len(ids))):
            self.delete(tid, self.tickets[tid].updated_at + 60)
        alive = [t for t in ids if t not in self.deleted]
        for _ in range(min(spec.merged, len(alive) // 2)):
            source, target = rng.sample(alive, 2)
            alive.remove(source)
            self.merge(source, target, max(self.tickets[source].updated_at, self.tickets[target].updated_at) + 60)

    # ---- generation ------------------------------------------------------------------------
    def _user(self, uid: int, name: str, email: str, role: str, org: int | None = None) -> dict[str, Any]:
        return {
            "id": uid,
            "name": name,
            "email": email,
            "role": role,
            "organization_id": org,
            "active": True,
            "verified": True,
            "time_zone": "UTC",
            "locale": "en-US",
            "tags": [],
            "user_fields": {},
            "created_at": iso(self.spec.base_time - self.spec.span_seconds - 86_400),
            "updated_at": iso(self.spec.base_time - self.spec.span_seconds - 86_400),
        }

    def _comment_id(self) -> int:
        self._next_comment += 1
        return self._next_comment

    def _text(self, rng: random.Random, words: int) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(words))

    def new_comment(
        self, author_id: int, public: bool, text: str, at: int, via: dict[str, Any] | None = None
    ) -> Comment:
        """A comment with Zendesk's three bodies: plain text, HTML and (on output) the Markdown-ish body."""
        html = '<div class="zd-comment" dir="auto">' + "".join(f"<p>{line}</p>" for line in text.split("\n")) + "</div>"
        return Comment(
            self._comment_id(),
            author_id,
            public,
            html,
            text,
            at,
            via or {"channel": "web", "source": {"from": {}, "to": {}, "rel": None}},
        )

    def _generate_ticket(self, tid: int, rng: random.Random) -> None:
        spec = self.spec
        created = spec.base_time - rng.randint(0, spec.span_seconds)
        requester = rng.choice(self.end_user_ids)
        org = self.users[requester]["organization_id"]
        assignee = rng.choice(self.agent_ids) if rng.random() < 0.9 else None
        n_comments = (
            150 + rng.randint(1, 60) if rng.random() < spec.long_ticket_share else rng.randint(1, spec.max_comments)
        )
        at = created
        comments: list[Comment] = []
        for k in range(n_comments):
            if k == 0:
                author, public = requester, True
                text = f"Hello, I have a problem with {self._text(rng, 6)}.\nCan you help?"
            elif k % 2 == 1:
                author = assignee or rng.choice(self.agent_ids)
                public = rng.random() >= spec.private_share
                text = ("Internal: " if not public else "Thanks for reaching out. ") + self._text(rng, 8)
            else:
                author, public = requester, True
                text = f"Still seeing {self._text(rng, 5)}."
            at += rng.randint(1, 7_200)
            comments.append(self.new_comment(author, public, text, at))
        status = rng.choice(STATUSES)
        rating = None
        if status in ("solved", "closed") and rng.random() < 0.5:
            rating = {"id": 361_000_000 + tid, "score": rng.choice(("good", "bad")), "comment": ""}
        self.tickets[tid] = Ticket(
            id=tid,
            subject=f"{self._text(rng, 3).capitalize()}",
            status=status,
            priority=rng.choice(PRIORITIES) if rng.random() < 0.8 else None,
            type=rng.choice(TYPES) if rng.random() < 0.8 else None,
            requester_id=requester,
            assignee_id=assignee,
            organization_id=org,
            tags=sorted(set(rng.sample(_WORDS[:12], rng.randint(0, 3)))),
            custom_fields=[
                {"id": CUSTOM_FIELD_PRODUCT, "value": rng.choice(("billing", "mobile", "api", None))},
                {"id": CUSTOM_FIELD_SEVERITY, "value": rng.choice(("S1", "S2", "S3"))},
            ],
            satisfaction_rating=rating,
            created_at=created,
            updated_at=at,
            generated_timestamp=at,
            via={"channel": "email", "source": {"from": {}, "to": {}, "rel": None}},
            comments=comments,
        )

    # ---- changes (the account moves while clients page) -----------------------------------
    def _bump(self, ticket: Ticket, at: int) -> None:
        ticket.updated_at = max(at, ticket.updated_at + 1)
        ticket.generated_timestamp = max(ticket.updated_at, ticket.generated_timestamp + 1)

    def touch(self, tid: int, at: int) -> None:
        """An agent edits the ticket (tags and priority change): a new version, no new comment."""
        with self.lock:
            ticket = self.tickets[tid]
            ticket.tags = sorted({*ticket.tags, "touched"})
            ticket.priority = "high"
            self._bump(ticket, at)

    def add_comment(
        self, tid: int, at: int, *, public: bool = True, from_requester: bool = True, text: str | None = None
    ) -> None:
        """A new comment (customer reply or agent note): updated_at and generated_timestamp move."""
        with self.lock:
            ticket = self.tickets[tid]
            author = ticket.requester_id if from_requester else (ticket.assignee_id or self.agent_ids[0])
            body = text or f"Follow-up {self._text(self._rng, 5)}"
            ticket.comments.append(self.new_comment(author, public, body, max(at, ticket.updated_at + 1)))
            self._bump(ticket, at)

    def touch_random(self, at: int, count: int, rng: random.Random) -> list[int]:
        """Change `count` random live tickets (a comment or an edit each)."""
        with self.lock:
            live = [t for t in self.tickets if t not in self.deleted]
            chosen = rng.sample(live, min(count, len(live)))
            for tid in chosen:
                if rng.random() < 0.5:
                    self.add_comment(tid, at)
                else:
                    self.touch(tid, at)
            return chosen

    def delete(self, tid: int, at: int) -> None:
        """Soft-delete: the export keeps returning the ticket, with status "deleted"."""
        with self.lock:
            ticket = self.tickets[tid]
            self.deleted[tid] = at
            ticket.status = "deleted"
            self._bump(ticket, at)

    def merge(self, source: int, target: int, at: int) -> None:
        """Merge `source` into `target` as Zendesk does: the source is closed with a private merge
        comment, the target receives a private comment quoting the source; both change."""
        with self.lock:
            src, dst = self.tickets[source], self.tickets[target]
            rel = {
                "channel": "web",
                "source": {"from": {"ticket_id": source}, "to": {"ticket_id": target}, "rel": "merge"},
            }
            src.comments.append(
                self.new_comment(
                    dst.assignee_id or self.agent_ids[0],
                    False,
                    f"This request was closed and merged into request #{target} \u201c{dst.subject}\u201d.",
                    at,
                    rel,
                )
            )
            last = src.comments[-2].plain_body if len(src.comments) > 1 else ""
            dst.comments.append(
                self.new_comment(
                    dst.assignee_id or self.agent_ids[0],
                    False,
                    f"Request #{source} \u201c{src.subject}\u201d was closed and merged into this request. "
                    f"Last comment in request #{source}:\n\n{last}",
                    at,
                    rel,
                )
            )
            src.status = "closed"
            self.merged_into[source] = target
            self._bump(src, at)
            self._bump(dst, at)

    # ---- rendering -------------------------------------------------------------------------
    def ticket_json(self, ticket: Ticket, base_url: str) -> dict[str, Any]:
        first = ticket.comments[0] if ticket.comments else None
        return {
            "url": f"{base_url}/api/v2/tickets/{ticket.id}.json",
            "id": ticket.id,
            "external_id": None,
            "via": ticket.via,
            "created_at": iso(ticket.created_at),
            "updated_at": iso(ticket.updated_at),
            "generated_timestamp": ticket.generated_timestamp,
            "type": ticket.type,
            "subject": ticket.subject,
            "raw_subject": ticket.subject,
            "description": first.plain_body if first else "",
            "priority": ticket.priority,
            "status": ticket.status,
            "recipient": None,
            "requester_id": ticket.requester_id,
            "submitter_id": ticket.requester_id,
            "assignee_id": ticket.assignee_id,
            "organization_id": ticket.organization_id,
            "group_id": None,
            "collaborator_ids": [],
            "follower_ids": [],
            "email_cc_ids": [],
            "has_incidents": False,
            "is_public": True,
            "due_at": None,
            "tags": list(ticket.tags),
            "custom_fields": [dict(f) for f in ticket.custom_fields],
            "fields": [dict(f) for f in ticket.custom_fields],
            "satisfaction_rating": dict(ticket.satisfaction_rating) if ticket.satisfaction_rating else None,
            "sharing_agreement_ids": [],
            "brand_id": 360_300_000_001,
            "allow_channelback": False,
            "allow_attachments": True,
        }

    def comment_json(self, comment: Comment) -> dict[str, Any]:
        return {
            "id": comment.id,
            "type": "Comment",
            "author_id": comment.author_id,
            "body": comment.plain_body,
            "html_body": comment.html_body,
            "plain_body": comment.plain_body,
            "public": comment.public,
            "attachments": [],
            "audit_id": comment.id + 1,
            "via": comment.via,
            "metadata": {"system": {}, "custom": {}},
            "created_at": iso(comment.created_at),
        }

    def sideloads(self, tickets: list[Ticket]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Users (requesters, submitters, assignees) and organizations the tickets reference."""
        user_ids: set[int] = set()
        org_ids: set[int] = set()
        for t in tickets:
            user_ids.update(u for u in (t.requester_id, t.assignee_id) if u is not None)
            if t.organization_id is not None:
                org_ids.add(t.organization_id)
        users = [dict(self.users[u]) for u in sorted(user_ids) if u in self.users]
        orgs = [dict(self.organizations[o]) for o in sorted(org_ids) if o in self.organizations]
        return users, orgs
