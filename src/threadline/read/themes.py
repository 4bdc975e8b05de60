"""Themes as one run saw them: the tree, one theme, its trend and sparklines, the run's volume chart.

Everything is read from the run's snapshot (`run_themes`, `theme_members`); the lineage adds
human state (a person's name, keep separate, merged into), shown with every snapshot. The
queries are Core statements over `threadline.db.tables`: `threadline themes` runs them on a
Core connection without loading the ORM; the API and the dashboard run them in their sessions.
"""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import BigInteger, Select, bindparam, func, select

from threadline.analysis.theme_entities import dominant_entities, entity_key
from threadline.config import get_settings
from threadline.db.tables import (
    CONVERSATIONS,
    RUN_CONVERSATIONS,
    RUN_STORIES,
    RUN_THEME_PASSAGES,
    RUN_THEMES,
    RUNS,
    STORIES,
    THEME_MEMBERS,
    THEMES,
)
from threadline.engine.scopes import scope_names
from threadline.engine.status import RunStatus
from threadline.read.display import NOT_RECORDED, shown, shown_list
from threadline.read.views import RunRef
from threadline.stories.trend import bucket_days_for

if TYPE_CHECKING:  # for annotations only: `threadline themes` runs these Core queries without loading the ORM
    from sqlalchemy import Connection, Row
    from sqlalchemy.orm import Session

Bucket = Literal["day", "week", "month"]
BUCKET_STEP = {"day": timedelta(days=1), "week": timedelta(weeks=1)}
THEME_KEYWORDS = 8  # keywords per theme in lists: enough to recognise it, short enough for a row
MOSTLY_MIN_SHARE = 0.5  # share of a theme's conversations: an entity at least this common is what it "mostly" is
MOSTLY_BARE_TYPES = frozenset(
    {"platform", "integration", "feature", "product_area"}
)  # values that name themselves ("iOS")
ENTITY_TYPE_WORDS = {"plan": "plan", "error_code": "error", "http_status": "HTTP"}  # prefixes of the others
THEME_HISTORY_RUNS = 20  # earlier snapshots listed on a theme's page: the recent history
# overview chart buckets by the period's length: days up to this many days, then weeks, then months
VOLUME_DAILY_MAX_DAYS = 45
VOLUME_WEEKLY_MAX_DAYS = 400


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def theme_entities(stored: list[dict[str, Any]] | None) -> list[dict[str, Any]]:
    """A snapshot's entities as shown: [{"type", "value", "share"}] (values masked like any shown text)."""
    return [{"type": e["type"], "value": shown(e["value"]) or "", "share": float(e["share"])} for e in stored or []]


def mostly_parts(entities: list[dict[str, Any]], *, min_share: float = MOSTLY_MIN_SHARE) -> list[dict[str, str]]:
    """A theme's dominant entities as [{"label": "plan Business", "filter": "plan:business"}], in order.

    `filter` is the conversation list's `entity` filter for that entity (`entity_key`).
    """
    return [
        {
            "label": e["value"]
            if e["type"] in MOSTLY_BARE_TYPES
            else f"{ENTITY_TYPE_WORDS.get(e['type'], e['type'])} {e['value']}",
            "filter": entity_key(e["type"], e["value"]),
        }
        for e in dominant_entities(entities, min_share=min_share)
    ]


def mostly(entities: list[dict[str, Any]], *, min_share: float = MOSTLY_MIN_SHARE) -> str:
    """A theme's dominant entities in words, e.g. "mostly iOS, plan Business" ("" when none dominates)."""
    parts = [p["label"] for p in mostly_parts(entities, min_share=min_share)]
    return f"mostly {', '.join(parts)}" if parts else ""


def theme_name(human: str | None, computed: str | None) -> str:
    """What a theme is called in a snapshot: a person's name, else the run's, else "not recorded"."""
    return shown(human) or shown(computed) or NOT_RECORDED


