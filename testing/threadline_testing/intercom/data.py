"""Deterministic in-memory Intercom workspace for the stand-in server.

A `Workspace` is generated from a `WorkspaceSpec` (size, seed, time span) and renders its
objects in Intercom 2.16 JSON shapes. It can also be changed while a client pages through
it (`touch`, `delete`), which is how the stand-in reproduces Intercom's stateless-cursor
behaviour: records updated mid-pagination move and shift the pages after them.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass, field
from typing import Any

PARTS_CAP = 500  # parts per retrieved conversation: Intercom returns at most the 500 most recent
DEFAULT_BASE_TIME = 1_750_000_000  # Unix s (2025-06-15): fixed so workspaces are reproducible
DEFAULT_SPAN_SECONDS = 90 * 86_400  # conversations created over 90 days before the base time
APP_ID = "standin-app"

_WORDS = (
    "invoice export login password reset billing refund crash slow dashboard report sync "
    "mobile app email notification integration webhook api token permission team invite "
    "csv upload timeout error payment card plan upgrade downgrade search filter calendar"
).split()
_PART_AUTHORS = ("user", "lead", "admin", "bot", "ai", "note")


@dataclass(frozen=True)
class WorkspaceSpec:
    """Shape of a generated workspace (all counts are objects, times Unix seconds)."""

    conversations: int = 200
    seed: int = 0
    base_time: int = DEFAULT_BASE_TIME
    span_seconds: int = DEFAULT_SPAN_SECONDS
    contacts: int | None = None  # default: one contact per 4 conversations
    merged_contact_share: float = 0.05  # contacts merged into another (answer 410)
    missing_contact_share: float = 0.01  # contacts referenced but gone (answer 404)
    huge_conversation_share: float = 0.0  # conversations with more parts than PARTS_CAP
    deleted: int = 0  # conversations deleted before the first sync
    max_parts: int = 8  # parts per ordinary conversation (1..max_parts)
    part_gap_seconds: int = 3_600  # max seconds between consecutive parts (small values make ties)
    articles: int = 0  # Help Center articles (GET /articles); a few are drafts


@dataclass
class Conversation:
    """Stand-in's own conversation state (rendered to JSON on demand)."""

    id: str
    created_at: int
    updated_at: int
    state: str
    title: str | None
    contact_id: str
    company_id: str | None
    admin_assignee_id: int | None
    tag_ids: list[str]
    subject: str
    body: str
    parts: list[dict[str, Any]] = field(default_factory=list)


