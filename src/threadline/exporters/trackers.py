"""Trackers: adding one of a registered exporter kind with a validated configuration, listing, removing.

The one code path of `threadline trackers add|list|remove` (and of the API when it manages
trackers): the exporter is found by kind in the registry and the configuration validated by
its model; only names of environment variables are stored, never a token.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ValidationError
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from threadline.db.models import Tracker
from threadline.exporters.base import EXPORTERS, Exporter
from threadline.registry import UnknownPlugin


class TrackerConfigError(LookupError):
    """A tracker cannot be added, found or used as asked; the message says why (never a secret)."""


def exporter_of(kind: str) -> Exporter:
    try:
        return EXPORTERS.get(kind)
    except UnknownPlugin as exc:
        raise TrackerConfigError(str(exc)) from None


def validated_config(exporter: Exporter, values: dict[str, Any]) -> BaseModel:
    """`values` checked against the exporter's configuration model (`TrackerConfigError` when invalid)."""
    try:
        return exporter.config_model.model_validate(values)
    except ValidationError as exc:
        problems = "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'config'}: {e['msg']}" for e in exc.errors())
        raise TrackerConfigError(f"invalid {exporter.kind} configuration: {problems}") from None


def add_tracker(session: Session, kind: str, name: str, values: dict[str, Any]) -> Tracker:
    """Create the tracker `name` of `kind`, or reconfigure it when it exists with that kind."""
    exporter = exporter_of(kind)
    config = validated_config(exporter, values).model_dump(exclude_none=True)
    tracker = session.execute(select(Tracker).where(Tracker.name == name).with_for_update()).scalar_one_or_none()
    if tracker is None:
        tracker = Tracker(name=name, kind=kind, config=config)
        session.add(tracker)
    elif tracker.kind != kind:
        raise TrackerConfigError(f"tracker {name!r} already exists with kind {tracker.kind!r}")
    tracker.config = config
    session.flush()
    return tracker


def tracker_by_name(session: Session, name: str) -> Tracker:
    tracker = session.execute(select(Tracker).where(Tracker.name == name)).scalar_one_or_none()
    if tracker is None:
        raise TrackerConfigError(f"no tracker named {name!r}; see `threadline trackers list`")
    return tracker


def list_trackers(session: Session) -> list[dict[str, Any]]:
    """Trackers with kind and configuration (variable names, never secrets)."""
    return [
        {"id": t.id, "name": t.name, "kind": t.kind, "config": dict(t.config or {})}
        for t in session.execute(select(Tracker).order_by(Tracker.id)).scalars()
    ]


def remove_tracker(session: Session, name: str) -> bool:
    """Remove a tracker and its links (the items stay in the tracker); False when there was none."""
    return bool(session.execute(delete(Tracker).where(Tracker.name == name).returning(Tracker.id)).first())
