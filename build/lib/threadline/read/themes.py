"""Themes: detail, member conversations and trend series from theme_members x conversations.created_at."""

from __future__ import annotations

import functools
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from sqlalchemy import BigInteger, Select, bindparam, func, select
from sqlalchemy.orm import Session

from threadline.config import MAX_LIST_LIMIT
from threadline.db.models import Conversation, Run, Story, Theme, ThemeMember
from threadline.engine.status import RunStatus

Bucket = Literal["day", "week", "month"]
MAX_TREND_BUCKETS = 104  # points per series: two years of weeks; older points are dropped, newest kept
BUCKET_STEP = {"day": timedelta(days=1), "week": timedelta(weeks=1)}


# Statements built once at import: SQLAlchemy reuses their compiled form and memoized cache key.
LATEST_SUCCEEDED_RUN = (
    select(Run.__table__.c.id)
    .where(Run.__table__.c.status == RunStatus.SUCCEEDED)
    .order_by(Run.__table__.c.id.desc())
    .limit(1)
)


def default_run_id(session: Session, run_id: int | None) -> int | None:
    """`run_id`, or the latest succeeded run when none is given (its id only: no Run object per request)."""
    if run_id is not None:
        return run_id
    return session.execute(LATEST_SUCCEEDED_RUN).scalar()


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
    run_id = default_run_id(session, run_id)
    if run_id is None:
        return []
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
    return sorted(tree.values(), key=lambda g: -g["size"])[: max(1, min(int(limit), MAX_LIST_LIMIT))]


def theme_and_children(session: Session, theme_id: int) -> list[int]:
    """A theme's own id plus its children's (a top-level group counts its themes' members)."""
    children = session.execute(select(Theme.id).where(Theme.parent_id == theme_id)).scalars().all()
    return [theme_id, *children]


def theme_detail(session: Session, theme_id: int, run_id: int | None = None) -> dict[str, Any] | None:
    theme = session.get(Theme, theme_id)
    if theme is None:
        return None
    run_id = default_run_id(session, run_id)
    size = 0
    if run_id is not None:
        size = session.execute(
            select(func.count()).where(
                ThemeMember.run_id == run_id, ThemeMember.theme_id.in_(theme_and_children(session, theme_id))
            )
        ).scalar_one()
    parent = session.get(Theme, theme.parent_id) if theme.parent_id else None
    story_id = session.execute(select(Story.id).where(Story.theme_id == theme_id)).scalar()
    return {
        "id": theme.id,
        "name": theme.name,
        "description": theme.description,
        "level": theme.level,
        "parent_id": theme.parent_id,
        "parent": parent.name if parent else None,
        "keywords": list(theme.keywords or []),
        "size": size,
        "run_id": run_id,
        "first_seen": theme.first_seen,
        "last_seen": theme.last_seen,
        "story_id": story_id,
    }