def _themes_of_run() -> Select:
    """Leaf themes of :run_id with their group, largest first (columns only; one query)."""
    leaf, group = RUN_THEMES.alias("leaf"), RUN_THEMES.alias("grp")
    lineage, group_lineage = THEMES.alias("lineage"), THEMES.alias("group_lineage")
    return (
        select(
            leaf.c.theme_id,
            leaf.c.name,
            lineage.c.human_name,
            leaf.c.size,
            leaf.c.keywords,
            leaf.c.entities,
            leaf.c.first_seen,
            leaf.c.last_seen,
            lineage.c.keep_separate,
            lineage.c.merged_into_id,
            leaf.c.parent_id.label("group_id"),
            group.c.name.label("group_name"),
            group_lineage.c.human_name.label("group_human_name"),
        )
        .select_from(leaf)
        .join(lineage, lineage.c.id == leaf.c.theme_id)
        .outerjoin(group, (group.c.run_id == leaf.c.run_id) & (group.c.theme_id == leaf.c.parent_id))
        .outerjoin(group_lineage, group_lineage.c.id == leaf.c.parent_id)
        .where(leaf.c.run_id == bindparam("run_id", type_=BigInteger), leaf.c.level == 1)
        .order_by(leaf.c.size.desc(), leaf.c.theme_id)
    )


THEMES_OF_RUN = _themes_of_run()  # built once: SQLAlchemy reuses its compiled form


def theme_tree(session: Session | Connection, *, run_id: int | None, limit: int = 200) -> list[dict[str, Any]]:
    """Top-level groups, largest first, with their themes (sizes, names and key phrases of `run_id`).

    Themes of runs that predate snapshots and whose group was not recorded sit under a
    group named "not recorded for this run".
    """
    if run_id is None:
        return []
    tree: dict[int | None, dict[str, Any]] = {}
    for row in session.execute(THEMES_OF_RUN, {"run_id": run_id}):
        group_name = theme_name(row.group_human_name, row.group_name) if row.group_id else NOT_RECORDED
        node = tree.setdefault(row.group_id, {"id": row.group_id, "name": group_name, "size": 0, "themes": []})
        node["size"] += row.size
        node["themes"].append(
            {
                "id": row.theme_id,
                "name": theme_name(row.human_name, row.name),
                "computed_name": shown(row.name),
                "recorded": row.name is not None,
                "size": row.size,
                "keywords": shown_list(list(row.keywords or [])[:THEME_KEYWORDS]),
                "entities": theme_entities(row.entities),
                "first_seen": _iso(row.first_seen),
                "last_seen": _iso(row.last_seen),
                "keep_separate": bool(row.keep_separate),
                "merged_into": row.merged_into_id,
            }
        )
    groups = sorted(tree.values(), key=lambda g: (-g["size"], g["id"] or 0))
    return groups[: max(1, min(int(limit), get_settings().read.max_list_limit))]


def _snapshot(session: Session | Connection, run_id: int, theme_id: int) -> Row[Any] | None:
    """What run `run_id` found for lineage `theme_id` (its `run_themes` row), or None."""
    return session.execute(
        select(RUN_THEMES).where(RUN_THEMES.c.run_id == run_id, RUN_THEMES.c.theme_id == theme_id)
    ).first()


def _lineage(session: Session | Connection, theme_id: int) -> Row[Any] | None:
    """The lineage's row (`themes`), or None."""
    return session.execute(select(THEMES).where(THEMES.c.id == theme_id)).first()


def _snapshot_run(session: Session | Connection, theme: Row[Any], run_id: int | None) -> int | None:
    """`run_id`, else the latest succeeded run of the theme's scope, else the theme's latest snapshot."""
    if run_id is not None:
        return run_id
    latest = session.execute(
        select(func.max(RUNS.c.id)).where(RUNS.c.scope_id == theme.scope_id, RUNS.c.status == RunStatus.SUCCEEDED)
    ).scalar()
    if latest is not None and _snapshot(session, latest, theme.id) is not None:
        return latest
    return session.execute(select(func.max(RUN_THEMES.c.run_id)).where(RUN_THEMES.c.theme_id == theme.id)).scalar()


