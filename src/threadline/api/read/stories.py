"""Stories: filtered and sorted lists, one story with evidence in its conversations, edits."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Literal

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from threadline.api.read.themes import default_run_id
from threadline.db.models import Conversation, Message, Story, StoryEvidence, Theme
from threadline.stories.queries import EvidenceView, story_dict, story_evidence

StorySort = Literal["rank", "conversations", "customers", "last_seen", "score", "title"]
SORT_COLUMNS = {
    "rank": (Story.rank.asc(), Story.id.asc()),
    "conversations": (Story.conversation_count.desc(), Story.id.asc()),
    "customers": (Story.customer_count.desc(), Story.id.asc()),
    "last_seen": (Story.last_seen.desc().nulls_last(), Story.id.asc()),
    "score": (Story.score.desc(), Story.id.asc()),
    "title": (Story.title.asc(), Story.id.asc()),
}
THEME_NAME_ONLY = selectinload(Story.theme).load_only(Theme.id, Theme.name)  # not the centroid vector: parsed per row
MAX_CONTEXT_MESSAGES = 200  # messages shown around evidence: a long thread is cut, the quoted message always kept


def story_out(session: Session, story: Story, evidence: list[EvidenceView] | None = None) -> dict[str, Any]:
    """The API view of a story (the CLI's `story_dict` plus `edited`); evidence loaded unless given."""
    data = story_dict(story, story_evidence(session, story.id) if evidence is None else evidence)
    data["edited"] = bool(story.edited)
    return data


def evidence_for(session: Session, story_ids: list[int]) -> dict[int, list[EvidenceView]]:
    """Evidence of many stories in one query (a page of stories must not cost a query per story)."""
    if not story_ids:
        return {}
    rows = session.execute(
        select(StoryEvidence, Conversation.external_id, Conversation.url)
        .join(Conversation, Conversation.id == StoryEvidence.conversation_id)
        .where(StoryEvidence.story_id.in_(story_ids))
        .order_by(StoryEvidence.story_id, StoryEvidence.position)
    ).all()  # fmt: skip
    found: dict[int, list[EvidenceView]] = {story_id: [] for story_id in story_ids}
    for e, external_id, url in rows:
        found[e.story_id].append(
            EvidenceView(e.quote, e.conversation_id, external_id, url, e.message_id, e.start_offset, e.end_offset)
        )
    return found


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
    """Stories of a run (default: latest succeeded), filtered and sorted; evidence included."""
    run_id = default_run_id(session, run_id)
    if run_id is None:
        return []
    statement = select(Story).options(THEME_NAME_ONLY).where(Story.run_id == run_id)
    if status is not None:
        statement = statement.where(Story.status == status)
    if severity is not None:
        statement = statement.where(Story.severity == severity)
    if theme_id is not None:
        statement = statement.where(Story.theme_id == theme_id)
    stories = session.execute(statement.order_by(*SORT_COLUMNS[sort]).limit(limit).offset(offset)).scalars().all()
    evidence = evidence_for(session, [s.id for s in stories])
    return [story_out(session, s, evidence[s.id]) for s in stories]


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
        messages = session.execute(
            select(Message).where(Message.conversation_id == conversation_id).order_by(Message.position)
            .limit(MAX_CONTEXT_MESSAGES)
        ).scalars().all()  # fmt: skip
        blocks.append(
            {
                "conversation_id": conversation_id,
                "external_id": items[0].conversation_external_id,
                "url": items[0].conversation_url,
                "quotes": [i.quote for i in items],
                "messages": [
                    {"id": m.id, "author_role": m.author_role, "created_at": m.created_at,
                     "segments": split_segments(m.text, spans.get(m.id, [])), "quoted": m.id in spans}
                    for m in messages
                ],  # fmt: skip
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