def _advance(start: datetime, bucket: Bucket) -> datetime:
    if bucket == "month":
        return start.replace(year=start.year + start.month // 12, month=start.month % 12 + 1)
    return start + BUCKET_STEP[bucket]


def fill_buckets(counts: dict[datetime, int], bucket: Bucket) -> list[dict[str, Any]]:
    """Consecutive buckets from the first to the last count, zeros included, newest MAX_TREND_BUCKETS kept."""
    if not counts:
        return []
    keys = sorted(counts)
    points: list[dict[str, Any]] = []
    current, last = keys[0], keys[-1]
    while current <= last:
        points.append({"start": current, "count": counts.get(current, 0)})
        current = _advance(current, bucket)
        if len(points) > 10 * MAX_TREND_BUCKETS:  # a decade of weeks: stop runaway ranges early
            points = points[-MAX_TREND_BUCKETS:]
    return points[-MAX_TREND_BUCKETS:]


def bucket_start(bucket: Bucket):
    """SQL: the UTC start of a conversation's bucket, as a timestamp without time zone.

    `date_trunc(b, created_at AT TIME ZONE 'UTC')` buckets exactly like the three-argument
    `date_trunc(b, created_at, 'UTC')` but costs half as much per row (measured on 10k rows).
    """
    return func.date_trunc(bucket, func.timezone("UTC", Conversation.__table__.c.created_at))


def _as_utc(value: datetime) -> datetime:
    return value if value.tzinfo else value.replace(tzinfo=UTC)


def _bucketed(session: Session, statement_filter, bucket: Bucket) -> dict[datetime, int]:
    start = bucket_start(bucket)
    rows = session.execute(
        select(start, func.count())
        .select_from(Conversation.__table__)
        .where(*statement_filter)
        .where(Conversation.__table__.c.created_at.is_not(None))
        .group_by(start)
    ).all()
    return {_as_utc(s): n for s, n in rows}


def theme_trend(
    session: Session, theme_id: int, *, run_id: int | None = None, bucket: Bucket = "week"
) -> dict[str, Any]:
    """Member conversations of a theme (and its children) per bucket of their creation time."""
    run_id = default_run_id(session, run_id)
    points: list[dict[str, Any]] = []
    if run_id is not None:
        members = select(ThemeMember.conversation_id).where(
            ThemeMember.run_id == run_id, ThemeMember.theme_id.in_(theme_and_children(session, theme_id))
        )
        points = fill_buckets(_bucketed(session, [Conversation.id.in_(members)], bucket), bucket)
    return {"theme_id": theme_id, "run_id": run_id, "bucket": bucket, "points": points}


def conversation_volume(session: Session, *, bucket: Bucket = "week") -> list[dict[str, Any]]:
    """All live conversations per bucket of their creation time (the overview chart)."""
    return conversation_volume_and_total(session, bucket=bucket)[0]


@functools.lru_cache(maxsize=len(BUCKET_STEP) + 1)
def _volume_statement(bucket: Bucket) -> Select:
    """Live conversations per bucket start (NULL for those without created_at), built once per bucket size."""
    start = bucket_start(bucket)
    conversations = Conversation.__table__
    return select(start, func.count()).where(conversations.c.deleted_at.is_(None)).group_by(start)


def conversation_volume_and_total(session: Session, *, bucket: Bucket = "week") -> tuple[list[dict[str, Any]], int]:
    """The volume chart and the number of live conversations, from one scan of the table.

    Conversations without `created_at` fall in a NULL bucket: counted in the total, not charted.
    """
    rows = session.execute(_volume_statement(bucket)).all()
    counts = {_as_utc(s): n for s, n in rows if s is not None}
    return fill_buckets(counts, bucket), sum(n for _, n in rows)


def theme_sparklines(session: Session, run_id: int | None, *, bucket: Bucket = "week") -> dict[int, list[int]]:
    """Counts per bucket for every theme of a run in one query, on a shared time axis.

    Groups (level 0) get the sum of their themes, so a sparkline compares like with like.
    """
    if run_id is None:
        return {}
    start = bucket_start(bucket)
    rows = session.execute(
        select(ThemeMember.theme_id, Theme.parent_id, start, func.count())
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .join(Theme, Theme.id == ThemeMember.theme_id)
        .where(ThemeMember.run_id == run_id, Conversation.created_at.is_not(None))
        .group_by(ThemeMember.theme_id, Theme.parent_id, start)
    ).all()
    if not rows:
        return {}
    points = [(t, p, w if w.tzinfo else w.replace(tzinfo=UTC), n) for t, p, w, n in rows]
    totals: dict[datetime, int] = {}
    for _, _, when, n in points:
        totals[when] = totals.get(when, 0) + n
    axis = [p["start"] for p in fill_buckets(totals, bucket)]
    index = {when: i for i, when in enumerate(axis)}
    series: dict[int, list[int]] = {}
    for theme_id, parent_id, when, n in points:
        for key in (theme_id, parent_id):
            if key is not None and when in index:
                series.setdefault(key, [0] * len(axis))[index[when]] += n
    return series