def theme_detail(session: Session | Connection, theme_id: int, run_id: int | None = None) -> dict[str, Any] | None:
    """A lineage as one run saw it (default: its scope's latest succeeded run), with its history of snapshots."""
    theme = _lineage(session, theme_id)
    if theme is None:
        return None
    shown_run = _snapshot_run(session, theme, run_id)
    snapshot = _snapshot(session, shown_run, theme_id) if shown_run is not None else None
    parent = None
    if shown_run is not None and snapshot is not None and snapshot.parent_id is not None:
        parent_snapshot = _snapshot(session, shown_run, snapshot.parent_id)
        parent_lineage = _lineage(session, snapshot.parent_id)
        parent = theme_name(
            parent_lineage.human_name if parent_lineage else None, parent_snapshot.name if parent_snapshot else None
        )
    children = []
    if theme.level == 0 and shown_run is not None:
        children = [
            {"id": t, "name": theme_name(h, n), "size": s}
            for t, n, h, s in session.execute(
                select(RUN_THEMES.c.theme_id, RUN_THEMES.c.name, THEMES.c.human_name, RUN_THEMES.c.size)
                .join(THEMES, THEMES.c.id == RUN_THEMES.c.theme_id)
                .where(RUN_THEMES.c.run_id == shown_run, RUN_THEMES.c.parent_id == theme_id)
                .order_by(RUN_THEMES.c.size.desc(), RUN_THEMES.c.theme_id)
            )
        ]
    story_id = session.execute(select(STORIES.c.id).where(STORIES.c.theme_id == theme_id)).scalar()
    in_run_story = (
        story_id is not None
        and shown_run is not None
        and session.execute(
            select(RUN_STORIES.c.id).where(RUN_STORIES.c.run_id == shown_run, RUN_STORIES.c.story_id == story_id)
        ).scalar()
        is not None
    )
    merged_into = None
    if theme.merged_into_id is not None:
        target = _lineage(session, theme.merged_into_id)
        target_name = session.execute(
            select(RUN_THEMES.c.name)
            .where(RUN_THEMES.c.theme_id == theme.merged_into_id, RUN_THEMES.c.name.is_not(None))
            .order_by(RUN_THEMES.c.run_id.desc())
            .limit(1)
        ).scalar()
        merged_into = {
            "id": theme.merged_into_id,
            "name": theme_name(target.human_name if target else None, target_name),
            "by": theme.merged_by,
            "at": _iso(theme.merged_at),
        }
    history = [
        {"run_id": r, "size": s, "name": theme_name(None, n), "origin": o}
        for r, s, n, o in session.execute(
            select(RUN_THEMES.c.run_id, RUN_THEMES.c.size, RUN_THEMES.c.name, RUN_THEMES.c.origin)
            .where(RUN_THEMES.c.theme_id == theme_id)
            .order_by(RUN_THEMES.c.run_id.desc())
            .limit(THEME_HISTORY_RUNS)
        )
    ]
    return {
        "id": theme.id,
        "name": theme_name(theme.human_name, snapshot.name if snapshot else None),
        "computed_name": shown(snapshot.name) if snapshot else None,
        "human_name": theme.human_name,
        "recorded": snapshot is not None and snapshot.name is not None,
        "description": shown(snapshot.description) if snapshot else None,
        "level": theme.level,
        "scope_id": theme.scope_id,
        "sources": scope_names(session, [theme.scope_id]).get(theme.scope_id, []),
        "parent_id": snapshot.parent_id if snapshot else None,
        "parent": parent,
        "keywords": shown_list(list(snapshot.keywords or [])) if snapshot else [],
        "entities": theme_entities(snapshot.entities) if snapshot else [],
        "mostly": mostly(theme_entities(snapshot.entities)) if snapshot else "",
        "mostly_parts": mostly_parts(theme_entities(snapshot.entities)) if snapshot else [],
        "size": snapshot.size if snapshot else 0,
        "run_id": shown_run,
        "in_run": snapshot is not None,
        "first_seen": snapshot.first_seen if snapshot else None,
        "last_seen": snapshot.last_seen if snapshot else None,
        "origin": snapshot.origin if snapshot else None,
        "story_id": story_id if in_run_story else None,
        "story_identity_id": story_id,
        "keep_separate": bool(theme.keep_separate),
        "merged_into": merged_into,
        "children": children,
        "history": history,
        "articles": theme_articles(session, shown_run, theme_id) if shown_run is not None else [],
    }


