"""Dashboard sessions: a signed, HttpOnly, SameSite cookie obtained by signing in with a token.

The cookie holds the token's row id (never the token), a random session id and a per-session
CSRF value. The session id's SHA-256 is stored in `web_sessions`; signing out ends that row, so
a copied cookie stops working at once (not when it expires). The cookie is signed with a secret generated once per data directory (`THREADLINE_HOME/api-secret`,
mode 0600) so sessions survive restarts and no secret lives in the code.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from threadline.db.models import ApiToken
from threadline.db.models import WebSession as WebSessionRow

logger = logging.getLogger(__name__)

SESSION_COOKIE = "threadline_session"
LOGIN_CSRF_COOKIE = "threadline_login_csrf"
CSRF_FIELD = "csrf_token"  # form field carrying the CSRF value
CSRF_HEADER = "X-CSRF-Token"  # header carrying it for fetch() calls from the dashboard
SECRET_BYTES = 32  # bytes of randomness in the signing secret: 256 bits
SECRET_FILE = "api-secret"  # file name under THREADLINE_HOME
SESSION_ID_BYTES = 32  # bytes of randomness in a session id: 256 bits, beyond guessing


def load_or_create_secret(home: Path) -> str:
    """The signing secret under `home`, created atomically (O_EXCL, 0600) on first use."""
    home.mkdir(parents=True, exist_ok=True)
    path = home / SECRET_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        secret = path.read_text(encoding="ascii").strip()
        if len(secret) < SECRET_BYTES:
            raise RuntimeError(f"{path} is too short to be a signing secret; delete it to regenerate") from None
        return secret
    secret = secrets.token_urlsafe(SECRET_BYTES)
    with os.fdopen(fd, "w", encoding="ascii") as handle:
        handle.write(secret)
    logger.info("created a new session signing secret in %s", path)
    return secret


@dataclass(frozen=True)
class WebSession:
    """A signed-in dashboard session: which token it came from, its server-side id and its CSRF value."""

    token_id: int
    csrf: str
    sid: str

    @property
    def sid_hash(self) -> str:
        """The stored form of the session id (the id itself lives only in the cookie)."""
        return hashlib.sha256(self.sid.encode("ascii")).hexdigest()


class SessionSigner:
    """Signs and verifies session cookies and CSRF values; a session lasts `max_age_s` (`api.session_max_age_s`)."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="threadline-session")
        self.max_age_s = max_age_s

    def issue(self, token_id: int) -> tuple[str, WebSession]:
        """A new cookie value and the session it encodes."""
        session = WebSession(
            token_id=token_id, csrf=secrets.token_urlsafe(24), sid=secrets.token_urlsafe(SESSION_ID_BYTES)
        )
        return self._serializer.dumps({"tid": token_id, "csrf": session.csrf, "sid": session.sid}), session

    def read(self, cookie: str | None) -> WebSession | None:
        """The session of a cookie value, or None when absent, tampered with or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if (
            not isinstance(data, dict)
            or not isinstance(data.get("tid"), int)
            or not isinstance(data.get("csrf"), str)
            or not isinstance(data.get("sid"), str)
            or not data["sid"].isascii()
        ):
            return None  # also every cookie issued before sessions were stored server-side
        return WebSession(token_id=data["tid"], csrf=data["csrf"], sid=data["sid"])


def start_session(db: Session, session: WebSession, max_age_s: int) -> None:
    """Record a new sign-in (the caller commits)."""
    now = datetime.now(UTC)
    expires = now + timedelta(seconds=max_age_s)
    db.execute(delete(WebSessionRow).where(WebSessionRow.expires_at < now))  # expired sessions keep nothing
    db.add(WebSessionRow(sid_hash=session.sid_hash, token_id=session.token_id, expires_at=expires))
    db.flush()


def session_is_live(db: Session, session: WebSession) -> bool:
    """Whether the session was recorded, is not signed out or expired, and its token is not revoked."""
    row = db.execute(
        select(WebSessionRow.id)
        .join(ApiToken, ApiToken.id == WebSessionRow.token_id)
        .where(
            WebSessionRow.sid_hash == session.sid_hash,
            WebSessionRow.token_id == session.token_id,
            WebSessionRow.ended_at.is_(None),
            WebSessionRow.expires_at > datetime.now(UTC),
            ApiToken.revoked_at.is_(None),
        )
    ).first()
    return row is not None


def end_session(db: Session, session: WebSession) -> None:
    """Sign a session out for every copy of its cookie (the caller commits)."""
    db.execute(
        update(WebSessionRow)
        .where(WebSessionRow.sid_hash == session.sid_hash, WebSessionRow.ended_at.is_(None))
        .values(ended_at=datetime.now(UTC))
    )


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a submitted CSRF value."""
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())
