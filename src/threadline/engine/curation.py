"""Human actions on identities, each recorded in the audit trail: who (token name or "cli"), when, what.

- Stories: status and a person's title / problem / user story, laid over every snapshot of
  the story and kept by later runs.
- Themes: a person's name (shown with every snapshot of the lineage and used by later runs'
  story text), merging one lineage into another of the same scope (later runs put its
  conversations in the other; its own snapshots stay as they were), and "keep separate"
  (later runs never merge it with another).
- Exports: every story written out (report, Markdown export) is recorded.

Snapshots are never touched here. Every function takes the caller's session and leaves
committing to the caller.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from threadline.db.models import ApiToken, AuditEvent, Story, Theme
from threadline.db.tables import STORY_STATUSES

CLI_ACTOR = "cli"  # who acted when a person used the command line (no token involved)
MAX_THEME_NAME_CHARS = 200  # characters: a theme name is a label
TEXT_FIELDS = ("title", "problem", "user_story")  # story fields a person may rewrite

__all__ = [
    "CLI_ACTOR",
    "CurationError",
    "actor_of_token",
    "merge_theme",
    "record",
    "record_exports",
    "rename_theme",
    "set_keep_separate",
    "update_story",
]


class CurationError(ValueError):
    """A human action that cannot be applied (unknown target, other scope, keep-separate); the message says why."""

    def __init__(self, message: str, *, status: int = 409) -> None:
        super().__init__(message)
        self.status = status


def actor_of_token(session: Session, token_id: int) -> str:
    """The name of the API token behind a request (what the audit trail records as "who")."""
    name = session.execute(select(ApiToken.name).where(ApiToken.id == token_id)).scalar()
    return name or f"token #{token_id}"


def record(
    session: Session, actor: str, action: str, subject_type: str, subject_id: int | None, **details: Any
) -> None:
    session.add(
        AuditEvent(actor=actor, action=action, subject_type=subject_type, subject_id=subject_id, details=details)
    )


def update_story(session: Session, story: Story, changes: dict[str, Any], actor: str) -> Story:
    """Apply a person's status and text: text is theirs from now on (every snapshot shows it, runs keep it)."""
    for field in TEXT_FIELDS:
        value = changes.get(field)
        if value is None:
            continue
        before = getattr(story, f"human_{field}")
        if value != before:
            setattr(story, f"human_{field}", value)
            record(session, actor, "story.edit", "story", story.id, field=field, text=value)
    status = changes.get("status")
    if status is not None and status != story.status:
        if status not in STORY_STATUSES:
            raise CurationError(f"status must be one of {', '.join(STORY_STATUSES)}", status=422)
        record(session, actor, "story.status", "story", story.id, before=story.status, after=status)
        story.status = status
    story.updated_at = datetime.now(UTC)
    return story


def _theme(session: Session, theme_id: int) -> Theme:
    theme = session.get(Theme, theme_id)
    if theme is None:
        raise CurationError(f"no theme {theme_id}", status=404)
    return theme


def rename_theme(session: Session, theme_id: int, name: str | None, actor: str) -> Theme:
    """Give a lineage a person's name (None or blank: back to the runs' names)."""
    theme = _theme(session, theme_id)
    cleaned = " ".join((name or "").split())[:MAX_THEME_NAME_CHARS] or None
    if cleaned != theme.human_name:
        record(session, actor, "theme.rename", "theme", theme.id, before=theme.human_name, after=cleaned)
        theme.human_name = cleaned
        theme.updated_at = datetime.now(UTC)
    return theme


def merge_theme(session: Session, theme_id: int, into_id: int, actor: str) -> Theme:
    """Merge lineage `theme_id` into `into_id` (same scope, both themes, neither kept separate nor merged)."""
    theme, into = _theme(session, theme_id), _theme(session, into_id)
    if theme.id == into.id:
        raise CurationError("a theme cannot be merged into itself", status=422)
    if theme.scope_id != into.scope_id:
        raise CurationError("themes of different scopes (sets of sources) cannot be merged")
    if theme.level != 1 or into.level != 1:
        raise CurationError("only themes can be merged, not top-level groups")
    for lineage in (theme, into):
        if lineage.merged_into_id is not None:
            raise CurationError(f"theme {lineage.id} was already merged into theme {lineage.merged_into_id}")
        if lineage.keep_separate:
            raise CurationError(f"theme {lineage.id} is marked keep separate; unmark it first")
    theme.merged_into_id, theme.merged_by, theme.merged_at = into.id, "person", datetime.now(UTC)
    theme.merged_run_id = None
    theme.updated_at = datetime.now(UTC)
    record(session, actor, "theme.merge", "theme", theme.id, into=into.id)
    record(session, actor, "theme.merge", "theme", into.id, absorbed=theme.id)
    return theme


def set_keep_separate(session: Session, theme_id: int, keep: bool, actor: str) -> Theme:
    """Mark (or unmark) a lineage so later runs never merge it with another."""
    theme = _theme(session, theme_id)
    if theme.keep_separate != keep:
        theme.keep_separate = keep
        theme.updated_at = datetime.now(UTC)
        record(session, actor, "theme.keep_separate", "theme", theme.id, keep=keep)
    return theme


def record_exports(session: Session, story_ids: Sequence[int], actor: str, *, run_id: int | None, target: str) -> None:
    """Record that these stories were exported (report file, Markdown download), one event each, in one INSERT."""
    if not story_ids:
        return
    session.execute(
        insert(AuditEvent),
        [
            {
                "actor": actor,
                "action": "story.export",
                "subject_type": "story",
                "subject_id": story_id,
                "details": {"run_id": run_id, "target": target},
            }
            for story_id in story_ids
        ],
    )