def family(session: Session | Connection, theme_id: int, run_id: int) -> list[int]:
    """A lineage plus, for a group, its themes in the run (a group counts its themes' members)."""
    children = session.execute(
        select(RUN_THEMES.c.theme_id).where(RUN_THEMES.c.run_id == run_id, RUN_THEMES.c.parent_id == theme_id)
    ).scalars()
    return [theme_id, *children]


def _advance(start: datetime, bucket: Bucket) -> datetime:
    if bucket == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + BUCKET_STEP[bucket]


def fill_buckets(counts: dict[datetime, int], bucket: Bucket, *, until: datetime | None = None) -> list[dict[str, Any]]:
    """Consecutive buckets from the first count to the last (or to `until`), zeros included, newest `read.max_trend_buckets` kept.

    With `until` (the period's end), a last bucket that ends after it is marked `partial`.
    """
    if not counts:
        return []
    max_buckets = get_settings().read.max_trend_buckets
    keys = sorted(counts)
    points: list[dict[str, Any]] = []
    current, last = keys[0], keys[-1]
    while current <= last:
        points.append({"start": current, "count": counts.get(current, 0), "partial": False})
        current = _advance(current, bucket)
        if len(points) > 10 * max_buckets:  # stop runaway ranges early
            points = points[-max_buckets:]
    if until is not None and points and _advance(points[-1]["start"], bucket) > until:
        points[-1]["partial"] = True
    return points[-max_buckets:]


def bucket_start(bucket: Bucket):
    """SQL: the UTC start of a conversation's bucket, as a timestamp without time zone."""
    return func.date_trunc(bucket, func.timezone("UTC", CONVERSATIONS.c.created_at))


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def theme_trend(
    session: Session | Connection, theme_id: int, *, run_id: int | None, bucket: Bucket = "week"
) -> dict[str, Any]:
    """Member conversations of a lineage (and a group's themes) in the run, per calendar bucket of creation time."""
    points: list[dict[str, Any]] = []
    if run_id is not None:
        start = bucket_start(bucket)
        members = select(THEME_MEMBERS.c.conversation_id).where(
            THEME_MEMBERS.c.run_id == run_id, THEME_MEMBERS.c.theme_id.in_(family(session, theme_id, run_id))
        )
        rows = session.execute(
            select(start, func.count())
            .where(CONVERSATIONS.c.id.in_(members), CONVERSATIONS.c.created_at.is_not(None))
            .group_by(start)
        ).all()
        points = [
            {"start": p["start"], "count": p["count"]} for p in fill_buckets({_as_utc(s): n for s, n in rows}, bucket)
        ]
    return {"theme_id": theme_id, "run_id": run_id, "bucket": bucket, "points": points}


def volume_bucket(run: RunRef | None) -> Bucket:
    """Calendar bucket for the run's volume chart: days for short periods, weeks, then months."""
    if run is None or run.period_start is None or run.period_end is None:
        return "week"
    days = (run.period_end - run.period_start).total_seconds() / 86400
    return "day" if days <= VOLUME_DAILY_MAX_DAYS else "week" if days <= VOLUME_WEEKLY_MAX_DAYS else "month"


