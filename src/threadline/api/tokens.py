"""API tokens: created once, shown once, stored only as their SHA-256, compared in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.db.models import ApiToken

TOKEN_PREFIX = "tl_"  # marks a string as a Threadline token (helps secret scanners; not a secret itself)
TOKEN_BYTES = 32  # bytes of randomness: 256 bits, beyond brute force
MAX_TOKEN_CHARS = 200  # characters: anything longer is not one of ours; rejected before hashing
MAX_TOKEN_NAME_CHARS = 200  # characters: matches api_tokens.name
LAST_USED_RESOLUTION = timedelta(minutes=1)  # last_used_at is refreshed at most this often: no write per request


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
    if row.last_used_at is None or now - row.last_used_at > LAST_USED_RESOLUTION:
        row.last_used_at = now
        session.commit()
    return row


def active_token(session: Session, token_id: int) -> ApiToken | None:
    """The token row `token_id` if it is still active (sessions die with their token)."""
    row = session.get(ApiToken, token_id)
    return row if row is not None and row.revoked_at is None else None