class Workspace:
    """All objects of one generated workspace, safe to mutate from the server thread."""

    def __init__(self, spec: WorkspaceSpec) -> None:
        self.spec = spec
        self.lock = threading.RLock()
        rng = random.Random(spec.seed)
        self.admins = [
            {"type": "admin", "id": str(900_000 + i), "name": f"Agent {i}", "email": f"agent{i}@example.com"}
            for i in range(5)
        ]
        self.bot = {"type": "bot", "id": "800000", "name": "Operator", "email": "operator@example.com"}
        self.tags = [{"type": "tag", "id": str(700_000 + i), "name": w} for i, w in enumerate(_WORDS[:12])]
        self.companies = {
            f"c0{i:06d}": {"type": "company", "id": f"c0{i:06d}", "name": f"Company {i}"} for i in range(20)
        }
        n_contacts = spec.contacts or max(1, spec.conversations // 4)
        self.contacts: dict[str, dict[str, Any]] = {}
        self.merged_into: dict[str, str] = {}
        self.missing_contacts: set[str] = set()
        contact_ids = [f"6{i:023d}" for i in range(n_contacts)]
        for i, cid in enumerate(contact_ids):
            company = rng.choice(list(self.companies)) if rng.random() < 0.7 else None
            self.contacts[cid] = {
                "id": cid,
                "role": "user" if rng.random() < 0.8 else "lead",
                "email": f"customer{i}@example.org",
                "name": f"Customer {i}",
                "company_id": company,
                "plan": rng.choice(("free", "pro", "enterprise")),
                "created_at": spec.base_time - spec.span_seconds - 86_400,
            }
        for cid in contact_ids[1:]:
            roll = rng.random()
            if roll < spec.merged_contact_share:
                self.merged_into[cid] = contact_ids[0] if rng.random() < 0.5 else rng.choice(contact_ids[:10])
                if self.merged_into[cid] == cid:
                    del self.merged_into[cid]
            elif roll < spec.merged_contact_share + spec.missing_contact_share:
                self.missing_contacts.add(cid)

        self.conversations: dict[str, Conversation] = {}
        self.deleted: dict[str, int] = {}
        start = spec.base_time - spec.span_seconds
        for i in range(spec.conversations):
            conv_id = str(100_000 + i)
            created = start + rng.randrange(max(1, spec.span_seconds))
            contact_id = rng.choice(contact_ids)
            n_parts = PARTS_CAP + 20 if rng.random() < spec.huge_conversation_share else rng.randint(1, spec.max_parts)
            conv = Conversation(
                id=conv_id,
                created_at=created,
                updated_at=created,
                state=rng.choice(("open", "closed", "closed", "snoozed")),
                title=None if rng.random() < 0.5 else f"About {rng.choice(_WORDS)}",
                contact_id=contact_id,
                company_id=self.contacts[contact_id]["company_id"],
                admin_assignee_id=int(rng.choice(self.admins)["id"]) if rng.random() < 0.7 else None,
                tag_ids=sorted({t["id"] for t in rng.sample(self.tags, rng.randint(0, 3))}),
                subject="" if rng.random() < 0.7 else f"Question about {rng.choice(_WORDS)}",
                body=self._sentence(rng),
            )
            t = created
            for j in range(n_parts):
                t += rng.randint(1, spec.part_gap_seconds)
                conv.parts.append(self._part(rng, conv, j, t))
            conv.updated_at = t
            self.conversations[conv_id] = conv
        for conv_id in rng.sample(sorted(self.conversations), min(spec.deleted, len(self.conversations))):
            self.delete(conv_id, self.conversations[conv_id].updated_at + 1)
        self._rng = random.Random(spec.seed + 1)
        self.articles: dict[str, dict[str, Any]] = {}
        for i in range(spec.articles):
            topic = _WORDS[i % len(_WORDS)]
            self.put_article(
                str(5_000 + i),
                title=f"How to manage your {topic}",
                body=f"<h2>Set up {topic}</h2><p>Open Settings and choose {topic}.</p>"
                f"<h2>Troubleshooting</h2><p>If {topic} fails, {self._sentence(rng)}</p>",
                state="draft" if i % 7 == 6 else "published",
                at=spec.base_time - (spec.articles - i) * 3_600,
            )

    def put_article(self, article_id: str, *, title: str, body: str, state: str = "published", at: int) -> None:
        """Create or replace a Help Center article (rendered as an `article_list_item`)."""
        with self.lock:
            created = self.articles.get(article_id, {}).get("created_at", at)
            self.articles[article_id] = {
                "id": article_id,
                "type": "article",
                "workspace_id": APP_ID,
                "parent_ids": [],
                "title": title,
                "description": "",
                "body": body,
                "author_id": int(self.admins[0]["id"]),
                "state": state,
                "created_at": created,
                "updated_at": at,
                "url": f"https://help.example.test/{APP_ID}/en/articles/{article_id}",
            }

    @staticmethod
    def _sentence(rng: random.Random) -> str:
        return " ".join(rng.choice(_WORDS) for _ in range(rng.randint(4, 14))).capitalize() + "."

    def _part(self, rng: random.Random, conv: Conversation, index: int, at: int) -> dict[str, Any]:
        kind = rng.choice(_PART_AUTHORS)
        contact = self.contacts[conv.contact_id]
        if kind in ("user", "lead"):
            author = {"type": contact["role"], "id": contact["id"], "name": contact["name"], "email": contact["email"]}
            part_type = "comment"
        elif kind == "note":
            author = dict(rng.choice(self.admins))
            part_type = "note"
        elif kind == "ai":
            author = {**self.bot, "from_ai_agent": True, "is_ai_answer": True}
            part_type = "comment"
        else:
            author = dict(self.bot if kind == "bot" else rng.choice(self.admins))
            part_type = "comment"
        return {
            "id": f"{conv.id}{index:05d}",
            "part_type": part_type,
            "body": self._sentence(rng),
            "created_at": at,
            "author": author,
        }

    # ---- mutation ----------------------------------------------------------------------
    def touch(self, conv_id: str, now: int) -> None:
        """A customer replies: append a part and bump updated_at (moves it in updated_at order)."""
        with self.lock:
            conv = self.conversations[conv_id]
            at = max(now, conv.updated_at + 1)
            conv.parts.append(self._part(self._rng, conv, len(conv.parts), at))
            conv.parts[-1]["author"] = {
                "type": self.contacts[conv.contact_id]["role"],
                "id": conv.contact_id,
                "name": self.contacts[conv.contact_id]["name"],
                "email": self.contacts[conv.contact_id]["email"],
            }
            conv.parts[-1]["part_type"] = "comment"
            conv.updated_at = at

    def touch_random(self, now: int, count: int) -> list[str]:
        """Touch `count` random live conversations; returns their ids."""
        with self.lock:
            ids = sorted(self.conversations)
            chosen = self._rng.sample(ids, min(count, len(ids)))
            for conv_id in chosen:
                self.touch(conv_id, now)
            return chosen

    def delete(self, conv_id: str, at: int) -> None:
        """Delete a conversation (it leaves search and appears in /conversations/deleted)."""
        with self.lock:
            self.conversations.pop(conv_id, None)
            self.deleted[conv_id] = at

    # ---- rendering ---------------------------------------------------------------------
    def contact_ref_json(self, contact_id: str) -> dict[str, Any]:
        return {"type": "contact", "id": contact_id, "external_id": None}

    def list_item_json(self, conv: Conversation, base_url: str) -> dict[str, Any]:
        """Conversation as search/list return it (no parts)."""
        author = self.contacts[conv.contact_id]
        company = self.companies.get(conv.company_id) if conv.company_id else None
        return {
            "type": "conversation",
            "id": conv.id,
            "title": conv.title,
            "created_at": conv.created_at,
            "updated_at": conv.updated_at,
            "waiting_since": None,
            "snoozed_until": None,
            "open": conv.state != "closed",
            "state": conv.state,
            "read": True,
            "priority": "none",
            **({"admin_assignee_id": conv.admin_assignee_id} if conv.admin_assignee_id else {}),
            "company": self.company_json(company) if company else None,
            "tags": {
                "type": "tag.list",
                "tags": [
                    {
                        "type": "tag",
                        "id": t["id"],
                        "name": t["name"],
                        "applied_at": conv.created_at,
                        "applied_by": {"type": "admin", "id": self.admins[0]["id"]},
                    }
                    for t in self.tags
                    if t["id"] in conv.tag_ids
                ],
            },
            "source": {
                "type": "conversation",
                "id": f"s{conv.id}",
                "delivered_as": "customer_initiated",
                "subject": conv.subject,
                "body": conv.body,
                "author": {
                    "type": author["role"],
                    "id": author["id"],
                    "name": author["name"],
                    "email": author["email"],
                },
                "attachments": [],
                "url": f"https://app.example.com/help/{conv.id}",
                "redacted": False,
            },
            "contacts": {"type": "contact.list", "contacts": [self.contact_ref_json(conv.contact_id)]},
            "teammates": {"type": "admin.list", "teammates": []},
            "custom_attributes": {},
            "first_contact_reply": None,
            "statistics": None,
            "linked_objects": {"type": "list", "total_count": 0, "has_more": False, "data": []},
            "ai_agent_participated": any(p["author"].get("from_ai_agent") for p in conv.parts),
            "ai_agent": None,
        }

    def company_json(self, company: dict[str, Any]) -> dict[str, Any]:
        return {"type": "company", "id": company["id"], "name": company["name"], "company_id": company["id"]}

    def conversation_json(self, conv: Conversation, base_url: str) -> dict[str, Any]:
        """Conversation as GET /conversations/{id} returns it: the 500 most recent parts."""
        out = self.list_item_json(conv, base_url)
        parts = conv.parts[-PARTS_CAP:]
        out["conversation_parts"] = {
            "type": "conversation_part.list",
            "conversation_parts": [
                {
                    "type": "conversation_part",
                    "id": p["id"],
                    "part_type": p["part_type"],
                    "body": p["body"],
                    "created_at": p["created_at"],
                    "updated_at": p["created_at"],
                    "notified_at": p["created_at"],
                    "assigned_to": None,
                    "author": p["author"],
                    "attachments": [],
                    "external_id": None,
                    "redacted": False,
                }
                for p in parts
            ],
            "total_count": len(conv.parts),
        }
        return out

    def contact_json(self, contact_id: str, base_url: str) -> dict[str, Any]:
        c = self.contacts[contact_id]
        companies = [c["company_id"]] if c["company_id"] else []
        return {
            "type": "contact",
            "id": c["id"],
            "external_id": None,
            "workspace_id": APP_ID,
            "role": c["role"],
            "email": c["email"],
            "email_domain": c["email"].split("@", 1)[1],
            "phone": None,
            "name": c["name"],
            "owner_id": None,
            "has_hard_bounced": False,
            "marked_email_as_spam": False,
            "unsubscribed_from_emails": False,
            "created_at": c["created_at"],
            "updated_at": c["created_at"],
            "signed_up_at": c["created_at"],
            "last_seen_at": None,
            "custom_attributes": {"plan": c["plan"]},
            "avatar": None,
            "companies": {
                "data": [{"type": "company", "id": x, "url": f"{base_url}/companies/{x}"} for x in companies],
                "url": f"{base_url}/contacts/{c['id']}/companies",
                "total_count": len(companies),
                "has_more": False,
            },
            "location": {"type": "location", "country": None, "region": None, "city": None},
        }
