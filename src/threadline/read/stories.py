"""Stories as one run wrote them, with the human state of their identity; evidence checked against today's messages.

A story row is the run's snapshot (`run_stories`: text, counts, rank, severity, trend) with
the identity's status and a person's edits laid over it (`stories`), and its evidence as
quoted (`run_story_evidence`). Each quote is compared with the message it came from as it
is now: a quote whose message changed since (other text, other author, gone) is marked
`changed_since`, never rewritten. The queries are Core statements over `threadline.db.tables`:
`threadline stories` runs them on a Core connection without loading the ORM.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

from sqlalchemy import BigInteger, Integer, Select, and_, any_, bindparam, func, literal_column, or_, select
from sqlalchemy.dialects.postgresql import ARRAY

from threadline.config import get_settings
from threadline.db.tables import (
    AUDIT_EVENTS,
    CONVERSATIONS,
    MESSAGES,
    RUN_STORIES,
    RUN_STORY_EVIDENCE,
    RUN_THEMES,
    RUNS,
    STORIES,
    THEMES,
    TRACKER_LINKS,
    TRACKERS,
)
from threadline.engine.status import RunStatus
from threadline.read.display import shown, shown_list, shown_priority, shown_span
from threadline.read.themes import theme_name

if TYPE_CHECKING:  # for annotations only: `threadline stories` runs these Core queries without loading the ORM
    from sqlalchemy import Connection, Row
    from sqlalchemy.orm import Session

    from threadline.db.models import Story

SNAPSHOTS = RUN_STORIES
IDENTITIES = STORIES
LINEAGES = THEMES
EVIDENCE = RUN_STORY_EVIDENCE

StorySort = Literal["rank", "conversations", "customers", "last_seen", "score", "title"]
SORT_COLUMNS = {
    "rank": (SNAPSHOTS.c.rank.asc(), IDENTITIES.c.id.asc()),
    "conversations": (SNAPSHOTS.c.conversation_count.desc(), SNAPSHOTS.c.rank.asc()),
    "customers": (SNAPSHOTS.c.customer_count.desc(), SNAPSHOTS.c.rank.asc()),
    "last_seen": (SNAPSHOTS.c.last_seen.desc().nulls_last(), SNAPSHOTS.c.rank.asc()),
    "score": (SNAPSHOTS.c.score.desc(), SNAPSHOTS.c.rank.asc()),
    "title": (func.coalesce(IDENTITIES.c.human_title, SNAPSHOTS.c.title).asc(), SNAPSHOTS.c.rank.asc()),
}
STORY_FILTERS = ("status", "severity", "theme_id")  # list_stories' optional filters
STORY_HISTORY_EVENTS = 200  # audit events shown in a story's history: the recent ones

STORY_COLUMNS = (
    IDENTITIES.c.id,
    SNAPSHOTS.c.run_id,
    SNAPSHOTS.c.id.label("snapshot_id"),
    SNAPSHOTS.c.rank,
    SNAPSHOTS.c.title.label("run_title"),
    IDENTITIES.c.human_title,
    SNAPSHOTS.c.theme_id,
    RUN_THEMES.c.name.label("theme_run_name"),
    LINEAGES.c.human_name.label("theme_human_name"),
    IDENTITIES.c.status,
    SNAPSHOTS.c.severity,
    SNAPSHOTS.c.severity_reason,
    SNAPSHOTS.c.problem.label("run_problem"),
    IDENTITIES.c.human_problem,
    SNAPSHOTS.c.user_story.label("run_user_story"),
    IDENTITIES.c.human_user_story,
    SNAPSHOTS.c.acceptance_criteria,
    SNAPSHOTS.c.conversation_count.label("conversations"),
    SNAPSHOTS.c.customer_count.label("customers"),
    SNAPSHOTS.c.first_seen,
    SNAPSHOTS.c.last_seen,
    SNAPSHOTS.c.trend,
    SNAPSHOTS.c.score,
    SNAPSHOTS.c.text_origin,
    SNAPSHOTS.c.priority,
)
_FROM = (
    SNAPSHOTS.join(IDENTITIES, IDENTITIES.c.id == SNAPSHOTS.c.story_id)
    .join(LINEAGES, LINEAGES.c.id == SNAPSHOTS.c.theme_id)
    .outerjoin(
        RUN_THEMES, and_(RUN_THEMES.c.run_id == SNAPSHOTS.c.run_id, RUN_THEMES.c.theme_id == SNAPSHOTS.c.theme_id)
    )
)


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


def _story_row(row: Any, evidence: list[dict[str, Any]], trackers: list[dict[str, Any]]) -> dict[str, Any]:
    """One story as every view shows it: the run's snapshot with the person's status and edits."""
    return {
        "id": row.id,
        "run_id": row.run_id,
        "rank": row.rank,
        "title": shown(row.human_title or row.run_title),
        "theme_id": row.theme_id,
        "theme": theme_name(row.theme_human_name, row.theme_run_name),
        "status": row.status,
        "edited": any(v is not None for v in (row.human_title, row.human_problem, row.human_user_story)),
        "severity": row.severity,
        "severity_reason": shown(row.severity_reason),
        "problem": shown(row.human_problem or row.run_problem),
        "user_story": shown(row.human_user_story or row.run_user_story),
        "acceptance_criteria": shown_list(list(row.acceptance_criteria or [])),
        "conversations": row.conversations,
        "customers": row.customers,
        "first_seen": _iso(row.first_seen),
        "last_seen": _iso(row.last_seen),
        "trend": row.trend or {},
        "score": row.score,
        "text_origin": row.text_origin,
        "priority": shown_priority(row.priority),
        "evidence": evidence,
        "trackers": trackers,
    }


def _current_hash():
    return func.encode(func.sha256(func.convert_to(MESSAGES.c.text, literal_column("'UTF8'"))), "hex")


@functools.lru_cache(maxsize=1)
def _evidence_statement() -> Select:
    """Evidence of the snapshots in :ids with a `changed_since` flag (one SQL text whatever the page size)."""
    changed = or_(
        EVIDENCE.c.message_sha256.is_(None),
        MESSAGES.c.id.is_(None),
        MESSAGES.c.author_role != EVIDENCE.c.author_role,
        _current_hash() != EVIDENCE.c.message_sha256,
    )
    return (
        select(
            EVIDENCE.c.run_story_id,
            EVIDENCE.c.quote,
            EVIDENCE.c.conversation_id,
            EVIDENCE.c.conversation_external_id,
            CONVERSATIONS.c.url.label("conversation_url"),
            EVIDENCE.c.message_id,
            EVIDENCE.c.message_position,
            EVIDENCE.c.message_external_id,
            EVIDENCE.c.start_offset.label("start"),
            EVIDENCE.c.end_offset.label("end"),
            changed.label("changed_since"),
        )
        .select_from(
            EVIDENCE.outerjoin(CONVERSATIONS, CONVERSATIONS.c.id == EVIDENCE.c.conversation_id).outerjoin(
                MESSAGES,
                and_(
                    MESSAGES.c.conversation_id == EVIDENCE.c.conversation_id,
                    MESSAGES.c.position == EVIDENCE.c.message_position,
                ),
            )
        )
        .where(EVIDENCE.c.run_story_id == any_(bindparam("ids", type_=ARRAY(BigInteger))))
        .order_by(EVIDENCE.c.run_story_id, EVIDENCE.c.position)
    )


def evidence_for(session: Session | Connection, snapshot_ids: list[int]) -> dict[int, list[dict[str, Any]]]:
    """Evidence of many story snapshots in one query (a page of stories must not cost a query per story)."""
    found: dict[int, list[dict[str, Any]]] = {snapshot_id: [] for snapshot_id in snapshot_ids}
    if not snapshot_ids:
        return found
    for row in session.execute(_evidence_statement(), {"ids": snapshot_ids}).mappings():
        item = dict(row)
        item["quote"] = shown(item["quote"])
        item["changed_since"] = bool(item["changed_since"])
        found[item.pop("run_story_id")].append(item)
    return found


@functools.lru_cache(maxsize=2 ** len(STORY_FILTERS) * len(SORT_COLUMNS))
def _list_statement(present: frozenset[str], sort: StorySort) -> Select:
    """Stories of :run_id with the filters in `present` as bind parameters, plus :limit and :offset (built once)."""
    statement = (
        select(*STORY_COLUMNS).select_from(_FROM).where(SNAPSHOTS.c.run_id == bindparam("run_id", type_=BigInteger))
    )
    columns = {"status": IDENTITIES.c.status, "severity": SNAPSHOTS.c.severity, "theme_id": SNAPSHOTS.c.theme_id}
    for name in STORY_FILTERS:
        if name in present:
            statement = statement.where(columns[name] == bindparam(name, type_=columns[name].type))
    return (
        statement.order_by(*SORT_COLUMNS[sort])
        .limit(bindparam("limit", type_=Integer))
        .offset(bindparam("offset", type_=Integer))
    )


def list_stories(
    session: Session | Connection,
    *,
    run_id: int | None,
    limit: int,
    offset: int,
    status: str | None = None,
    severity: str | None = None,
    theme_id: int | None = None,
    sort: StorySort = "rank",
) -> list[dict[str, Any]]:
    """Stories of one run's snapshot, filtered and sorted, with evidence (two queries per page)."""
    if run_id is None:
        return []
    filters = {
        name: value
        for name, value in (("status", status), ("severity", severity), ("theme_id", theme_id))
        if value is not None
    }
    result = session.execute(
        _list_statement(frozenset(filters), sort), {**filters, "run_id": run_id, "limit": limit, "offset": offset}
    )
    rows = result.all()
    evidence = evidence_for(session, [row.snapshot_id for row in rows])
    links = links_of(session, [row.id for row in rows])
    return [_story_row(row, evidence[row.snapshot_id], links[row.id]) for row in rows]


