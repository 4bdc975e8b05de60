"""Source-agnostic conversation records: what every connector produces and the store consumes.

Connectors (files, Intercom, ...) parse their own formats into these plain dataclasses;
`threadline.connectors.store.upsert_conversations` is the only code that writes them to the
database. Keeping the boundary here means a new connector never touches SQL.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

AuthorRole = Literal["customer", "agent", "bot", "note"]
AUTHOR_ROLES: tuple[AuthorRole, ...] = ("customer", "agent", "bot", "note")


@dataclass(frozen=True)
class ContactRecord:
    """A customer as the source knows them (enrichment for stories: who is affected)."""

    external_id: str
    email: str | None = None
    name: str | None = None
    company: str | None = None
    plan: str | None = None
    attributes: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class MessageRecord:
    """One ordered part of a conversation, text as the source gave it (HTML allowed)."""

    author_role: AuthorRole
    text: str
    created_at: datetime | None = None
    external_id: str | None = None
    author_id: str | None = None
    truncated: bool = False


@dataclass(frozen=True)
class ConversationRecord:
    """One conversation with its messages, ready to upsert by (source, external_id).

    `raw` is the source payload kept verbatim (extra fields, labels); the pipeline never
    reads decisions from it. `notes` records anything the connector had to change
    (truncation, dropped parts) so nothing is altered silently.
    """

    external_id: str
    messages: list[MessageRecord]
    created_at: datetime | None = None
    updated_at: datetime | None = None
    state: str | None = None
    url: str | None = None
    subject: str | None = None
    tags: list[str] = field(default_factory=list)
    contact: ContactRecord | None = None
    assignee: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ArticleRecord:
    """One knowledge article or documentation page, ready to upsert by (knowledge source, external_id).

    `text` is Markdown (headings as `#` lines): the folder connector passes Markdown through,
    HTML is reduced to its main text first, so the store splits every kind at its headings
    the same way. `url` is where a person reads it (also what conversations link to).
    """

    external_id: str
    title: str
    text: str
    url: str | None = None
    updated_at: datetime | None = None
    raw: dict[str, Any] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
