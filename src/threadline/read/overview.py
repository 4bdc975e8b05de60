"""The overview of one run's snapshot: its volume over its period, rising themes, what changed since the last run.

The volume chart covers the selected run's period (its conversations, in calendar buckets
sized to the period, the last one marked when the period ends inside it); "rising" lists
only stories whose trend is rising or new; "since last run" summarises `read.changes`.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Integer, bindparam, select
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import RunStory, Story
from threadline.read.changes import changes
from threadline.read.display import shown
from threadline.read.runs import current_run
from threadline.read.themes import run_volume
from threadline.read.views import RunRef

RISING_THEMES = 6  # stories listed as rising: what fits beside the volume chart
RISING_DIRECTIONS = ("rising", "new")  # trend directions (stories.trend) that count as rising
SINCE_LAST_RUN_ITEMS = 5  # themes listed per kind of change on the overview: the biggest; the rest via `changes`

SNAPSHOTS, IDENTITIES = RunStory.__table__, Story.__table__

# Built once at import: SQLAlchemy reuses its compiled form and memoized cache key.
BEST_STORIES_OF_RUN = (
    select(
        IDENTITIES.c.id,
        SNAPSHOTS.c.theme_id,
        SNAPSHOTS.c.title,
        IDENTITIES.c.human_title,
        SNAPSHOTS.c.conversation_count,
        SNAPSHOTS.c.trend,
    )
    .join(IDENTITIES, IDENTITIES.c.id == SNAPSHOTS.c.story_id)
    .where(SNAPSHOTS.c.run_id == bindparam("run_id", type_=BigInteger))
    .order_by(SNAPSHOTS.c.score.desc(), SNAPSHOTS.c.rank)
    .limit(bindparam("candidates", type_=Integer))  # `read.rising_candidates`, bound per call
)


def rising_themes(session: Session, run_id: int) -> list[dict[str, Any]]:
    """Up to RISING_THEMES stories of the run whose trend is rising or new, best score first (nothing else)."""
    candidates = get_settings().read.rising_candidates
    stories = session.execute(BEST_STORIES_OF_RUN, {"run_id": run_id, "candidates": candidates}).all()
    rising = [s for s in stories if (s.trend or {}).get("direction") in RISING_DIRECTIONS]
    return [
        {
            "theme_id": s.theme_id,
            "story_id": s.id,
            "title": shown(s.human_title or s.title),
            "conversations": s.conversation_count,
            "direction": (s.trend or {}).get("direction", "steady"),
            "counts": list((s.trend or {}).get("counts", [])),
            "bucket_days": (s.trend or {}).get("bucket_days"),
        }
        for s in rising[:RISING_THEMES]
    ]


def since_last_run(session: Session, run: RunRef) -> dict[str, Any]:
    """The overview's "Since last run" panel: counts and the biggest items of each kind of change."""
    found = changes(session, run)
    return {
        "previous_run": found["previous_run"],
        "summary": found["summary"],
        **{
            key: found[key][:SINCE_LAST_RUN_ITEMS]
            for key in ("new_themes", "returned_themes", "growing", "shrinking", "gone_themes")
        },
        "stories_evidence_changed": found["stories"]["evidence_changed"][:SINCE_LAST_RUN_ITEMS],
    }


def overview(session: Session, run: RunRef | None) -> dict[str, Any]:
    """The overview of `run` (the caller picks it: `read.views.pick_run`), or an empty one."""
    if run is None:
        return {
            "conversations": 0,
            "volume": [],
            "bucket": "week",
            "rising": [],
            "current_run": current_run(session),
            "latest_run_id": None,
            "run": None,
            "since_last_run": None,
        }
    volume, total, bucket = run_volume(session, run)
    return {
        "conversations": total,
        "volume": volume,
        "bucket": bucket,
        "rising": rising_themes(session, run.id),
        "current_run": current_run(session),
        "latest_run_id": run.id,
        "run": run.as_dict(),
        "since_last_run": since_last_run(session, run),
    }
