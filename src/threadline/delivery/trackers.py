"""Export stories to a tracker, idempotently and safely under concurrency and crashes; pull their state back.

One item per story and tracker, however often and from however many processes a story is
exported. The protocol, per story:

1. Reserve: `INSERT INTO tracker_links ... ON CONFLICT (story_id, tracker_id) DO NOTHING`,
   committed. From here one row stands for the item, whoever created it.
2. Serialise: a session-level advisory lock on (tracker, story), held on its own connection
   across the commits below and released on exit (or when a killed process's connection
   drops). Exporters of the same story wait; other stories proceed.
3. Re-read the row under the lock. With an item key: update the item. Without one: if
   `create_attempted_at` is set, an earlier attempt may have created the item and died before
   committing its key, so `find(marker)` first (the item carries the story identity as a hidden
   marker). Only when nothing is found: commit `create_attempted_at = now()`, then `create`.
4. Commit the key, URL, the seal of Threadline's block and what was pushed, in one transaction
   with the audit event; open dead letters of this story and tracker are marked retried.

A fresh reservation skips the search: no earlier attempt can have created an item for it,
which keeps exports off GitHub's search limit (30 per minute) in the common case.

A failure of one story is a dead letter (stage `export.<tracker>`, the story id as item); a
failure to open the tracker at all (refused token, missing project) fails the whole export
with one line naming the tracker, before anything is written.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, Engine, func, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import DeadLetter, RunStory, RunStoryEvidence, Story, Tracker, TrackerLink
from threadline.engine.curation import record
from threadline.exporters.base import (
    Evidence,
    ExporterClient,
    TrackerError,
    TrackerItem,
    TrackerNotFound,
    TrackerRef,
)
from threadline.exporters.trackers import TrackerConfigError, exporter_of, tracker_by_name, validated_config
from threadline.read.stories import story_view

logger = logging.getLogger(__name__)

EXPORT_STAGE_PREFIX = "export."  # dead letters of exports: stage `export.<tracker name>`
LOCK_NAMESPACE = "threadline-export"  # advisory-lock keys are hashed from this, the tracker and the story
EXPORTABLE_STATUSES = ("accepted",)  # `export --status` accepts these (and any other status by name)
ELLIPSIS = "…"


class ExportFailed(RuntimeError):
    """The export as a whole could not start (unknown tracker, refused token, missing project); one line."""


class LinkRefused(ExportFailed):
    """`export --link` refused: the item does not exist (or the story has none); one line."""


class AlreadyLinked(LinkRefused):
    """`export --link` refused: the story already has an item (or an unfinished export) in that tracker."""


@dataclass
class StoryOutcome:
    """What happened to one story: created, found (after a crash), updated, unchanged, edited (skipped), failed."""

    story_id: int
    action: str
    key: str | None = None
    url: str | None = None
    error: str | None = None


@dataclass
class ExportReport:
    tracker: str
    outcomes: list[StoryOutcome] = field(default_factory=list)
    merge_comments: int = 0  # merged-away stories' items told where the problem is tracked now

    def count(self, action: str) -> int:
        return sum(1 for o in self.outcomes if o.action == action)

    def as_dict(self) -> dict[str, Any]:
        actions = ("created", "found", "linked", "updated", "unchanged", "edited", "failed")
        return {
            "tracker": self.tracker,
            **{action: self.count(action) for action in actions},
            "merge_comments": self.merge_comments,
            "stories": [o.__dict__ for o in self.outcomes],
        }


def lock_key(tracker_id: int, story_id: int) -> int:
    """A signed 64-bit advisory-lock key for (tracker, story); a collision only serialises two exports."""
    digest = hashlib.sha256(f"{LOCK_NAMESPACE}:{tracker_id}:{story_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big", signed=True)


def _cut(value: str, limit: int) -> str:
    if len(value) <= limit:
        return value
    cut = value[:limit].rsplit(" ", 1)[0] or value[:limit]
    return cut + ELLIPSIS


def _trend(trend: dict[str, Any]) -> str:
    direction = trend.get("direction") or trend.get("label") or ""
    parts = [str(direction)] if direction else []
    for key in ("recent", "previous", "change"):
        if key in trend:
            parts.append(f"{key} {trend[key]}")
    return ", ".join(parts) or "n/a"


def tracker_item(view: dict[str, Any]) -> TrackerItem:
    """The tracker item of a story view (text already passed through `shown`, the masking hook)."""
    settings = get_settings().trackers
    facts = {
        "Conversations": str(view["conversations"]),
        "Customers": str(view["customers"]),
        "First seen": (view.get("first_seen") or "")[:10] or "n/a",
        "Last seen": (view.get("last_seen") or "")[:10] or "n/a",
        "Trend": _trend(view.get("trend") or {}),
        "Severity": " - ".join(v for v in (view.get("severity"), view.get("severity_reason")) if v) or "n/a",
        "Priority": f"rank {view['rank']}, score {float(view.get('score') or 0):.2f}",
    }
    evidence = [
        Evidence(
            quote=_cut(item["quote"] or "", settings.max_quote_chars),
            conversation=str(item["conversation_external_id"]),
            url=item.get("conversation_url") if str(item.get("conversation_url") or "").startswith("http") else None,
        )
        for item in view["evidence"][: settings.max_evidence_quotes]
    ]
    link = f"{settings.public_url.rstrip('/')}/stories/{view['id']}" if settings.public_url else None
    return TrackerItem(
        marker=str(view["id"]),
        title=view["title"] or f"Story {view['id']}",
        problem=view["problem"] or "",
        facts=facts,
        evidence=evidence,
        link=link,
    )


# --- the link row: reserve, lock, record -------------------------------------------------------

_RESERVE = text(
    """
    INSERT INTO tracker_links (story_id, tracker_id) VALUES (:story, :tracker)
    ON CONFLICT (story_id, tracker_id) DO NOTHING
    RETURNING id
    """
)


@dataclass(frozen=True)
class _Link:
    fresh: bool  # this call inserted the reservation
    key: str | None
    url: str | None
    create_attempted: bool
    pushed_conversations: int | None
    pushed_snapshot_id: int | None


def _reserve_and_lock(conn: Connection, tracker_id: int, story_id: int) -> _Link:
    """Steps 1-3: reserve the row (committed), take the advisory lock, re-read the row under it."""
    fresh = conn.execute(_RESERVE, {"story": story_id, "tracker": tracker_id}).first() is not None
    conn.commit()
    conn.execute(text("SELECT pg_advisory_lock(:key)"), {"key": lock_key(tracker_id, story_id)})
    conn.commit()
    row = conn.execute(
        select(
            TrackerLink.item_key,
            TrackerLink.url,
            TrackerLink.create_attempted_at,
            TrackerLink.pushed_conversations,
            TrackerLink.pushed_snapshot_id,
        ).where(TrackerLink.story_id == story_id, TrackerLink.tracker_id == tracker_id)
    ).one()
    conn.commit()
    return _Link(
        fresh,
        row.item_key,
        row.url,
        row.create_attempted_at is not None,
        row.pushed_conversations,
        row.pushed_snapshot_id,
    )


def _unlock(conn: Connection, tracker_id: int, story_id: int) -> None:
    conn.rollback()
    conn.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": lock_key(tracker_id, story_id)})
    conn.commit()


def _mark_attempt(conn: Connection, tracker_id: int, story_id: int) -> None:
    conn.execute(
        update(TrackerLink)
        .where(TrackerLink.story_id == story_id, TrackerLink.tracker_id == tracker_id)
        .values(create_attempted_at=datetime.now(UTC))
    )
    conn.commit()


def _record_push(
    engine: Engine,
    *,
    tracker: Tracker,
    view: dict[str, Any],
    ref: TrackerRef,
    digest: str | None,
    action: str,
    actor: str,
) -> None:
    """Step 4: the key, URL, seal and snapshot pushed, the audit event and resolved dead letters, in one transaction."""
    now = datetime.now(UTC)
    values: dict[str, Any] = {"item_key": ref.key, "url": ref.url, "updated_at": now}
    if digest is None:  # a person edited Threadline's block: nothing of ours was written
        values["edited_by_person"] = True
    else:
        values.update(
            block_sha256=digest,
            edited_by_person=False,
            pushed_run_id=view["run_id"],
            pushed_conversations=view["conversations"],
            pushed_snapshot_id=_snapshot_id(engine, view),
        )
    with Session(engine) as session, session.begin():
        session.execute(
            update(TrackerLink)
            .where(TrackerLink.story_id == view["id"], TrackerLink.tracker_id == tracker.id)
            .values(**values)
        )
        story = session.get(Story, view["id"], with_for_update=True)
        if action in ("created", "found", "linked") and story is not None and story.status in ("candidate", "accepted"):
            record(session, actor, "story.status", "story", story.id, before=story.status, after="exported")
            story.status = "exported"
            story.updated_at = now
        record(
            session,
            actor,
            "story.export",
            "story",
            view["id"],
            target=f"tracker:{tracker.name}",
            tracker=tracker.name,
            key=ref.key,
            url=ref.url,
            outcome=action,
            run_id=view["run_id"],
        )
        session.execute(
            update(DeadLetter)
            .where(
                DeadLetter.stage == EXPORT_STAGE_PREFIX + tracker.name,
                DeadLetter.item == str(view["id"]),
                DeadLetter.retried_at.is_(None),
            )
            .values(retried_at=now)
        )


def _snapshot_id(engine: Engine, view: dict[str, Any]) -> int | None:
    with Session(engine) as session:
        return session.execute(
            select(RunStory.id).where(RunStory.story_id == view["id"], RunStory.run_id == view["run_id"])
        ).scalar()


def dead_letter(engine: Engine, tracker_name: str, story_id: int, error: BaseException) -> None:
    """Record a failed export: one open dead letter per story and tracker, its attempts counted."""
    stage, item = EXPORT_STAGE_PREFIX + tracker_name, str(story_id)
    message = f"tracker {tracker_name}: {error}"
    with Session(engine) as session, session.begin():
        letter = session.execute(
            select(DeadLetter)
            .where(DeadLetter.stage == stage, DeadLetter.item == item, DeadLetter.retried_at.is_(None))
            .with_for_update()
        ).scalar_one_or_none()
        if letter is None:
            session.add(
                DeadLetter(run_id=None, stage=stage, item=item, error_class=type(error).__name__, error_message=message)
            )
        else:
            letter.attempts += 1
            letter.error_class, letter.error_message = type(error).__name__, message
            letter.failed_at = datetime.now(UTC)


# --- the export --------------------------------------------------------------------------------


async def _export_one(
    engine: Engine, client: ExporterClient, tracker: Tracker, story_id: int, actor: str
) -> StoryOutcome:
    with Session(engine) as session:
        view = story_view(session, story_id)
    if view is None:
        return StoryOutcome(story_id, "failed", error=f"no story {story_id} with a snapshot")
    item = tracker_item(view)
    conn = await asyncio.to_thread(engine.connect)
    try:
        link = await asyncio.to_thread(_reserve_and_lock, conn, tracker.id, story_id)
        ref: TrackerRef | None = TrackerRef(link.key, link.url or "") if link.key else None
        action = "updated"
        if ref is None and link.create_attempted:
            ref = await client.find(item.marker)  # an earlier attempt may have created it, then died
            action = "found"
        if ref is None:
            await asyncio.to_thread(_mark_attempt, conn, tracker.id, story_id)
            ref = await client.create(item)
            digest, action = ref.block_sha256, "created"
        else:
            digest = await client.update(ref, item)
            if digest is None:
                action = "edited"
            grown = growth_comment(engine, link, view, item)
            if grown is not None and action != "found":
                await client.comment(ref, grown)
        await asyncio.to_thread(
            _record_push, engine, tracker=tracker, view=view, ref=ref, digest=digest, action=action, actor=actor
        )
        return StoryOutcome(story_id, action, key=ref.key, url=ref.url)
    finally:
        await asyncio.to_thread(_unlock, conn, tracker.id, story_id)
        await asyncio.to_thread(conn.close)


def growth_comment(engine: Engine, link: _Link, view: dict[str, Any], item: TrackerItem) -> str | None:
    """When the theme grew since the last push: a comment with the counts and the evidence that is new; else None.

    New evidence is the quotes of conversations the pushed snapshot did not quote. A crash
    between the comment and the local commit may repeat the comment on the next export (the
    comment is Threadline's own, and says the same).
    """
    if link.pushed_conversations is None or view["conversations"] <= link.pushed_conversations:
        return None
    with Session(engine) as session:
        quoted = set(
            session.execute(
                select(RunStoryEvidence.conversation_external_id).where(
                    RunStoryEvidence.run_story_id == link.pushed_snapshot_id
                )
            ).scalars()
        )
    lines = [
        f"Threadline: this problem grew from {link.pushed_conversations} to {view['conversations']} conversations"
        f" (run {view['run_id']})."
    ]
    new = [e for e in item.evidence if e.conversation not in quoted]
    if new:
        lines += ["", "New evidence:"]
        lines += [f"> {e.quote} (conversation {e.conversation}{' ' + e.url if e.url else ''})" for e in new]
    return "\n".join(lines)


async def _export(engine: Engine, tracker: Tracker, story_ids: Sequence[int], actor: str) -> ExportReport:
    exporter = exporter_of(tracker.kind)
    config = validated_config(exporter, dict(tracker.config or {}))
    report = ExportReport(tracker.name)
    limit = asyncio.Semaphore(get_settings().trackers.max_concurrent_exports)
    try:
        async with exporter.open(config) as client:

            async def one(story_id: int) -> StoryOutcome:
                async with limit:
                    try:
                        return await _export_one(engine, client, tracker, story_id, actor)
                    except TrackerError as exc:
                        logger.warning("tracker %s: story %d not exported: %s", tracker.name, story_id, exc)
                        await asyncio.to_thread(dead_letter, engine, tracker.name, story_id, exc)
                        return StoryOutcome(story_id, "failed", error=f"tracker {tracker.name}: {exc}")

            report.outcomes = list(await asyncio.gather(*(one(story_id) for story_id in story_ids)))
            report.merge_comments = await _comment_merged(engine, client, tracker)
    except TrackerError as exc:
        raise ExportFailed(f"tracker {tracker.name} ({exporter.label}): {exc}") from None
    return report


def _tracker(engine: Engine, name: str) -> Tracker:
    with Session(engine, expire_on_commit=False) as session:
        try:
            tracker = tracker_by_name(session, name)
        except TrackerConfigError as exc:
            raise ExportFailed(str(exc)) from None
        session.expunge(tracker)
        return tracker


def stories_with_status(engine: Engine, status: str) -> list[int]:
    with Session(engine) as session:
        return list(session.execute(select(Story.id).where(Story.status == status).order_by(Story.id)).scalars())


def export_stories(engine: Engine, tracker_name: str, story_ids: Iterable[int], *, actor: str) -> ExportReport:
    """Export these stories to the tracker named `tracker_name` (`ExportFailed` when it cannot start)."""
    tracker = _tracker(engine, tracker_name)
    unique = list(dict.fromkeys(story_ids))
    return asyncio.run(_export(engine, tracker, unique, actor))


async def export_stories_async(
    engine: Engine, tracker_name: str, story_ids: Iterable[int], *, actor: str
) -> ExportReport:
    """`export_stories` for callers already in an event loop (the API)."""
    tracker = await asyncio.to_thread(_tracker, engine, tracker_name)
    return await _export(engine, tracker, list(dict.fromkeys(story_ids)), actor)


# --- merged themes: one item; the merged-away story's item points to the surviving one ---------

_MERGED_LINKS = text(
    """
    SELECT l.story_id, l.item_key, l.url, s2.id AS into_story, l2.item_key AS into_key, l2.url AS into_url
      FROM tracker_links l
      JOIN stories s ON s.id = l.story_id
      JOIN themes t ON t.id = s.theme_id
      JOIN stories s2 ON s2.theme_id = t.merged_into_id
      JOIN tracker_links l2 ON l2.story_id = s2.id AND l2.tracker_id = l.tracker_id AND l2.item_key IS NOT NULL
     WHERE l.tracker_id = :tracker AND l.item_key IS NOT NULL
       AND t.merged_into_id IS NOT NULL
       AND l.item_key <> l2.item_key
       AND (l.merge_commented_key IS NULL OR l.merge_commented_key <> l2.item_key)
     ORDER BY l.story_id
    """
)


def _merged_links(engine: Engine, tracker_id: int) -> list[Any]:
    with Session(engine) as session:
        return list(session.execute(_MERGED_LINKS, {"tracker": tracker_id}).all())


def merge_comment(into_story: int, into_key: str, into_url: str) -> str:
    """The comment on a merged-away story's item: where the problem is tracked now."""
    where = f" ({into_url})" if into_url else ""
    return (
        f"Threadline: this problem was merged into story {into_story}, tracked in item {into_key}{where}. "
        "New evidence about it is collected there."
    )


def _mark_merge_commented(engine: Engine, tracker_id: int, story_id: int, into_key: str) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(TrackerLink)
            .where(TrackerLink.story_id == story_id, TrackerLink.tracker_id == tracker_id)
            .values(merge_commented_key=into_key)
        )


