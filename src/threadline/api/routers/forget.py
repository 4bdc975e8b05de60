"""POST /api/forget: erase a customer's or conversations' text everywhere, snapshots included (right to erasure)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException

from threadline.api.schemas import ForgetRequest, ForgetResult, Problem
from threadline.engine.curation import actor_of_token
from threadline.engine.forget import ForgetError, forget
from threadline.server.deps import ApiAuth, DbSession

router = APIRouter(tags=["forget"], responses={401: {"model": Problem}})


@router.post("/forget", response_model=ForgetResult, responses={404: {"model": Problem}})
def erase(body: ForgetRequest, db: DbSession, token_id: ApiAuth) -> dict:
    """Replace the text of the conversations (and every conversation of `customer`) with a marker, everywhere:
    messages, snapshots' quotes and story text quoting them, theme descriptions; delete analyses and vectors
    derived from it. Who asked and when is recorded. 404 when nothing matches (or nothing is named)."""
    try:
        result = forget(
            db,
            conversations=[(c.source, c.external_id) for c in body.conversations],
            customer=body.customer,
            actor=actor_of_token(db, token_id),
        )
    except ForgetError as exc:
        db.rollback()
        raise HTTPException(404, detail=str(exc)) from None
    db.commit()
    return result.as_dict()
