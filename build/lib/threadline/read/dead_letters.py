"""Dead letters not yet retried: what the CLI, the API and the dashboard list."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import DeadLetter


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value else None


PAGE_PROBE_ROWS = 1  # rows allowed beyond the list limit: a paginating caller asks for limit + 1 to detect a next page


def _bounded(limit: int) -> int:
    """`limit` clamped to 1..`read.max_list_limit` (+ the page probe row)."""
    return min(max(int(limit), 1), get_settings().read.max_list_limit + PAGE_PROBE_ROWS)


def _dead_letter_dict(letter: DeadLetter) -> dict[str, Any]:
    return {
        "id": letter.id,
        "run_id": letter.run_id,
        "stage": letter.stage,
        "item": letter.item,
        "error_class": letter.error_class,
        "error_message": letter.error_message,
        "attempts": letter.attempts,
        "failed_at": _iso(letter.failed_at),
        "retried_at": _iso(letter.retried_at),
    }


def list_dead_letters(
    session: Session, *, run_id: int | None = None, limit: int = 100, offset: int = 0
) -> list[dict[str, Any]]:
    """Dead letters not yet retried, newest first (optionally of one run); `limit` at most `read.max_list_limit`."""
    query = select(DeadLetter).where(DeadLetter.retried_at.is_(None))
    if run_id is not None:
        query = query.where(DeadLetter.run_id == run_id)
    rows = session.execute(query.order_by(DeadLetter.id.desc()).limit(_bounded(limit)).offset(max(offset, 0))).scalars()
    return [_dead_letter_dict(letter) for letter in rows]
