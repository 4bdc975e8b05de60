"""The overview: conversation volume over time, rising themes, the current run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from threadline.api.read.runs import current_run
from threadline.api.read.themes import conversation_volume, default_run_id
from threadline.db.models import Conversation, Story

RISING_THEMES = 6  # themes on the overview: what fits beside the volume chart
RISING_DIRECTIONS = ("rising", "new")  # trend directions (stories.build) that count as rising
OVERVIEW_BUCKETS = 26  # weeks in the volume chart: half a year, readable at a glance


def overview(session: Session) -> dict[str, Any]:
    run_id = default_run_id(session, None)
    rising: list[dict[str, Any]] = []
    if run_id is not None:
        stories = session.execute(
            select(Story).where(Story.run_id == run_id).order_by(Story.score.desc(), Story.id).limit(200)
        ).scalars().all()  # fmt: skip
        ordered = [s for s in stories if (s.trend or {}).get("direction") in RISING_DIRECTIONS]
        ordered += [s for s in stories if s not in ordered]
        rising = [
            {"theme_id": s.theme_id, "story_id": s.id, "title": s.title, "conversations": s.conversation_count,
             "direction": (s.trend or {}).get("direction", "steady"), "counts": list((s.trend or {}).get("counts", []))}
            for s in ordered[:RISING_THEMES]
        ]  # fmt: skip
    total = session.execute(select(func.count()).where(Conversation.deleted_at.is_(None))).scalar_one()
    return {
        "conversations": total,
        "volume": conversation_volume(session)[-OVERVIEW_BUCKETS:],
        "rising": rising,
        "current_run": current_run(session),
        "latest_run_id": run_id,
    }