def run_volume(session: Session | Connection, run: RunRef) -> tuple[list[dict[str, Any]], int, Bucket]:
    """The run's conversations per calendar bucket over its period (last bucket marked partial), their total, the bucket."""
    bucket = volume_bucket(run)
    start = bucket_start(bucket)
    rows = session.execute(
        select(start, func.count())
        .select_from(CONVERSATIONS)
        .join(RUN_CONVERSATIONS, RUN_CONVERSATIONS.c.conversation_id == CONVERSATIONS.c.id)
        .where(RUN_CONVERSATIONS.c.run_id == run.id)
        .group_by(start)
    ).all()
    counts = {_as_utc(s): n for s, n in rows if s is not None}
    return fill_buckets(counts, bucket, until=run.period_end), sum(n for _, n in rows), bucket


def theme_sparklines(session: Session | Connection, run: RunRef | None) -> tuple[dict[int, list[int]], int]:
    """Counts per bucket for every theme (and group) of a run, buckets measured back from the period's end.

    Buckets are sized to the period like the stories' trends (`bucket_days_for`); returns the
    series and the bucket size in days (the sparklines' scale).
    """
    if run is None or run.period_start is None or run.period_end is None:
        return {}, 7
    days = bucket_days_for(run.period_end - run.period_start, get_settings().pipeline.trend_max_buckets)
    width = timedelta(days=days)
    buckets = max(1, math.ceil((run.period_end - run.period_start) / width))
    back = func.floor(func.extract("epoch", run.period_end - CONVERSATIONS.c.created_at) / width.total_seconds())
    rows = session.execute(
        select(THEME_MEMBERS.c.theme_id, RUN_THEMES.c.parent_id, back.label("back"), func.count())
        .join(CONVERSATIONS, CONVERSATIONS.c.id == THEME_MEMBERS.c.conversation_id)
        .join(
            RUN_THEMES,
            (RUN_THEMES.c.run_id == THEME_MEMBERS.c.run_id) & (RUN_THEMES.c.theme_id == THEME_MEMBERS.c.theme_id),
        )
        .where(THEME_MEMBERS.c.run_id == run.id, CONVERSATIONS.c.created_at.is_not(None))
        .group_by(THEME_MEMBERS.c.theme_id, RUN_THEMES.c.parent_id, "back")
    ).all()
    series: dict[int, list[int]] = {}
    for theme_id, parent_id, behind, n in rows:
        index = buckets - 1 - min(max(int(behind), 0), buckets - 1)
        for key in (theme_id, parent_id):
            if key is not None:
                series.setdefault(key, [0] * buckets)[index] += n
    return series, days


def theme_articles(session: Session | Connection, run_id: int, theme_id: int) -> list[dict[str, Any]]:
    """The passages that answered a theme in a run, best first, with their article (as the run saw it)."""
    rows = session.execute(
        select(RUN_THEME_PASSAGES)
        .where(RUN_THEME_PASSAGES.c.run_id == run_id, RUN_THEME_PASSAGES.c.theme_id == theme_id)
        .order_by(RUN_THEME_PASSAGES.c.rank)
    )
    return [
        {
            "rank": row.rank,
            "article_id": row.article_id,
            "title": row.article_title,
            "url": row.article_url,
            "heading": row.heading,
            "content_hash": row.content_hash,
            "similarity": round(row.similarity, 3),
        }
        for row in rows
    ]


def unassigned_ids() -> Select:
    """Ids of the conversations run :run_id read and placed in no theme."""
    run_id = bindparam("run_id", type_=BigInteger)
    placed = select(THEME_MEMBERS.c.conversation_id).where(
        THEME_MEMBERS.c.run_id == run_id, THEME_MEMBERS.c.conversation_id == RUN_CONVERSATIONS.c.conversation_id
    )
    return select(RUN_CONVERSATIONS.c.conversation_id).where(RUN_CONVERSATIONS.c.run_id == run_id, ~placed.exists())


def unassigned_count(session: Session | Connection, run_id: int | None) -> int:
    """How many conversations run `run_id` read but placed in no theme (0 without a run)."""
    if run_id is None:
        return 0
    return int(
        session.execute(select(func.count()).select_from(unassigned_ids().subquery()), {"run_id": run_id}).scalar_one()
    )
