"""The content-addressed `analyses` cache, shared by every analysis stage: lookups, writes, latest results."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import BigInteger, ColumnElement, any_, cast, select, text
from sqlalchemy.dialects.postgresql import ARRAY, distinct_on
from sqlalchemy.orm import Session

from threadline.db.models import Analysis, RunConversation

# Ids are passed as one array (a statement of constant size however large the batch) and
# probed through the unique index; the hash is compared here. Joining an unnest() of
# (id, hash) pairs instead lets the planner, which expects one row from three equality
# filters, choose a sequential scan per batch: quadratic in the table's size.
_CACHED_SQL = text(
    """
    SELECT a.conversation_id, a.input_hash FROM analyses a
     WHERE a.conversation_id = ANY(CAST(:ids AS bigint[]))
       AND a.stage = :stage AND a.model = :model AND a.version = :version
    """
)
# One statement per batch, whatever its size: the rows travel as one array per column.
_STORE_SQL = text(
    """
    INSERT INTO analyses (conversation_id, stage, input_hash, model, version, output, input_tokens, output_tokens)
    SELECT r.conversation_id, r.stage, r.input_hash, r.model, r.version, CAST(r.output AS jsonb), r.input_tokens, r.output_tokens
      FROM unnest(CAST(:ids AS bigint[]), CAST(:stages AS text[]), CAST(:hashes AS text[]), CAST(:models AS text[]),
                  CAST(:versions AS text[]), CAST(:outputs AS text[]), CAST(:input_tokens AS int[]),
                  CAST(:output_tokens AS int[]))
           AS r(conversation_id, stage, input_hash, model, version, output, input_tokens, output_tokens)
    ON CONFLICT (conversation_id, stage, input_hash, model, version) DO NOTHING
    """
)


def _any_id(ids: Iterable[int]) -> ColumnElement[Any]:
    """`= ANY(array)` operand of conversation ids: one bound array, not one parameter per id.

    An IN list of 1,000 ids is compiled into 1,000 parameters per statement (milliseconds of
    SQL compilation and parameter processing per batch, every batch); the array is one value.
    """
    return any_(cast([int(i) for i in ids], ARRAY(BigInteger)))


def cached_conversation_ids(
    session: Session, *, stage: str, model: str, version: str, keys: Mapping[int, str]
) -> set[int]:
    """Conversations of `keys` (conversation id -> input hash) that already have this analysis."""
    if not keys:
        return set()
    params = {"ids": list(keys), "stage": stage, "model": model, "version": version}
    return {cid for cid, digest in session.execute(_CACHED_SQL, params) if keys.get(cid) == digest}


def store_analyses(session: Session, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert analysis rows (the `analyses` columns by name; token counts default to 0).

    Upsert semantics: a row whose key (conversation, stage, input hash, model, version)
    is already stored is left as it is, so storing a batch twice stores it once, and a
    cached result is never overwritten by a later computation of the same input.
    """
    if not rows:
        return
    session.execute(
        _STORE_SQL,
        {
            "ids": [int(r["conversation_id"]) for r in rows],
            "stages": [r["stage"] for r in rows],
            "hashes": [r["input_hash"] for r in rows],
            "models": [r["model"] for r in rows],
            "versions": [r["version"] for r in rows],
            "outputs": [json.dumps(r["output"]) for r in rows],
            "input_tokens": [int(r.get("input_tokens", 0)) for r in rows],
            "output_tokens": [int(r.get("output_tokens", 0)) for r in rows],
        },
    )


def latest_outputs(session: Session, run_id: int, stage: str, key: str) -> dict[int, Any]:
    """`output[key]` of the newest `stage` analysis of each member of the run (any model or version)."""
    rows = session.execute(
        select(Analysis.conversation_id, Analysis.output[key].astext)
        .join(RunConversation, RunConversation.conversation_id == Analysis.conversation_id)
        .where(RunConversation.run_id == run_id, Analysis.stage == stage)
        .order_by(Analysis.conversation_id, Analysis.created_at.desc(), Analysis.id.desc())
        .ext(distinct_on(Analysis.conversation_id))
    )
    return {cid: value for cid, value in rows}


def outputs_of(session: Session, conversation_ids: Sequence[int], stage: str) -> dict[int, dict[str, Any]]:
    """The newest `stage` output of each given conversation that has one (any model or version)."""
    if not conversation_ids:
        return {}
    rows = session.execute(
        select(Analysis.conversation_id, Analysis.output)
        .where(Analysis.conversation_id == _any_id(conversation_ids), Analysis.stage == stage)
        .order_by(Analysis.conversation_id, Analysis.created_at.desc(), Analysis.id.desc())
        .ext(distinct_on(Analysis.conversation_id))
    )
    return {cid: output for cid, output in rows}


def cached_outputs(
    session: Session, *, stage: str, model: str, version: str, keys: Mapping[int, str]
) -> dict[int, dict[str, Any]]:
    """Stored outputs of `keys` (conversation id -> input hash) for exactly this analysis key."""
    if not keys:
        return {}
    rows = session.execute(
        select(Analysis.conversation_id, Analysis.input_hash, Analysis.output).where(
            Analysis.conversation_id == _any_id(keys),
            Analysis.stage == stage,
            Analysis.model == model,
            Analysis.version == version,
        )
    )
    return {cid: output for cid, digest, output in rows if keys.get(cid) == digest}
