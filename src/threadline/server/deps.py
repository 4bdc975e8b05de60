"""FastAPI dependencies: database access per request and the two ways to authenticate.

Nothing here blocks the event loop, and a request crosses into the threadpool as few times
as possible (each crossing costs a thread handoff under the GIL):

- `require_api_auth` is async: a token verified within `api.token_cache_ttl_s` is answered from
  the app's `TokenCache` (a hash and a dict lookup); only a miss reads the database, in a
  worker thread.
- `ReadDb` (a `Reader`) runs a whole read function in one worker thread with its own
  session, opened and closed there: list endpoints are `async def` and cross once.
- `DbSession` is the request-scoped session of the other endpoints; it connects lazily in
  the endpoint's thread and is closed in a worker thread only if it was used.
- Sessions are rationed (`Reader`) to the pool's connections, so concurrent requests queue
  for a pooled connection instead of opening and closing new ones.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import AsyncIterator, Callable
from typing import Annotated, Concatenate, ParamSpec, TypeVar

import anyio.to_thread
from anyio import CapacityLimiter
from anyio.lowlevel import RunVar
from fastapi import Depends, HTTPException, Request, status
from sqlalchemy import Engine
from sqlalchemy.orm import Session
from starlette.concurrency import run_in_threadpool

from threadline.config import get_settings
from threadline.server.sessions import CSRF_HEADER, SESSION_COOKIE, WebSession, csrf_matches, session_is_live
from threadline.server.tokens import TokenCache, verify_token

logger = logging.getLogger(__name__)

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

P = ParamSpec("P")
R = TypeVar("R")


# Concurrent token lookups per event loop: one per token per TTL needs no more;
# the pool's other connections serve requests.
TOKEN_LOOKUP_SLOTS = 1


class LoopLimiter:
    """A `CapacityLimiter` of `tokens` per event loop (a limiter belongs to one loop; tests run several)."""

    def __init__(self, tokens: int) -> None:
        self.tokens = tokens
        self._limiter: RunVar[CapacityLimiter] = RunVar(f"threadline-limiter-{id(self)}")

    def get(self) -> CapacityLimiter:
        try:
            return self._limiter.get()
        except LookupError:
            limiter = CapacityLimiter(self.tokens)
            self._limiter.set(limiter)
            return limiter


class Reader:
    """Runs read functions `fn(session, ...)` in a worker thread, each with a session of its own.

    Sessions are rationed so that they always find a pooled connection: more concurrent
    sessions than pooled connections make SQLAlchemy open and close overflow connections,
    a PostgreSQL backend start every few requests (measured: one per ~13 requests at 20
    clients). `sessions` (a `Reader` call or a `DbSession`) and `lookups` (token
    verification) together have as many slots as the pool has connections; requests beyond
    that wait in the event loop. An endpoint takes `ReadDb` or `DbSession`, never both
    (holding two slots at once could deadlock).
    """

    def __init__(self, engine: Engine, pool_size: int | None = None) -> None:
        self.engine = engine
        size = pool_size or _pool_size(engine)
        self.lookups = LoopLimiter(TOKEN_LOOKUP_SLOTS)
        self.sessions = LoopLimiter(max(1, size - TOKEN_LOOKUP_SLOTS))

    async def __call__(self, fn: Callable[Concatenate[Session, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """`fn(session, *args, **kwargs)` in a worker thread; the session is closed before this returns."""
        call = functools.partial(self.in_session, fn, *args, **kwargs)
        return await anyio.to_thread.run_sync(call, limiter=self.sessions.get())

    def in_session(self, fn: Callable[Concatenate[Session, P], R], /, *args: P.args, **kwargs: P.kwargs) -> R:
        """`fn(session, ...)` with a session opened and closed here, in the calling thread."""
        with Session(self.engine, expire_on_commit=False) as session:
            return fn(session, *args, **kwargs)


def _pool_size(engine: Engine) -> int:
    size = getattr(engine.pool, "size", None)
    return size() if callable(size) else get_settings().database.pool_size


async def get_reader(request: Request) -> Reader:
    """The app's `Reader` (async: no threadpool crossing to hand it out)."""
    return request.app.state.reader


ReadDb = Annotated[Reader, Depends(get_reader)]


