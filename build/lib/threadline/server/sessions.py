"""Dashboard sessions: a signed, HttpOnly, SameSite cookie obtained by signing in with a token.

The cookie holds the token's row id (never the token) and a per-session CSRF value; it is
signed with a secret generated once per data directory (`THREADLINE_HOME/api-secret`,
mode 0600) so sessions survive restarts and no secret lives in the code.
"""

from __future__ import annotations

import hmac
import logging
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from itsdangerous import BadSignature, URLSafeTimedSerializer

logger = logging.getLogger(__name__)

SESSION_COOKIE = "threadline_session"
LOGIN_CSRF_COOKIE = "threadline_login_csrf"
CSRF_FIELD = "csrf_token"  # form field carrying the CSRF value
CSRF_HEADER = "X-CSRF-Token"  # header carrying it for fetch() calls from the dashboard
SECRET_BYTES = 32  # bytes of randomness in the signing secret: 256 bits
SECRET_FILE = "api-secret"  # file name under THREADLINE_HOME


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
    """A signed-in dashboard session: which token it came from and its CSRF value."""

    token_id: int
    csrf: str


class SessionSigner:
    """Signs and verifies session cookies and CSRF values; a session lasts `max_age_s` (`api.session_max_age_s`)."""

    def __init__(self, secret: str, max_age_s: int) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="threadline-session")
        self.max_age_s = max_age_s

    def issue(self, token_id: int) -> tuple[str, WebSession]:
        """A new cookie value and the session it encodes."""
        session = WebSession(token_id=token_id, csrf=secrets.token_urlsafe(24))
        return self._serializer.dumps({"tid": token_id, "csrf": session.csrf}), session

    def read(self, cookie: str | None) -> WebSession | None:
        """The session of a cookie value, or None when absent, tampered with or expired."""
        if not cookie:
            return None
        try:
            data = self._serializer.loads(cookie, max_age=self.max_age_s)
        except BadSignature:
            return None
        if not isinstance(data, dict) or not isinstance(data.get("tid"), int) or not isinstance(data.get("csrf"), str):
            return None
        return WebSession(token_id=data["tid"], csrf=data["csrf"])


def csrf_matches(expected: str, given: str | None) -> bool:
    """Constant-time comparison of a submitted CSRF value."""
    return bool(given) and hmac.compare_digest(expected.encode(), str(given).encode())
