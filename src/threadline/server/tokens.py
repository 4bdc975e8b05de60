"""API tokens: created once, shown once, stored only as their SHA-256, compared in constant time.

A server process remembers tokens it has verified for `api.token_cache_ttl_s` (`TokenCache`), so a
request does not cost a database lookup; revoking a token in this process forgets them all at
once, and a revocation made elsewhere (the CLI, another server process) takes effect within
the TTL.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import ApiToken

# The token format (not settings: changing them changes what a token is). Cache and last-use timing are settings (`api`).
TOKEN_PREFIX = "tl_"  # marks a string as a Threadline token (helps secret scanners; not a secret itself)
TOKEN_BYTES = 32  # bytes of randomness: 256 bits, beyond brute force
MAX_TOKEN_CHARS = (
    200  # characters: far longer than our tokens (46), so anything longer is not one of ours; rejected before hashing
)
MAX_TOKEN_NAME_CHARS = 200  # characters: the width of api_tokens.name

_revocations = 0  # revocations made in this process; a TokenCache that sees it change forgets everything


class TokenError(ValueError):
    """A token could not be created or revoked; the message says why."""


def hash_token(token: str) -> str:
    """Hex SHA-256 of a token (the only form that is stored)."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def create_token(session: Session, name: str) -> str:
    """Store a new token under `name` and return its plain text (never retrievable again)."""
    name = name.strip()
    if not name or len(name) > MAX_TOKEN_NAME_CHARS:
        raise TokenError(f"a token name is 1 to {MAX_TOKEN_NAME_CHARS} characters")
    if session.execute(select(ApiToken.id).where(ApiToken.name == name)).scalar() is not None:
        raise TokenError(f"a token named {name!r} already exists; revoke it or choose another name")
    token = TOKEN_PREFIX + secrets.token_urlsafe(TOKEN_BYTES)
    session.add(ApiToken(name=name, token_hash=hash_token(token)))
    session.flush()
    return token


def revoke_token(session: Session, name: str) -> bool:
    """Revoke the active token named `name`; False when there is none."""
    row = session.execute(
        select(ApiToken).where(ApiToken.name == name, ApiToken.revoked_at.is_(None)).with_for_update()
    ).scalar()
    if row is None:
        return False
    row.revoked_at = datetime.now(UTC)
    _note_revocation()
    # Free the name for a replacement token while keeping the row as an audit trail.
    row.name = f"{name[: MAX_TOKEN_NAME_CHARS - 40]} (revoked {row.id})"
    return True


def list_tokens(session: Session) -> list[dict[str, Any]]:
    """Names and dates of all tokens (never their hashes)."""
    rows = session.execute(select(ApiToken).order_by(ApiToken.id)).scalars()
    return [
        {
            "name": t.name,
            "created_at": t.created_at,
            "last_used_at": t.last_used_at,
            "revoked_at": t.revoked_at,
        }
        for t in rows
    ]


def verify_token(session: Session, token: str) -> ApiToken | None:
    """The active token row for `token`, or None. Compares hashes with `hmac.compare_digest`."""
    if not token or len(token) > MAX_TOKEN_CHARS:
        return None
    digest = hash_token(token)
    row = session.execute(select(ApiToken).where(ApiToken.token_hash == digest)).scalar()
    if row is None or row.revoked_at is not None or not hmac.compare_digest(row.token_hash, digest):
        return None
    now = datetime.now(UTC)
    resolution = timedelta(seconds=get_settings().api.token_last_used_resolution_s)
    if row.last_used_at is None or now - row.last_used_at > resolution:
        row.last_used_at = now
        session.commit()
    return row


def active_token(session: Session, token_id: int) -> ApiToken | None:
    """The token row `token_id` if it is still active (sessions die with their token)."""
    row = session.get(ApiToken, token_id)
    return row if row is not None and row.revoked_at is None else None


def _note_revocation() -> None:
    """Make every TokenCache of this process forget what it verified (revocation bites at once in-process)."""
    global _revocations
    _revocations += 1


class TokenCache:
    """Tokens (by SHA-256) and token ids this process verified as active in the last `ttl_s` seconds.

    Thread-safe; holds hashes and ids, never tokens. Entries expire after `ttl_s`, so a
    token revoked by another process stops working here within that time; a revocation
    through `revoke_token` in this process empties the cache at once. Failed
    verifications are never cached.
    """

    def __init__(
        self,
        ttl_s: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int | None = None,
    ) -> None:
        limits = get_settings().api
        self.ttl_s = limits.token_cache_ttl_s if ttl_s is None else ttl_s
        self._clock = clock
        self._max_entries = max_entries or limits.max_cached_tokens
        self._lock = threading.Lock()
        self._ids_by_digest: dict[str, tuple[int, float]] = {}  # token hash -> (token id, expiry on `clock`)
        self._active_until: dict[int, float] = {}  # token id -> expiry on `clock`
        self._sessions_until: dict[str, float] = {}  # live dashboard session (sid hash) -> expiry on `clock`
        self._revocations_seen = _revocations

    def token_id(self, token: str) -> int | None:
        """The id of `token` if it was verified within the TTL, else None (the caller then asks the database)."""
        if not token or len(token) > MAX_TOKEN_CHARS:
            return None
        digest, now = hash_token(token), self._clock()
        with self._lock:
            self._forget_if_revoked()
            token_id, expires = self._ids_by_digest.get(digest, (None, 0.0))
            return token_id if expires > now else None

    def is_active(self, token_id: int) -> bool:
        """Whether token row `token_id` was seen active within the TTL (dashboard sessions)."""
        now = self._clock()
        with self._lock:
            self._forget_if_revoked()
            return self._active_until.get(token_id, 0.0) > now

    def remember(self, token_id: int, token: str | None = None) -> None:
        """Record that row `token_id` (presented as `token`, if given) was just verified as active."""
        expires = self._clock() + self.ttl_s
        with self._lock:
            self._forget_if_revoked()
            if len(self._active_until) >= self._max_entries or len(self._ids_by_digest) >= self._max_entries:
                self._forget()  # bounded memory; later requests simply verify again
            self._active_until[token_id] = expires
            if token is not None:
                self._ids_by_digest[hash_token(token)] = (token_id, expires)

    def session_live(self, sid_hash: str) -> bool:
        """Whether dashboard session `sid_hash` was seen live within the TTL."""
        now = self._clock()
        with self._lock:
            self._forget_if_revoked()
            return self._sessions_until.get(sid_hash, 0.0) > now

    def remember_session(self, sid_hash: str) -> None:
        """Record that dashboard session `sid_hash` was just verified as live."""
        expires = self._clock() + self.ttl_s
        with self._lock:
            self._forget_if_revoked()
            if len(self._sessions_until) >= self._max_entries:
                self._sessions_until.clear()
            self._sessions_until[sid_hash] = expires

    def forget_session(self, sid_hash: str) -> None:
        """A signed-out session is no longer live here (other processes notice within the TTL)."""
        with self._lock:
            self._sessions_until.pop(sid_hash, None)

    def _forget_if_revoked(self) -> None:
        """Empty the cache when a token was revoked in this process since the last look (lock held)."""
        if self._revocations_seen != _revocations:
            self._forget()
            self._revocations_seen = _revocations

    def _forget(self) -> None:
        self._ids_by_digest.clear()
        self._active_until.clear()
        self._sessions_until.clear()