async def _comment_merged(engine: Engine, client: ExporterClient, tracker: Tracker) -> int:
    """Once per merge: comment on each merged-away story's item pointing to the surviving story's item.

    A crash between the comment and the local commit may repeat the comment (it is Threadline's
    own, and says the same). Failures are logged and retried by the next export or pull.
    """
    posted = 0
    for row in await asyncio.to_thread(_merged_links, engine, tracker.id):
        ref = TrackerRef(str(row.item_key), row.url or "")
        try:
            await client.comment(ref, merge_comment(row.into_story, str(row.into_key), row.into_url or ""))
        except TrackerError as exc:
            logger.warning("tracker %s: merge comment on story %d failed: %s", tracker.name, row.story_id, exc)
            continue
        await asyncio.to_thread(_mark_merge_commented, engine, tracker.id, row.story_id, str(row.into_key))
        posted += 1
    return posted


# --- link: a story to an existing item ----------------------------------------------------------


def _drop_reservation(conn: Connection, tracker_id: int, story_id: int) -> None:
    """Undo a fresh reservation of a refused link: the story stays as if never exported to this tracker."""
    conn.rollback()
    conn.execute(
        text("DELETE FROM tracker_links WHERE story_id = :story AND tracker_id = :tracker AND item_key IS NULL"),
        {"story": story_id, "tracker": tracker_id},
    )
    conn.commit()


