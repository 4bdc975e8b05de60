"""FastAPI dependencies: a database session per request and the two ways to authenticate.

Every dependency here is a plain `def`, so FastAPI runs it (and its database I/O) in the
threadpool; nothing blocks the event loop.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from sqlalchemy.orm import Session

from threadline.api.security import CSRF_HEADER, SESSION_COOKIE, WebSession, csrf_matches
from threadline.api.tokens import active_token, verify_token

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def get_db(request: Request) -> Iterator[Session]:
    """A session on the app's engine; routes commit their own writes, anything else is rolled back."""
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        session.close()


DbSession = Annotated[Session, Depends(get_db)]


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def web_session(request: Request, db: Session) -> WebSession | None:
    """The signed-in dashboard session of this request, if its cookie is valid and its token active."""
    session = request.app.state.signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None or active_token(db, session.token_id) is None:
        return None
    return session


def require_api_auth(request: Request, db: DbSession) -> int:
    """The token id behind this API request: a Bearer token, or a dashboard cookie (+ CSRF header on writes)."""
    header = request.headers.get("authorization")
    if header:
        scheme, _, credentials = header.partition(" ")
        if scheme.lower() != "bearer" or not credentials.strip():
            raise _unauthorized("use 'Authorization: Bearer <token>'")
        row = verify_token(db, credentials.strip())
        if row is None:
            raise _unauthorized("invalid or revoked token")
        return row.id
    session = web_session(request, db)
    if session is None:
        raise _unauthorized("authentication required")
    if request.method not in SAFE_METHODS and not csrf_matches(session.csrf, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    return session.token_id


ApiAuth = Annotated[int, Depends(require_api_auth)]
