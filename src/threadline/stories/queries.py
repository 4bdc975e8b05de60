"""Read models for stories and themes, shared by the CLI, the report and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session, selectinload

from threadline.config import MAX_LIST_LIMIT
from threadline.db.models import Conversation, Message, Run, Story, StoryEvidence, Theme, ThemeMember


def latest_finished_run(session: Session) -> Run | None:
    """The newest succeeded run (what lists show by default)."""
    return session.execute(
        select(Run).where(Run.status == "succeeded").order_by(Run.id.desc()).limit(1)
    ).scalar()


def bounded(limit: int) -> int:
    """Clamp a requested list size into [1, MAX_LIST_LIMIT]."""
    return max(1, min(int(limit), MAX_LIST_LIMIT))


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
        "run_id": story.run_id,
        "evidence": [e.__dict__ for e in evidence or []],
    }


def list_stories(session: Session, *, run_id: int | None = None, limit: int = 50, offset: int = 0) -> list[Story]:
    """Stories refreshed by `run_id` (default: the latest succeeded run), best rank first."""
    if run_id is None:
        latest = latest_finished_run(session)
        if latest is None:
            return []
        run_id = latest.id
    return list(
        session.execute(
            select(Story).options(selectinload(Story.theme)).where(Story.run_id == run_id)
            .order_by(Story.rank, Story.id).limit(bounded(limit)).offset(max(offset, 0))
        ).scalars()
    )  # fmt: skip


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


def theme_tree(session: Session, *, run_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Top-level groups with their themes (sizes in `run_id`, default the latest succeeded run)."""
    if run_id is None:
        latest = latest_finished_run(session)
        if latest is None:
            return []
        run_id = latest.id
    sizes = dict(
        session.execute(
            select(ThemeMember.theme_id, func.count()).where(ThemeMember.run_id == run_id).group_by(ThemeMember.theme_id)
        ).all()
    )
    themes = session.execute(select(Theme).where(Theme.id.in_(list(sizes)))).scalars().all()
    parents = {t.parent_id for t in themes if t.parent_id}
    groups = {g.id: g for g in session.execute(select(Theme).where(Theme.id.in_(parents))).scalars()}
    tree: dict[int | None, dict[str, Any]] = {}
    for theme in sorted(themes, key=lambda t: -sizes[t.id]):
        group = groups.get(theme.parent_id) if theme.parent_id else None
        node = tree.setdefault(
            group.id if group else None,
            {"id": group.id if group else None, "name": group.name if group else "(ungrouped)", "size": 0, "themes": []},
        )
        node["size"] += sizes[theme.id]
        node["themes"].append(
            {
                "id": theme.id,
                "name": theme.name,
                "size": sizes[theme.id],
                "keywords": list(theme.keywords or [])[:8],
                "first_seen": theme.first_seen.isoformat() if theme.first_seen else None,
                "last_seen": theme.last_seen.isoformat() if theme.last_seen else None,
            }
        )
    return sorted(tree.values(), key=lambda g: -g["size"])[: bounded(limit)]


def message_text(session: Session, message_id: int) -> str | None:
    return session.execute(select(Message.text).where(Message.id == message_id)).scalar()
