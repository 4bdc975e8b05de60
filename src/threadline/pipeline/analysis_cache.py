"""Lookups in the content-addressed `analyses` cache, shared by every analysis stage."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import select, tuple_
from sqlalchemy.orm import Session

from threadline.db.models import Analysis


def cached_conversation_ids(session: Session, *, stage: str, model: str, version: str, keys: Mapping[int, str]) -> set[int]:
    """Conversations of `keys` (conversation id -> input hash) that already have this analysis."""
    if not keys:
        return set()
    return set(
        session.execute(
            select(Analysis.conversation_id).where(
                Analysis.stage == stage, Analysis.model == model, Analysis.version == version,
                tuple_(Analysis.conversation_id, Analysis.input_hash).in_(list(keys.items())),
            )
        ).scalars()
    )  # fmt: skip