def _linked_elsewhere(engine: Engine, tracker_id: int, story_id: int, key: str) -> int | None:
    """The other story of this tracker already linked to item `key` (UNIQUE (tracker_id, item_key)), if any.

    Compared as the trackers spell keys: a number or a case-insensitive identifier (`ops-12` is
    Jira's and Linear's `OPS-12`, `#12` GitHub's `12`), so a person's spelling is caught before the
    item is touched; the constraint stays the authority."""
    wanted = key.strip().lstrip("#").upper()
    with Session(engine) as session:
        return session.execute(
            select(TrackerLink.story_id)
            .where(
                TrackerLink.tracker_id == tracker_id,
                func.upper(TrackerLink.item_key) == wanted,
                TrackerLink.story_id != story_id,
            )
            .order_by(TrackerLink.story_id)
            .limit(1)
        ).scalar()


def _shared_item(tracker: Tracker, key: str, other: int, story_id: int) -> AlreadyLinked:
    return AlreadyLinked(
        f"tracker {tracker.name}: item {key} is already linked to story {other}; not linked to story {story_id}"
    )


async def _link(engine: Engine, tracker: Tracker, story_id: int, key: str, actor: str) -> ExportReport:
    """Link `story_id` to the existing item `key`: the same reservation and lock as an export, then `client.link`."""
    exporter = exporter_of(tracker.kind)
    config = validated_config(exporter, dict(tracker.config or {}))
    with Session(engine) as session:
        view = story_view(session, story_id)
    if view is None:
        raise LinkRefused(f"no story {story_id} with a snapshot")
    item = tracker_item(view)
    report = ExportReport(tracker.name)
    try:
        async with exporter.open(config) as client:
            conn = await asyncio.to_thread(engine.connect)
            try:
                link = await asyncio.to_thread(_reserve_and_lock, conn, tracker.id, story_id)
                if link.key is not None:
                    raise AlreadyLinked(
                        f"story {story_id} already has item {link.key} in tracker {tracker.name}; not linked to {key}"
                    )
                if link.create_attempted:
                    raise AlreadyLinked(
                        f"story {story_id} has an unfinished export to tracker {tracker.name}"
                        " (an item may exist): export it again first"
                    )
                # before the item is touched: an item has one story per tracker (the constraint catches races)
                other = await asyncio.to_thread(_linked_elsewhere, engine, tracker.id, story_id, key)
                if other is not None:
                    if link.fresh:
                        await asyncio.to_thread(_drop_reservation, conn, tracker.id, story_id)
                    raise _shared_item(tracker, key, other, story_id)
                try:
                    ref = await client.link(key, item)
                except TrackerError as exc:
                    if link.fresh:
                        await asyncio.to_thread(_drop_reservation, conn, tracker.id, story_id)
                    if isinstance(exc, TrackerNotFound):
                        raise LinkRefused(f"tracker {tracker.name}: no item {key} ({exc})") from None
                    raise
                digest = ref.block_sha256
                try:
                    await asyncio.to_thread(
                        _record_push,
                        engine,
                        tracker=tracker,
                        view=view,
                        ref=ref,
                        digest=digest,
                        action="linked",
                        actor=actor,
                    )
                except IntegrityError:
                    # linked meanwhile, or spelled differently than the tracker's own key (`#12` for `12`)
                    other = await asyncio.to_thread(_linked_elsewhere, engine, tracker.id, story_id, ref.key)
                    if other is None:
                        raise
                    if link.fresh:
                        await asyncio.to_thread(_drop_reservation, conn, tracker.id, story_id)
                    raise _shared_item(tracker, ref.key, other, story_id) from None
                action = "linked" if digest is not None else "edited"
                report.outcomes.append(StoryOutcome(story_id, action, key=ref.key, url=ref.url))
            finally:
                await asyncio.to_thread(_unlock, conn, tracker.id, story_id)
                await asyncio.to_thread(conn.close)
    except LinkRefused:
        raise
    except TrackerError as exc:
        raise ExportFailed(f"tracker {tracker.name} ({exporter.label}): {exc}") from None
    return report