async def get_db(request: Request) -> AsyncIterator[Session]:
    """A session on the app's engine, holding one of the Reader's session slots; routes commit their own writes.

    Anything not committed is rolled back. Creating a session does no I/O (it connects on
    first use, in the endpoint's thread); closing one that was used rolls back and returns
    its connection, so that happens in a worker thread.
    """
    limiter = request.app.state.reader.sessions.get()
    slot = object()  # the borrower: a token of its own, not the request's task
    await limiter.acquire_on_behalf_of(slot)
    session = Session(request.app.state.engine, expire_on_commit=False)
    try:
        yield session
    finally:
        try:
            if session.in_transaction():
                await run_in_threadpool(session.close)
            else:
                session.close()
        finally:
            limiter.release_on_behalf_of(slot)


DbSession = Annotated[Session, Depends(get_db)]


async def _bearer_token_id(request: Request, token: str) -> int | None:
    """The id of the active token `token`: from the cache, else from the database (then cached)."""
    cache: TokenCache = request.app.state.token_cache
    reader: Reader = request.app.state.reader
    token_id = cache.token_id(token)
    if token_id is not None:
        return token_id
    async with reader.lookups.get():
        token_id = cache.token_id(token)  # verified by a request this one waited behind
        if token_id is None:
            row_id = await run_in_threadpool(reader.in_session, _verified_id, token)
            if row_id is not None:
                cache.remember(row_id, token)
            token_id = row_id
    return token_id


def _verified_id(session: Session, token: str) -> int | None:
    """The id of the active token `token` (refreshing its last use), or None."""
    row = verify_token(session, token)
    return None if row is None else row.id


async def _session_live(request: Request, session: WebSession) -> bool:
    """Whether the dashboard session is live (not signed out, its token active): from the cache, else the database."""
    cache: TokenCache = request.app.state.token_cache
    reader: Reader = request.app.state.reader
    if cache.session_live(session.sid_hash):
        return True
    async with reader.lookups.get():
        if not cache.session_live(session.sid_hash):
            if not await run_in_threadpool(reader.in_session, session_is_live, session):
                return False
            cache.remember_session(session.sid_hash)
    return True


def _unauthorized(detail: str) -> HTTPException:
    return HTTPException(status.HTTP_401_UNAUTHORIZED, detail=detail, headers={"WWW-Authenticate": "Bearer"})


def web_session(request: Request, db: Session) -> WebSession | None:
    """The signed-in dashboard session of this request, if its cookie is valid, not signed out, and its token active."""
    session = request.app.state.signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None:
        return None
    cache: TokenCache = request.app.state.token_cache
    if not cache.session_live(session.sid_hash):
        if not session_is_live(db, session):
            return None
        cache.remember_session(session.sid_hash)
    return session


def client_of(request: Request) -> str:
    """The address failed authentications are counted against (the peer: proxy headers are not trusted)."""
    return request.client.host if request.client else "unknown"


def refuse_if_throttled(request: Request) -> None:
    """429 with `Retry-After` when this client has used up its failed authentications (checked before any work)."""
    wait = request.app.state.auth_throttle.retry_after(client_of(request))
    if wait is not None:
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail="too many failed authentications from this address; wait and try again",
            headers={"Retry-After": str(wait)},
        )


def auth_failed(request: Request, detail: str) -> HTTPException:
    """Count a failed authentication against the client and return the 401 to raise."""
    request.app.state.auth_throttle.failed(client_of(request))
    return _unauthorized(detail)


async def require_api_auth(request: Request) -> int:
    """The token id behind this API request: a Bearer token, or a dashboard cookie (+ CSRF header on writes).

    A client that failed too often is refused with 429 before its credentials are looked at.
    """
    refuse_if_throttled(request)
    header = request.headers.get("authorization")
    if header:
        scheme, _, credentials = header.partition(" ")
        token = credentials.strip()
        if scheme.lower() != "bearer" or not token:
            raise auth_failed(request, "use 'Authorization: Bearer <token>'")
        token_id = await _bearer_token_id(request, token)
        if token_id is None:
            raise auth_failed(request, "invalid or revoked token")
        return token_id
    session = request.app.state.signer.read(request.cookies.get(SESSION_COOKIE))
    if session is None or not await _session_live(request, session):
        raise auth_failed(request, "authentication required")
    if request.method not in SAFE_METHODS and not csrf_matches(session.csrf, request.headers.get(CSRF_HEADER)):
        raise HTTPException(status.HTTP_403_FORBIDDEN, detail="missing or wrong CSRF token")
    return session.token_id


ApiAuth = Annotated[int, Depends(require_api_auth)]
