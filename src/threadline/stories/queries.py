"""Read models for stories and themes, shared by the CLI, the report and the HTTP API."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Select, bindparam, func, select
from sqlalchemy.orm import Session, selectinload

from threadline.config import MAX_LIST_LIMIT
from threadline.db.models import Conversation, Message, Run, Story, StoryEvidence, Theme, ThemeMember


def latest_finished_run(session: Session) -> Run | None:
    """The newest succeeded run (what lists show by default)."""
    return session.execute(select(Run).where(Run.status == "succeeded").order_by(Run.id.desc()).limit(1)).scalar()


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
            select(Story)
            .options(selectinload(Story.theme))
            .where(Story.run_id == run_id)
            .order_by(Story.rank, Story.id)
            .limit(bounded(limit))
            .offset(max(offset, 0))
        ).scalars()
    )


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


THEME_KEYWORDS = 8  # keywords per theme in lists: enough to recognise it, short enough for a row


def _themes_of_run() -> Select:
    """Themes with members in :run_id, largest first, with their sizes and groups (parents)."""
    members, themes = ThemeMember.__table__, Theme.__table__
    parents = themes.alias("parents")
    sizes = (
        select(members.c.theme_id, func.count().label("size"))
        .where(members.c.run_id == bindparam("run_id", type_=BigInteger))
        .group_by(members.c.theme_id)
        .subquery()
    )
    return (
        select(
            themes.c.id,
            themes.c.name,
            sizes.c.size,
            themes.c.keywords,
            themes.c.first_seen,
            themes.c.last_seen,
            parents.c.id.label("group_id"),
            parents.c.name.label("group_name"),
        )
        .select_from(
            sizes.join(themes, themes.c.id == sizes.c.theme_id).outerjoin(parents, parents.c.id == themes.c.parent_id)
        )
        .order_by(sizes.c.size.desc(), themes.c.id)
    )


# Built once at import: SQLAlchemy reuses its compiled form (the API lists themes on every overview).
THEMES_OF_RUN = _themes_of_run()


def theme_tree(session: Session, *, run_id: int | None = None, limit: int = 200) -> list[dict[str, Any]]:
    """Top-level groups, largest first, with their themes (sizes in `run_id`, default the latest succeeded run).

    One query of the columns shown; the themes' centroid vectors are never read.
    """
    if run_id is None:
        latest = latest_finished_run(session)
        if latest is None:
            return []
        run_id = latest.id
    tree: dict[int | None, dict[str, Any]] = {}
    for theme_id, name, size, keywords, first_seen, last_seen, group_id, group_name in session.execute(
        THEMES_OF_RUN, {"run_id": run_id}
    ):
        node = tree.setdefault(
            group_id, {"id": group_id, "name": group_name if group_id else "(ungrouped)", "size": 0, "themes": []}
        )
        node["size"] += size
        node["themes"].append(
            {
                "id": theme_id,
                "name": name,
                "size": size,
                "keywords": list(keywords or [])[:THEME_KEYWORDS],
                "first_seen": first_seen.isoformat() if first_seen else None,
                "last_seen": last_seen.isoformat() if last_seen else None,
            }
        )
    return sorted(tree.values(), key=lambda g: -g["size"])[: bounded(limit)]


def message_text(session: Session, message_id: int) -> str | None:
    return session.execute(select(Message.text).where(Message.id == message_id)).scalar()