def link_story(engine: Engine, tracker_name: str, story_id: int, key: str, *, actor: str) -> ExportReport:
    """Link a story to the existing item `key` of a tracker (`LinkRefused` / `ExportFailed` in one line)."""
    return asyncio.run(_link(engine, _tracker(engine, tracker_name), story_id, key, actor))


async def link_story_async(engine: Engine, tracker_name: str, story_id: int, key: str, *, actor: str) -> ExportReport:
    """`link_story` for callers already in an event loop (the API)."""
    tracker = await asyncio.to_thread(_tracker, engine, tracker_name)
    return await _link(engine, tracker, story_id, key, actor)


# --- pull: the items' state back, closed items set the story's status, regressions ---------------


@dataclass
class PullReport:
    tracker: str
    checked: int = 0
    closed: int = 0  # items found closed by this pull (newly)
    reopened: int = 0
    regressions: int = 0  # stories newly flagged "recurring after close"
    merge_comments: int = 0  # merged-away stories' items told where the problem is tracked now
    failed: int = 0

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


_AFTER_CLOSE = text(
    """
    SELECT count(*) FROM theme_members tm
      JOIN conversations c ON c.id = tm.conversation_id
     WHERE tm.theme_id = :theme
       AND tm.run_id = (SELECT max(rs.run_id) FROM run_stories rs JOIN runs r ON r.id = rs.run_id
                         WHERE rs.story_id = :story AND r.status = 'succeeded')
       AND c.created_at > :closed_at
    """
)


