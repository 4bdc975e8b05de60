"""Digests after each run, to every notification channel: what is new, what grows, what came back after close.

The one code path of `threadline notify add|list|remove`, of the job the engine defers when a
run finishes (`notify_run`) and of `dlq retry` for a failed digest (`deliver`).

A run's digest lists, for the run's scope:

* **new themes**: themes this run found for the first time (`run_themes.origin = 'new'`);
* **growing themes**: themes that gained at least `notify.min_growth_conversations`
  conversations and grew by at least `notify.growth_rate` since the scope's previous
  succeeded run;
* **regressions**: stories whose tracker item was flagged "recurring after close" since that
  previous run finished.

A digest with none of these is not sent. Names and titles are masked (`threadline.text.pii`)
before the digest is stored, so what is sent, stored and retried is the same masked text.

Delivery is exactly-once per channel and event as far as Threadline can tell: the digest is
one row, UNIQUE (channel, event key `run:<id>`), inserted before the send; a delivered row is
never sent again. A failed delivery (after the retry policy) marks the row failed and leaves
a dead letter, stage `notify.<channel>`, item the notification id, which `dlq retry` re-sends.
"""

from __future__ import annotations

import asyncio
import json
import logging
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError
from sqlalchemy import Engine, delete, func, select, text, update
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import (
    DeadLetter,
    Notification,
    NotificationChannel,
    Run,
    RunTheme,
    Scope,
    Story,
    Theme,
    Tracker,
    TrackerLink,
)
from threadline.exporters.notify import CHANNEL_KINDS, NotifyError, send
from threadline.text.pii import mask

logger = logging.getLogger(__name__)

NOTIFY_STAGE_PREFIX = "notify."  # dead letters of deliveries: stage `notify.<channel name>`
RUN_EVENT = "run.finished"
CHANNEL_NAME_CHARS = 25  # characters of a channel name: `notify.<name>` must fit dead_letters.stage (32)
DIGEST_VERSION = 1
ERROR_CHARS = 500  # characters of an error in a failure digest: the one line the engine wrote  # the digest's JSON shape; receivers may switch on it


class ChannelConfigError(LookupError):
    """A channel cannot be added, found or used as asked; the message says why (never a secret)."""


# --- channels ----------------------------------------------------------------------------------


def add_channel(session: Session, kind: str, name: str, values: dict[str, Any]) -> NotificationChannel:
    """Create the channel `name` of `kind`, or reconfigure it when it exists with that kind."""
    if not name or len(name) > CHANNEL_NAME_CHARS:
        raise ChannelConfigError(f"a channel name has 1 to {CHANNEL_NAME_CHARS} characters")
    model = CHANNEL_KINDS.get(kind)
    if model is None:
        raise ChannelConfigError(f"no channel kind {kind!r} (known: {', '.join(sorted(CHANNEL_KINDS))})")
    try:
        config = model.model_validate(values).model_dump(exclude_none=True)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise ChannelConfigError(f"invalid {kind} configuration: {problems}") from None
    channel = session.execute(
        select(NotificationChannel).where(NotificationChannel.name == name).with_for_update()
    ).scalar_one_or_none()
    if channel is None:
        channel = NotificationChannel(name=name, kind=kind, config=config)
        session.add(channel)
    elif channel.kind != kind:
        raise ChannelConfigError(f"channel {name!r} already exists with kind {channel.kind!r}")
    channel.config = config
    session.flush()
    return channel


def list_channels(session: Session) -> list[dict[str, Any]]:
    """Channels with kind and configuration (variable names, never URLs or secrets)."""
    return [
        {"id": c.id, "name": c.name, "kind": c.kind, "config": dict(c.config or {})}
        for c in session.execute(select(NotificationChannel).order_by(NotificationChannel.id)).scalars()
    ]


def remove_channel(session: Session, name: str) -> bool:
    """Remove a channel and its notifications; False when there was none."""
    removed = session.execute(
        delete(NotificationChannel).where(NotificationChannel.name == name).returning(NotificationChannel.id)
    ).first()
    return removed is not None


def has_channels(session: Session) -> bool:
    return session.execute(select(func.count()).select_from(NotificationChannel)).scalar_one() > 0


# --- the digest --------------------------------------------------------------------------------


def _shown(value: str | None, limit: int) -> str:
    masked = mask(value or "")
    return masked if len(masked) <= limit else masked[: limit - 1] + "…"


def _story_url(story_id: int | None) -> str | None:
    public = get_settings().trackers.public_url
    return f"{public.rstrip('/')}/stories/{story_id}" if public and story_id is not None else None