def story_runs(session: Session | Connection, story_id: int) -> list[dict[str, Any]]:
    """The runs with a snapshot of this story, newest first, with rank and size (the story's history)."""
    return [
        {"run_id": r, "rank": k, "conversations": c, "status": s, "title": shown(t)}
        for r, k, c, s, t in session.execute(
            select(
                SNAPSHOTS.c.run_id, SNAPSHOTS.c.rank, SNAPSHOTS.c.conversation_count, RUNS.c.status, SNAPSHOTS.c.title
            )
            .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_id)
            .where(SNAPSHOTS.c.story_id == story_id)
            .order_by(SNAPSHOTS.c.run_id.desc())
        )
    ]


def _default_snapshot_run(session: Session | Connection, story_id: int) -> int | None:
    """The story's newest snapshot in a succeeded run, else its newest snapshot at all."""
    return session.execute(
        select(SNAPSHOTS.c.run_id)
        .join(RUNS, RUNS.c.id == SNAPSHOTS.c.run_id)
        .where(SNAPSHOTS.c.story_id == story_id)
        .order_by((RUNS.c.status == RunStatus.SUCCEEDED).desc(), SNAPSHOTS.c.run_id.desc())
        .limit(1)
    ).scalar()


def get_story(session: Session, story_id: int) -> Story | None:
    """The story identity as an ORM object, for curation to change (the reads here need no ORM)."""
    # imported when a story is asked for to be changed, not at start-up: `threadline stories` never loads the ORM
    from threadline.db.models import Story

    return session.get(Story, story_id)


