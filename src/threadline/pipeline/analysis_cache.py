"""Lookups in the content-addressed `analyses` cache, shared by every analysis stage."""

from __future__ import annotations

from collections.abc import Mapping

from sqlalchemy import text
from sqlalchemy.orm import Session

# Keys are passed as two arrays: a statement of constant size however large the batch.
_CACHED_SQL = text(
    """
    SELECT a.conversation_id FROM analyses a
      JOIN unnest(CAST(:ids AS bigint[]), CAST(:hashes AS text[])) AS k(conversation_id, input_hash)
        ON a.conversation_id = k.conversation_id AND a.input_hash = k.input_hash
     WHERE a.stage = :stage AND a.model = :model AND a.version = :version
    """
)


def cached_conversation_ids(session: Session, *, stage: str, model: str, version: str, keys: Mapping[int, str]) -> set[int]:
    """Conversations of `keys` (conversation id -> input hash) that already have this analysis."""
    if not keys:
        return set()
    params = {"ids": list(keys), "hashes": list(keys.values()), "stage": stage, "model": model, "version": version}
    return set(session.execute(_CACHED_SQL, params).scalars())