def conversations_after_close(session: Session, story: Story, closed_at: datetime) -> int:
    """Conversations of the story's theme in its newest succeeded run created (their own date) after the close."""
    return int(
        session.execute(_AFTER_CLOSE, {"theme": story.theme_id, "story": story.id, "closed_at": closed_at}).scalar()
        or 0
    )


def _regression_comment(count: int, closed_at: datetime) -> str:
    return (
        f"Threadline: recurring after close. {count} new conversations about this problem were created "
        f"after this item was closed on {closed_at.date().isoformat()}."
    )


async def _pull(engine: Engine, tracker: Tracker, actor: str) -> PullReport:
    exporter = exporter_of(tracker.kind)
    config = validated_config(exporter, dict(tracker.config or {}))
    settings = get_settings().trackers
    report = PullReport(tracker.name)
    with Session(engine) as session:
        links = [
            (link.story_id, link.item_key, link.url or "")
            for link in session.execute(
                select(TrackerLink).where(TrackerLink.tracker_id == tracker.id, TrackerLink.item_key.is_not(None))
            ).scalars()
        ]
    try:
        async with exporter.open(config) as client:
            for story_id, key, url in links:
                ref = TrackerRef(str(key), url)
                try:
                    state = await client.state(ref)
                except TrackerError as exc:
                    logger.warning("tracker %s: state of story %d not read: %s", tracker.name, story_id, exc)
                    report.failed += 1
                    continue
                report.checked += 1
                comment = await asyncio.to_thread(_apply_state, engine, tracker, story_id, state, actor, report)
                if comment is not None and settings.comment_on_regression:
                    try:
                        await client.comment(ref, comment)
                    except TrackerError as exc:
                        logger.warning(
                            "tracker %s: regression comment on story %d failed: %s", tracker.name, story_id, exc
                        )
                        continue
                    await asyncio.to_thread(_mark_commented, engine, tracker.id, story_id)
            report.merge_comments = await _comment_merged(engine, client, tracker)
    except TrackerError as exc:
        raise ExportFailed(f"tracker {tracker.name} ({exporter.label}): {exc}") from None
    return report