def _identity(session: Session | Connection, story_id: int) -> Row[Any] | None:
    """The story identity's row (`stories`), or None."""
    return session.execute(select(STORIES).where(STORIES.c.id == story_id)).first()


def story_view(session: Session | Connection, story_id: int, run_id: int | None = None) -> dict[str, Any] | None:
    """One story as a run wrote it (default: its newest snapshot), with its runs and history; None if absent."""
    if _identity(session, story_id) is None:
        return None
    run_id = run_id if run_id is not None else _default_snapshot_run(session, story_id)
    if run_id is None:
        return None
    row = session.execute(
        select(*STORY_COLUMNS).select_from(_FROM).where(SNAPSHOTS.c.story_id == story_id, SNAPSHOTS.c.run_id == run_id)
    ).first()
    if row is None:
        return None
    return _story_row(
        row, evidence_for(session, [row.snapshot_id])[row.snapshot_id], links_of(session, [story_id])[story_id]
    )


def story_history(session: Session | Connection, story_id: int) -> list[dict[str, Any]]:
    """What people did to the story and its theme (status, edits, renames, merges, exports), newest first."""
    story = _identity(session, story_id)
    if story is None:
        return []
    rows = session.execute(
        select(AUDIT_EVENTS)
        .where(
            or_(
                and_(AUDIT_EVENTS.c.subject_type == "story", AUDIT_EVENTS.c.subject_id == story_id),
                and_(AUDIT_EVENTS.c.subject_type == "theme", AUDIT_EVENTS.c.subject_id == story.theme_id),
            )
        )
        .order_by(AUDIT_EVENTS.c.at.desc(), AUDIT_EVENTS.c.id.desc())
        .limit(STORY_HISTORY_EVENTS)
    )
    return [
        {
            "at": e.at.isoformat(),
            "actor": e.actor,
            "action": e.action,
            "subject_type": e.subject_type,
            "subject_id": e.subject_id,
            "details": e.details,
        }
        for e in rows
    ]


