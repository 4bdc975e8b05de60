"""Sources with their conversation counts, and their syncs (and imports) with what each did."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Boolean, Integer, Select, and_, bindparam, case, func, literal_column, select
from sqlalchemy.orm import Session

from threadline.connectors.syncs import INTERRUPTED, LIVE_SQL
from threadline.db.models import Conversation, Source, SourceSync

SOURCES, CONVERSATIONS = Source.__table__, Conversation.__table__


def _sources_page() -> Select:
    """Sources by id with their live conversation counts, :limit and :offset (one grouped count, columns only)."""
    counts = (
        select(CONVERSATIONS.c.source_id, func.count().label("n"))
        .where(CONVERSATIONS.c.deleted_at.is_(None))
        .group_by(CONVERSATIONS.c.source_id)
        .subquery()
    )
    return (
        select(
            SOURCES.c.id,
            SOURCES.c.name,
            SOURCES.c.kind,
            func.coalesce(counts.c.n, 0).label("conversations"),
            SOURCES.c.created_at,
        )
        .select_from(SOURCES.outerjoin(counts, counts.c.source_id == SOURCES.c.id))
        .order_by(SOURCES.c.id)
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


SOURCES_PAGE = _sources_page()  # built once at import: SQLAlchemy reuses its compiled form and memoized cache key


def list_sources(session: Session, *, limit: int, offset: int) -> list[dict[str, Any]]:
    """Sources by id with their live conversation counts."""
    return [dict(row) for row in session.execute(SOURCES_PAGE, {"limit": limit, "offset": offset}).mappings()]


SYNCS = SourceSync.__table__
SYNC_COUNTERS = ("created", "changed", "unchanged", "deleted", "dead_letters")


def _sync_columns() -> tuple[Any, ...]:
    """A sync as shown: status reconciled with liveness (`running` without its lock is `interrupted`)."""
    status = case(
        (and_(SYNCS.c.status == "running", ~literal_column(LIVE_SQL, Boolean)), INTERRUPTED), else_=SYNCS.c.status
    )
    ended = func.coalesce(SYNCS.c.finished_at, func.now())
    return (
        SYNCS.c.id,
        SYNCS.c.source_id,
        SYNCS.c.kind,
        SYNCS.c.job_id,
        status.label("status"),
        SYNCS.c.started_at,
        SYNCS.c.finished_at,
        func.extract("epoch", ended - SYNCS.c.started_at).label("duration_s"),
        *(SYNCS.c[name] for name in SYNC_COUNTERS),
        SYNCS.c.error,
    )


def _sync_view(row: Any) -> dict[str, Any]:
    view = dict(row)
    view["duration_s"] = round(float(view["duration_s"]), 3) if view["duration_s"] is not None else None
    return view


def recent_syncs(session: Session, source_id: int, *, limit: int) -> list[dict[str, Any]]:
    """The source's latest syncs and imports, newest first, with counters, duration and status."""
    statement = select(*_sync_columns()).where(SYNCS.c.source_id == source_id).order_by(SYNCS.c.id.desc()).limit(limit)
    return [_sync_view(row) for row in session.execute(statement).mappings()]


def syncs_by_id(session: Session, sync_ids: Sequence[int]) -> dict[int, dict[str, Any]]:
    """The given syncs by id (absent ids were deleted or never existed)."""
    if not sync_ids:
        return {}
    statement = select(*_sync_columns()).where(SYNCS.c.id.in_(list(sync_ids)))
    return {int(row["id"]): _sync_view(row) for row in session.execute(statement).mappings()}


def source_by_name(session: Session, name: str) -> dict[str, Any] | None:
    """One source (kind, configuration naming variables, never secrets) with its live conversation count."""
    row = (
        session.execute(
            select(
                SOURCES.c.id,
                SOURCES.c.name,
                SOURCES.c.kind,
                SOURCES.c.config,
                SOURCES.c.created_at,
                select(func.count())
                .select_from(CONVERSATIONS)
                .where(CONVERSATIONS.c.source_id == SOURCES.c.id, CONVERSATIONS.c.deleted_at.is_(None))
                .scalar_subquery()
                .label("conversations"),
            ).where(SOURCES.c.name == name)
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None