def _previous_run(session: Session, run: Run) -> Run | None:
    return (
        session.execute(
            select(Run)
            .where(Run.scope_id == run.scope_id, Run.status == "succeeded", Run.id < run.id)
            .order_by(Run.id.desc())
            .limit(1)
        )
        .scalars()
        .first()
    )


def build_digest(session: Session, run_id: int) -> dict[str, Any] | None:
    """The digest of a finished run, masked; None when the run is unknown or there is nothing to say."""
    settings = get_settings().notify
    run = session.get(Run, run_id)
    if run is None:
        return None
    scope_key = session.execute(select(Scope.key).where(Scope.id == run.scope_id)).scalar()
    if run.status == "failed":
        return failure_digest(
            "run.failed", f"Threadline run {run.id} failed", f"scope {scope_key}", run.error or "failed", run_id=run.id
        )
    previous = _previous_run(session, run)
    themes = session.execute(
        select(RunTheme, Theme.human_name, Story.id)
        .join(Theme, Theme.id == RunTheme.theme_id)
        .outerjoin(Story, Story.theme_id == RunTheme.theme_id)
        .where(RunTheme.run_id == run_id, RunTheme.level == 1)
        .order_by(RunTheme.size.desc(), RunTheme.theme_id)
    ).all()
    before: dict[int, int] = {}
    if previous is not None:
        before = dict(
            session.execute(
                select(RunTheme.theme_id, RunTheme.size).where(RunTheme.run_id == previous.id, RunTheme.level == 1)
            ).all()
        )
    new: list[dict[str, Any]] = []
    growing: list[dict[str, Any]] = []
    for row, human_name, story_id in themes:
        item = {
            "theme_id": row.theme_id,
            "story_id": story_id,
            "name": _shown(human_name or row.name or f"Theme {row.theme_id}", settings.max_name_chars),
            "conversations": row.size,
            "url": _story_url(story_id),
        }
        old = before.get(row.theme_id)
        if row.origin == "new" and old is None:
            new.append(item)
        elif old is not None and old > 0:
            gained = row.size - old
            if gained >= settings.min_growth_conversations and gained / old >= settings.growth_rate:
                growing.append({**item, "previous": old, "growth": round(gained / old, 4)})
    regressions = _regressions(session, run, previous)
    if not (new or growing or regressions):
        return None
    growing.sort(key=lambda t: (-float(t["growth"]), int(t["theme_id"])))
    cap = settings.max_items_per_section
    parts = [
        f"{len(new)} new theme{'s' if len(new) != 1 else ''}",
        f"{len(growing)} growing",
        f"{len(regressions)} recurring after close",
    ]
    return {
        "version": DIGEST_VERSION,
        "id": str(uuid.uuid4()),
        "event": RUN_EVENT,
        "summary": f"Threadline run {run.id}: " + ", ".join(parts),
        "context": f"scope {scope_key}, finished {run.finished_at.isoformat() if run.finished_at else 'n/a'}",
        "run": {
            "id": run.id,
            "scope": scope_key,
            "status": run.status,
            "finished_at": run.finished_at.isoformat() if run.finished_at else None,
            "previous_run_id": previous.id if previous else None,
        },
        "new_themes": new[:cap],
        "new_themes_total": len(new),
        "growing_themes": growing[:cap],
        "growing_themes_total": len(growing),
        "regressions": regressions[:cap],
        "regressions_total": len(regressions),
    }


def failure_digest(event: str, summary: str, context: str, error: str, *, run_id: int | None) -> dict[str, Any]:
    """The digest of a failure (a run, a scheduled sync): what failed and the engine's one-line error, masked."""
    return {
        "version": DIGEST_VERSION,
        "id": str(uuid.uuid4()),
        "event": event,
        "summary": summary,
        "context": context,
        "run": {"id": run_id} if run_id is not None else None,
        "error": _shown(error, ERROR_CHARS),
    }


def _regressions(session: Session, run: Run, previous: Run | None) -> list[dict[str, Any]]:
    settings = get_settings().notify
    query = (
        select(TrackerLink, Tracker.name, Story.id, Story.theme_id, Theme.human_name)
        .join(Tracker, Tracker.id == TrackerLink.tracker_id)
        .join(Story, Story.id == TrackerLink.story_id)
        .join(Theme, Theme.id == Story.theme_id)
        .where(Theme.scope_id == run.scope_id, TrackerLink.regression_since.is_not(None))
        .order_by(TrackerLink.regression_conversations.desc(), TrackerLink.id)
    )
    if previous is not None and previous.finished_at is not None:
        query = query.where(TrackerLink.regression_since > previous.finished_at)
    names = dict(
        session.execute(
            select(RunTheme.theme_id, RunTheme.name).where(RunTheme.run_id == run.id, RunTheme.level == 1)
        ).all()
    )
    out = []
    for link, tracker_name, story_id, theme_id, human_name in session.execute(query).all():
        out.append(
            {
                "story_id": story_id,
                "name": _shown(human_name or names.get(theme_id) or f"Story {story_id}", settings.max_name_chars),
                "tracker": tracker_name,
                "item": link.item_key,
                "url": link.url if (link.url or "").startswith("http") else _story_url(story_id),
                "closed_at": link.closed_at.isoformat() if link.closed_at else None,
                "conversations": link.regression_conversations or 0,
            }
        )
    return out


