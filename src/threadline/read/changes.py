"""What changed since the previous run of the same scope: new, returned, growing, shrinking, gone themes; stories.

Computed from two immutable snapshots (the run and the latest succeeded run of its scope
before it), so the answer for a run never changes. Rates are conversations per week of
each run's period (its oldest to its newest conversation, at least `MIN_PERIOD_DAYS`), so
runs over periods of different lengths compare fairly. A theme is growing when its rate
rose by at least `GROWTH_RATIO` and by at least `MIN_CHANGE_CONVERSATIONS` conversations'
worth, shrinking in the mirror case.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from threadline.db.models import RunStory, RunStoryEvidence, RunTheme, Story, Theme
from threadline.read.display import shown
from threadline.read.themes import theme_name
from threadline.read.views import RunRef, run_ref

GROWTH_RATIO = 1.25  # rate now / rate before at or above this reads as growing (and 1/1.25 as shrinking)
MIN_CHANGE_CONVERSATIONS = 3  # conversations: a rate change smaller than this many is noise, whatever the ratio
MIN_PERIOD_DAYS = 1.0  # days: a run over a single moment still has a period to divide by
DAYS_PER_WEEK = 7

_PREVIOUS_SQL = text(
    """
    SELECT r.id FROM runs r
     WHERE r.scope_id = :scope_id AND r.id < :run_id AND r.status = 'succeeded'
       AND EXISTS (SELECT 1 FROM run_themes t WHERE t.run_id = r.id)
     ORDER BY r.id DESC LIMIT 1
    """
)


def previous_run(session: Session, run: RunRef) -> RunRef | None:
    """The latest succeeded run of the same scope before `run` that has themes."""
    previous = session.execute(_PREVIOUS_SQL, {"scope_id": run.scope_id, "run_id": run.id}).scalar()
    return run_ref(session, previous) if previous is not None else None


def _weeks(run: RunRef) -> float:
    if run.period_start is None or run.period_end is None:
        return MIN_PERIOD_DAYS / DAYS_PER_WEEK
    days = max((run.period_end - run.period_start).total_seconds() / 86400, MIN_PERIOD_DAYS)
    return days / DAYS_PER_WEEK


def _themes(session: Session, run_id: int) -> dict[int, dict[str, Any]]:
    rows = session.execute(
        select(
            RunTheme.theme_id,
            RunTheme.name,
            RunTheme.size,
            RunTheme.origin,
            Theme.human_name,
            Theme.merged_into_id,
            Theme.merged_by,
        )
        .join(Theme, Theme.id == RunTheme.theme_id)
        .where(RunTheme.run_id == run_id, RunTheme.level == 1)
    )
    return {r.theme_id: r._asdict() for r in rows}


def _stories(session: Session, run_id: int) -> dict[int, dict[str, Any]]:
    stories = {
        r.story_id: {**r._asdict(), "evidence": set()}
        for r in session.execute(
            select(RunStory.id, RunStory.story_id, RunStory.theme_id, RunStory.title, RunStory.rank, Story.human_title)
            .join(Story, Story.id == RunStory.story_id)
            .where(RunStory.run_id == run_id)
        )
    }
    by_snapshot = {s["id"]: s for s in stories.values()}
    for snapshot_id, conversation, position, quote in session.execute(
        select(
            RunStoryEvidence.run_story_id,
            RunStoryEvidence.conversation_external_id,
            RunStoryEvidence.message_position,
            RunStoryEvidence.quote,
        ).where(RunStoryEvidence.run_story_id.in_(list(by_snapshot)))
    ):
        by_snapshot[snapshot_id]["evidence"].add((conversation, position, quote))
    return stories


def changes(session: Session, run: RunRef) -> dict[str, Any]:
    """The changes of `run` against the previous run of its scope (see the module docstring)."""
    before = previous_run(session, run)
    now_themes = _themes(session, run.id)
    old_themes = _themes(session, before.id) if before else {}
    weeks_now, weeks_before = _weeks(run), (_weeks(before) if before else None)
    story_of: dict[int, int] = {
        theme_id: story_id
        for theme_id, story_id in session.execute(
            select(Story.theme_id, Story.id).where(Story.theme_id.in_(list(now_themes | old_themes)))
        )
    }

    def name(row: dict[str, Any]) -> str:
        return theme_name(row["human_name"], row["name"])

    def item(theme_id: int, row: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": theme_id,
            "name": name(row),
            "size": row["size"],
            "rate_per_week": round(row["size"] / weeks_now, 2),
            "story_id": story_of.get(theme_id),
        }

    new = [item(t, r) for t, r in now_themes.items() if t not in old_themes and r["origin"] != "revived"]
    returned = [item(t, r) for t, r in now_themes.items() if t not in old_themes and r["origin"] == "revived"]
    gone, growing, shrinking, renamed = [], [], [], []
    for theme_id, row in old_themes.items():
        rate_before = row["size"] / weeks_before if weeks_before else 0.0
        if theme_id not in now_themes:
            merged = None
            if row["merged_into_id"] is not None:
                target = now_themes.get(row["merged_into_id"])
                merged = {
                    "id": row["merged_into_id"],
                    "name": name(target) if target else None,
                    "by": row["merged_by"],
                }
            gone.append(
                {
                    "id": theme_id,
                    "name": name(row),
                    "size_before": row["size"],
                    "rate_per_week_before": round(rate_before, 2),
                    "merged_into": merged,
                    "story_id": story_of.get(theme_id),
                }
            )
            continue
        current = now_themes[theme_id]
        rate_now = current["size"] / weeks_now
        entry = {
            **item(theme_id, current),
            "size_before": row["size"],
            "rate_per_week_before": round(rate_before, 2),
            "change": None if rate_before == 0 else round(rate_now / rate_before - 1, 3),
        }
        worth = abs(rate_now - rate_before) * weeks_now
        if worth >= MIN_CHANGE_CONVERSATIONS and rate_now >= rate_before * GROWTH_RATIO:
            growing.append(entry)
        elif worth >= MIN_CHANGE_CONVERSATIONS and rate_now * GROWTH_RATIO <= rate_before:
            shrinking.append(entry)
        if row["name"] and current["name"] and row["name"] != current["name"]:
            renamed.append(
                {
                    "id": theme_id,
                    "name_before": shown(row["name"]),
                    "name": shown(current["name"]),
                    "human_name": current["human_name"],
                }
            )
    now_stories = _stories(session, run.id)
    old_stories = _stories(session, before.id) if before else {}

    def story_item(story_id: int, row: dict[str, Any]) -> dict[str, Any]:
        return {"id": story_id, "title": shown(row["human_title"] or row["title"]), "theme_id": row["theme_id"]}

    evidence_changed = []
    for story_id, row in now_stories.items():
        earlier = old_stories.get(story_id)
        if earlier is None or earlier["evidence"] == row["evidence"]:
            continue
        evidence_changed.append(
            {
                **story_item(story_id, row),
                "rank": row["rank"],
                "rank_before": earlier["rank"],
                "quotes_added": len(row["evidence"] - earlier["evidence"]),
                "quotes_removed": len(earlier["evidence"] - row["evidence"]),
            }
        )
    by_size = lambda e: (-e["size"], e["id"])  # noqa: E731
    by_change = lambda e: (-(abs(e["rate_per_week"] - e["rate_per_week_before"])), e["id"])  # noqa: E731
    result: dict[str, Any] = {
        "run": run.as_dict(),
        "previous_run": before.as_dict() if before else None,
        "new_themes": sorted(new, key=by_size),
        "returned_themes": sorted(returned, key=by_size),
        "growing": sorted(growing, key=by_change),
        "shrinking": sorted(shrinking, key=by_change),
        "gone_themes": sorted(gone, key=lambda e: (-e["size_before"], e["id"])),
        "renamed": sorted(renamed, key=lambda e: e["id"]),
        "stories": {
            "new": sorted(
                (story_item(s, r) for s, r in now_stories.items() if s not in old_stories), key=lambda e: e["id"]
            ),
            "dropped": sorted(
                (story_item(s, r) for s, r in old_stories.items() if s not in now_stories), key=lambda e: e["id"]
            ),
            "evidence_changed": sorted(evidence_changed, key=lambda e: e["id"]),
        },
    }
    result["summary"] = {
        key: len(result[key])
        for key in ("new_themes", "returned_themes", "growing", "shrinking", "gone_themes", "renamed")
    } | {f"stories_{key}": len(value) for key, value in result["stories"].items()}
    return result
