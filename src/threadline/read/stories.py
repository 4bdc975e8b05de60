"""Stories: filtered and sorted lists, one story with evidence in its conversations, edits."""

from __future__ import annotations

import functools
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import BigInteger, Integer, Select, any_, bindparam, select
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session, selectinload

from threadline.db.models import Conversation, Message, Story, StoryEvidence, Theme
from threadline.read.themes import default_run_id

STORIES = Story.__table__  # Core tables: list reads build rows, not ORM objects (cheaper per row)
THEMES = Theme.__table__
EVIDENCE = StoryEvidence.__table__
CONVERSATIONS = Conversation.__table__

StorySort = Literal["rank", "conversations", "customers", "last_seen", "score", "title"]
SORT_COLUMNS = {
    "rank": (STORIES.c.rank.asc(), STORIES.c.id.asc()),
    "conversations": (STORIES.c.conversation_count.desc(), STORIES.c.id.asc()),
    "customers": (STORIES.c.customer_count.desc(), STORIES.c.id.asc()),
    "last_seen": (STORIES.c.last_seen.desc().nulls_last(), STORIES.c.id.asc()),
    "score": (STORIES.c.score.desc(), STORIES.c.id.asc()),
    "title": (STORIES.c.title.asc(), STORIES.c.id.asc()),
}


# The columns of `story_out`, under its names (theme by name only: not the centroid vector).
@dataclass(frozen=True)
class EvidenceView:
    quote: str
    conversation_id: int
    conversation_external_id: str
    conversation_url: str | None
    message_id: int
    start: int
    end: int


def story_dict(story: Story, evidence: list[EvidenceView] | None = None) -> dict[str, Any]:
    """A JSON-ready view of a story (dates as ISO strings)."""

    def iso(value: datetime | None) -> str | None:
        return value.isoformat() if value else None

    return {
        "id": story.id,
        "rank": story.rank,
        "title": story.title,
        "theme_id": story.theme_id,
        "theme": story.theme.name if story.theme else None,
        "status": story.status,
        "severity": story.severity,
        "severity_reason": story.severity_reason,
        "problem": story.problem,
        "user_story": story.user_story,
        "acceptance_criteria": list(story.acceptance_criteria or []),
        "conversations": story.conversation_count,
        "customers": story.customer_count,
        "first_seen": iso(story.first_seen),
        "last_seen": iso(story.last_seen),
        "trend": story.trend,
        "priority": story.priority or {},
        "run_id": story.run_id,
        "evidence": [e.__dict__ for e in evidence or []],
    }


def story_evidence(session: Session, story_id: int) -> list[EvidenceView]:
    rows = session.execute(
        select(StoryEvidence, Conversation.external_id, Conversation.url)
        .join(Conversation, Conversation.id == StoryEvidence.conversation_id)
        .where(StoryEvidence.story_id == story_id)
        .order_by(StoryEvidence.position)
    ).all()
    return [
        EvidenceView(e.quote, e.conversation_id, external_id, url, e.message_id, e.start_offset, e.end_offset)
        for e, external_id, url in rows
    ]


STORY_COLUMNS = (
    STORIES.c.id,
    STORIES.c.rank,
    STORIES.c.title,
    STORIES.c.theme_id,
    THEMES.c.name.label("theme"),
    STORIES.c.status,
    STORIES.c.edited,
    STORIES.c.severity,
    STORIES.c.severity_reason,
    STORIES.c.problem,
    STORIES.c.user_story,
    STORIES.c.acceptance_criteria,
    STORIES.c.conversation_count.label("conversations"),
    STORIES.c.customer_count.label("customers"),
    STORIES.c.first_seen,
    STORIES.c.last_seen,
    STORIES.c.trend,
    STORIES.c.priority,
    STORIES.c.run_id,
)
THEME_NAME_ONLY = selectinload(Story.theme).load_only(Theme.id, Theme.name)  # not the centroid vector: parsed per row
MAX_CONTEXT_MESSAGES = 200  # messages shown around evidence: a long thread is cut, the quoted message always kept


def story_out(session: Session, story: Story, evidence: list[EvidenceView] | None = None) -> dict[str, Any]:
    """One story as every view shows it (`story_dict` plus `edited`); evidence loaded unless given."""
    data = story_dict(story, story_evidence(session, story.id) if evidence is None else evidence)
    data["edited"] = bool(story.edited)
    return data


STORY_FILTERS = ("status", "severity", "theme_id")  # list_stories' optional filters