# --- delivery ----------------------------------------------------------------------------------


@dataclass
class Delivery:
    """What happened to one digest for one channel: delivered, already (delivered before), failed."""

    channel: str
    notification_id: int
    action: str
    error: str | None = None


_INSERT = text(
    """
    INSERT INTO notifications (channel_id, run_id, event_key, payload)
    VALUES (:channel, :run, :event, CAST(:payload AS jsonb))
    ON CONFLICT (channel_id, event_key) DO NOTHING
    """
)


def queue_digest(session: Session, event_key: str, digest: dict[str, Any], *, run_id: int | None) -> list[int]:
    """One notification row per channel for `event_key` (existing rows kept); the ids of the event's rows."""
    payload = json.dumps(digest)
    channel_ids = list(session.execute(select(NotificationChannel.id)).scalars())
    for channel_id in channel_ids:
        session.execute(_INSERT, {"channel": channel_id, "run": run_id, "event": event_key, "payload": payload})
    return list(
        session.execute(
            select(Notification.id).where(Notification.event_key == event_key).order_by(Notification.id)
        ).scalars()
    )


def notify_run(engine: Engine, run_id: int) -> list[Delivery]:
    """Build the run's digest, store it per channel and deliver each one not delivered yet."""
    with Session(engine) as session, session.begin():
        if not has_channels(session):
            return []
        digest = build_digest(session, run_id)
        if digest is None:
            logger.info("run %d: nothing new for the digest", run_id)
            return []
        ids = queue_digest(session, f"run:{run_id}", digest, run_id=run_id)
    return [deliver(engine, notification_id) for notification_id in ids]


def notify_event(engine: Engine, event_key: str, digest: dict[str, Any], *, run_id: int | None) -> list[Delivery]:
    """Store `digest` for every channel under `event_key` and deliver each one not delivered yet (a failure, say)."""
    with Session(engine) as session, session.begin():
        ids = queue_digest(session, event_key, digest, run_id=run_id)
    return [deliver(engine, notification_id) for notification_id in ids]


def deliver(engine: Engine, notification_id: int) -> Delivery:
    """Send one stored digest (unless delivered); on failure mark it failed and leave a dead letter."""
    with Session(engine) as session:
        row = session.execute(
            select(Notification, NotificationChannel)
            .join(NotificationChannel, NotificationChannel.id == Notification.channel_id)
            .where(Notification.id == notification_id)
        ).first()
        if row is None:
            return Delivery("", notification_id, "failed", error=f"no notification {notification_id}")
        notification, channel = row
        name, kind, config, payload = channel.name, channel.kind, dict(channel.config), dict(notification.payload)
        if notification.status == "delivered":
            return Delivery(name, notification_id, "already")
    try:
        attempts = asyncio.run(send(kind, config, payload))
    except NotifyError as exc:
        logger.warning("channel %s: notification %d not delivered: %s", name, notification_id, exc)
        _failed(engine, name, notification_id, exc)
        return Delivery(name, notification_id, "failed", error=f"channel {name}: {exc}")
    _delivered(engine, name, notification_id, attempts)
    return Delivery(name, notification_id, "delivered")


def _delivered(engine: Engine, name: str, notification_id: int, attempts: int) -> None:
    now = datetime.now(UTC)
    with Session(engine) as session, session.begin():
        session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(status="delivered", delivered_at=now, attempts=Notification.attempts + attempts)
        )
        session.execute(
            update(DeadLetter)
            .where(
                DeadLetter.stage == NOTIFY_STAGE_PREFIX + name,
                DeadLetter.item == str(notification_id),
                DeadLetter.retried_at.is_(None),
            )
            .values(retried_at=now)
        )


def _failed(engine: Engine, name: str, notification_id: int, error: NotifyError) -> None:
    """Mark the notification failed and record one open dead letter for it (attempts counted)."""
    stage, item = NOTIFY_STAGE_PREFIX + name, str(notification_id)
    message = f"channel {name}: {error}"
    with Session(engine) as session, session.begin():
        session.execute(
            update(Notification)
            .where(Notification.id == notification_id)
            .values(status="failed", attempts=Notification.attempts + get_settings().notify.max_attempts)
        )
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
            letter.error_message = message
            letter.failed_at = datetime.now(UTC)
