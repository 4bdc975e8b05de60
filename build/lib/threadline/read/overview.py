"""The overview: conversation volume over time, rising themes, the current run."""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, bindparam, select
from sqlalchemy.orm import Session

from threadline.db.models import Story
from threadline.read.runs import current_run
from threadline.read.themes import conversation_volume_and_total, default_run_id

RISING_THEMES = 6  # themes on the overview: what fits beside the volume chart
RISING_DIRECTIONS = ("rising", "new")  # trend directions (stories.build) that count as rising
OVERVIEW_BUCKETS = 26  # weeks in the volume chart: half a year, readable at a glance
RISING_CANDIDATES = 200  # best-scored stories searched for rising ones: more than a run has themes worth showing

STORIES = Story.__table__


# Built once at import: SQLAlchemy reuses its compiled form and memoized cache key.
BEST_STORIES_OF_RUN = (
    select(STORIES.c.id, STORIES.c.theme_id, STORIES.c.title, STORIES.c.conversation_count, STORIES.c.trend)
    .where(STORIES.c.run_id == bindparam("run_id", type_=BigInteger))
    .order_by(STORIES.c.score.desc(), STORIES.c.id)
    .limit(RISING_CANDIDATES)
)


def rising_themes(session: Session, run_id: int) -> list[dict[str, Any]]:
    """Up to RISING_THEMES stories of the run: rising/new ones first, then by score (columns only, no ORM objects)."""
    stories = session.execute(BEST_STORIES_OF_RUN, {"run_id": run_id}).all()
    rising = [s for s in stories if (s.trend or {}).get("direction") in RISING_DIRECTIONS]
    ordered = rising + [s for s in stories if (s.trend or {}).get("direction") not in RISING_DIRECTIONS]
    return [
        {
            "theme_id": s.theme_id,
            "story_id": s.id,
            "title": s.title,
            "conversations": s.conversation_count,
            "direction": (s.trend or {}).get("direction", "steady"),
            "counts": list((s.trend or {}).get("counts", [])),
        }
        for s in ordered[:RISING_THEMES]
    ]


def overview(session: Session) -> dict[str, Any]:
    run_id = default_run_id(session, None)
    volume, total = conversation_volume_and_total(session)
    return {
        "conversations": total,
        "volume": volume[-OVERVIEW_BUCKETS:],
        "rising": rising_themes(session, run_id) if run_id is not None else [],
        "current_run": current_run(session),
        "latest_run_id": run_id,
    }