@functools.lru_cache(maxsize=1)
def _evidence_statement() -> Select:
    """Evidence of the stories in :ids (an array parameter: one SQL text whatever the page size)."""
    return (
        select(
            EVIDENCE.c.story_id,
            EVIDENCE.c.quote,
            EVIDENCE.c.conversation_id,
            CONVERSATIONS.c.external_id.label("conversation_external_id"),
            CONVERSATIONS.c.url.label("conversation_url"),
            EVIDENCE.c.message_id,
            EVIDENCE.c.start_offset.label("start"),
            EVIDENCE.c.end_offset.label("end"),
        )
        .select_from(EVIDENCE.join(CONVERSATIONS, CONVERSATIONS.c.id == EVIDENCE.c.conversation_id))
        .where(EVIDENCE.c.story_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
        .order_by(EVIDENCE.c.story_id, EVIDENCE.c.position)
    )


def evidence_for(session: Session, story_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Evidence of many stories in one query (a page of stories must not cost a query per story)."""
    found: dict[int, list[dict[str, Any]]] = {story_id: [] for story_id in story_ids}
    if not story_ids:
        return found
    for row in session.execute(_evidence_statement(), {"ids": story_ids}).mappings():
        item = dict(row)
        found[item.pop("story_id")].append(item)
    return found


@functools.lru_cache(maxsize=2 ** len(STORY_FILTERS) * len(SORT_COLUMNS))
def _list_statement(present: frozenset[str], sort: StorySort) -> Select:
    """Stories of :run_id with the filters in `present` as bind parameters, plus :limit and :offset (built once)."""
    statement = (
        select(*STORY_COLUMNS)
        .select_from(STORIES.outerjoin(THEMES, THEMES.c.id == STORIES.c.theme_id))
        .where(STORIES.c.run_id == bindparam("run_id", type_=BigInteger))
    )
    for name in STORY_FILTERS:
        if name in present:
            statement = statement.where(STORIES.c[name] == bindparam(name, type_=STORIES.c[name].type))
    return (
        statement.order_by(*SORT_COLUMNS[sort])
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def list_stories(
    session: Session,
    *,
    limit: int,
    offset: int,
    run_id: int | None = None,
    status: str | None = None,
    severity: str | None = None,
    theme_id: int | None = None,
    sort: StorySort = "rank",
) -> list[dict[str, Any]]:
    """Stories of a run (default: latest succeeded), filtered and sorted; evidence included.

    Rows in the shape of `story_out`, read as columns:
    two queries per page, whatever its size.
    """
    run_id = default_run_id(session, run_id)
    if run_id is None:
        return []
    filters = {
        name: value
        for name, value in (("status", status), ("severity", severity), ("theme_id", theme_id))
        if value is not None
    }
    result = session.execute(
        _list_statement(frozenset(filters), sort), {**filters, "run_id": run_id, "limit": limit, "offset": offset}
    )
    rows = [dict(row) for row in result.mappings()]
    evidence = evidence_for(session, [row["id"] for row in rows])
    for row in rows:
        row["edited"] = bool(row["edited"])
        row["acceptance_criteria"] = list(row["acceptance_criteria"] or [])
        row["first_seen"], row["last_seen"] = _iso(row["first_seen"]), _iso(row["last_seen"])
        row["evidence"] = evidence[row["id"]]
    return rows


def get_story(session: Session, story_id: int) -> Story | None:
    return session.execute(select(Story).options(THEME_NAME_ONLY).where(Story.id == story_id)).scalar()


def update_story(session: Session, story: Story, changes: dict[str, Any]) -> Story:
    """Apply a person's edits: text changes set `edited` (runs then keep them); status is validated upstream."""
    text_changed = False
    for field in ("title", "problem", "user_story"):
        if field in changes and changes[field] is not None and changes[field] != getattr(story, field):
            setattr(story, field, changes[field])
            text_changed = True
    if text_changed:
        story.edited = True
    if changes.get("status") is not None:
        story.status = changes["status"]
    story.updated_at = datetime.now(UTC)
    return story


def evidence_in_context(session: Session, story_id: int) -> list[dict[str, Any]]:
    """For each quoted conversation, its messages with the quoted spans split out for highlighting.

    Each message is a list of (text, highlighted) segments cut at the stored offsets, so the
    template never re-searches for the quote and escapes every segment itself.
    """
    evidence = story_evidence(session, story_id)
    by_conversation: dict[int, list] = {}
    for item in evidence:
        by_conversation.setdefault(item.conversation_id, []).append(item)
    blocks = []
    for conversation_id, items in by_conversation.items():
        spans: dict[int, list[tuple[int, int]]] = {}
        for item in items:
            spans.setdefault(item.message_id, []).append((item.start, item.end))
        messages = (
            session.execute(
                select(Message)
                .where(Message.conversation_id == conversation_id)
                .order_by(Message.position)
                .limit(MAX_CONTEXT_MESSAGES)
            )
            .scalars()
            .all()
        )
        blocks.append(
            {
                "conversation_id": conversation_id,
                "external_id": items[0].conversation_external_id,
                "url": items[0].conversation_url,
                "quotes": [i.quote for i in items],
                "messages": [
                    {
                        "id": m.id,
                        "author_role": m.author_role,
                        "created_at": m.created_at,
                        "segments": split_segments(m.text, spans.get(m.id, [])),
                        "quoted": m.id in spans,
                    }
                    for m in messages
                ],
            }
        )
    return blocks


def split_segments(text: str, spans: list[tuple[int, int]]) -> list[tuple[str, bool]]:
    """`text` cut into (segment, highlighted) pieces at the given [start, end) offsets (overlaps merged)."""
    merged: list[list[int]] = []
    for start, end in sorted((max(0, s), min(len(text), e)) for s, e in spans):
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    segments: list[tuple[str, bool]] = []
    cursor = 0
    for start, end in merged:
        if start > cursor:
            segments.append((text[cursor:start], False))
        segments.append((text[start:end], True))
        cursor = end
    if cursor < len(text) or not segments:
        segments.append((text[cursor:], False))
    return segments