def _apply_state(
    engine: Engine, tracker: Tracker, story_id: int, state: Any, actor: str, report: PullReport
) -> str | None:
    """Record the item's state; a newly closed item sets the story to done; flag a regression. Returns a comment to post."""
    settings = get_settings().trackers
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        link = session.execute(
            select(TrackerLink)
            .where(TrackerLink.story_id == story_id, TrackerLink.tracker_id == tracker.id)
            .with_for_update()
        ).scalar_one()
        story = session.get(Story, story_id, with_for_update=True)
        assert story is not None
        link.state_checked_at = now
        if state.closed and not link.closed:
            link.closed, link.closed_at = True, state.closed_at or now
            report.closed += 1
            if story.status != "done":
                record(
                    session,
                    actor,
                    "story.status",
                    "story",
                    story.id,
                    before=story.status,
                    after="done",
                    reason=f"closed in tracker {tracker.name}",
                )
                story.status, story.updated_at = "done", now
        elif not state.closed and link.closed:
            link.closed, link.closed_at = False, None
            link.regression_since, link.regression_conversations, link.regression_commented = None, None, False
            report.reopened += 1
        if not link.closed or link.closed_at is None:
            return None
        count = conversations_after_close(session, story, link.closed_at)
        if count < settings.regression_min_conversations:
            return None
        newly = link.regression_since is None
        link.regression_conversations = count
        if newly:
            link.regression_since = now
            report.regressions += 1
            record(
                session,
                actor,
                "story.regression",
                "story",
                story.id,
                tracker=tracker.name,
                closed_at=link.closed_at.isoformat(),
                conversations=count,
            )
        return _regression_comment(count, link.closed_at) if not link.regression_commented else None


def _mark_commented(engine: Engine, tracker_id: int, story_id: int) -> None:
    with Session(engine) as session, session.begin():
        session.execute(
            update(TrackerLink)
            .where(TrackerLink.story_id == story_id, TrackerLink.tracker_id == tracker_id)
            .values(regression_commented=True)
        )


def pull_tracker(engine: Engine, tracker_name: str, *, actor: str) -> PullReport:
    """Read the state of every linked item of the tracker (`ExportFailed` when it cannot be opened)."""
    return asyncio.run(_pull(engine, _tracker(engine, tracker_name), actor))


def tracker_names(engine: Engine) -> list[str]:
    with Session(engine) as session:
        return list(session.execute(select(Tracker.name).order_by(Tracker.name)).scalars())