def evidence_in_context(session: Session | Connection, story: dict[str, Any]) -> list[dict[str, Any]]:
    """For each quoted conversation, its messages now, with the quoted spans split out for highlighting.

    A span is highlighted only where the quoted message is unchanged since the run (same
    text hash), so offsets never point into other text; a changed one is listed as such.
    """
    max_messages = get_settings().read.max_context_messages
    by_conversation: dict[int, list[dict[str, Any]]] = {}
    for item in story["evidence"]:
        if item["conversation_id"] is not None:
            by_conversation.setdefault(item["conversation_id"], []).append(item)
    blocks = []
    for conversation_id, items in by_conversation.items():
        spans: dict[int, list[tuple[int, int]]] = {}
        for item in items:
            if not item["changed_since"]:
                spans.setdefault(item["message_position"], []).append((item["start"], item["end"]))
        messages = session.execute(
            select(MESSAGES)
            .where(MESSAGES.c.conversation_id == conversation_id)
            .order_by(MESSAGES.c.position)
            .limit(max_messages)
        ).all()
        blocks.append(
            {
                "conversation_id": conversation_id,
                "external_id": items[0]["conversation_external_id"],
                "url": items[0]["conversation_url"],
                "quotes": [i["quote"] for i in items],
                "changed": [i["quote"] for i in items if i["changed_since"]],
                "messages": [
                    {
                        "id": m.id,
                        "author_role": m.author_role,
                        "created_at": m.created_at,
                        "segments": shown_segments(m.text, split_segments(m.text, spans.get(m.position, []))),
                        "quoted": m.position in spans,
                    }
                    for m in messages
                ],
            }
        )
    return blocks


def shown_segments(text: str, segments: list[tuple[str, bool]]) -> list[tuple[str, bool]]:
    """Segments of `text` as shown, each masked as a span of the whole text (a highlight may cut a phone in two)."""
    out: list[tuple[str, bool]] = []
    cursor = 0
    for piece, hit in segments:
        out.append((shown_span(text, cursor, cursor + len(piece)), hit))
        cursor += len(piece)
    return out


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


def links_of(session: Session | Connection, story_ids: Sequence[int]) -> dict[int, list[dict[str, Any]]]:
    """Tracker links of these stories (one query): tracker name and kind, key, URL, closed, regression."""
    found: dict[int, list[dict[str, Any]]] = {story_id: [] for story_id in story_ids}
    if not story_ids:
        return found
    rows = session.execute(
        select(TRACKER_LINKS, TRACKERS.c.name.label("tracker_name"), TRACKERS.c.kind.label("tracker_kind"))
        .join(TRACKERS, TRACKERS.c.id == TRACKER_LINKS.c.tracker_id)
        .where(TRACKER_LINKS.c.story_id.in_(list(story_ids)), TRACKER_LINKS.c.item_key.is_not(None))
        .order_by(TRACKER_LINKS.c.story_id, TRACKERS.c.name)
    )
    for link in rows:
        found[link.story_id].append(link_json(link, link.tracker_name, link.tracker_kind))
    return found


def link_json(link: Any, name: str, kind: str) -> dict[str, Any]:
    """A tracker link as the views show it; `link` is a `tracker_links` row (or its ORM object)."""
    return {
        "tracker": name,
        "kind": kind,
        "key": link.item_key,
        "url": link.url,
        "closed": link.closed,
        "closed_at": link.closed_at.isoformat() if link.closed_at else None,
        "edited_by_person": link.edited_by_person,
        "updated_at": link.updated_at.isoformat(),
        "recurring_after_close": (
            {
                "since": link.regression_since.isoformat(),
                "closed_at": link.closed_at.isoformat() if link.closed_at else None,
                "conversations": link.regression_conversations,
            }
            if link.regression_since is not None
            else None
        ),
    }
