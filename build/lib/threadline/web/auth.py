"""Dashboard sign-in: exchange an API token for a signed session cookie; CSRF on every form."""

from __future__ import annotations

import secrets
from typing import Annotated
from urllib.parse import quote

from fastapi import Depends, Form, HTTPException, Request
from sqlalchemy.orm import Session

from threadline.server.deps import get_db, web_session
from threadline.server.sessions import CSRF_FIELD, WebSession, csrf_matches

DbSession = Annotated[Session, Depends(get_db)]


class LoginRequired(Exception):
    """Raised by page dependencies; the app answers with a redirect to the sign-in form."""

    def __init__(self, next_path: str) -> None:
        super().__init__(next_path)
        self.next_path = next_path


def safe_next(value: str | None) -> str:
    """A local path to return to after sign-in (never another site: no scheme, no '//')."""
    if not value or not value.startswith("/") or value.startswith("//") or "\\" in value:
        return "/"
    return value


def login_url(request: Request) -> str:
    path = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return f"/login?next={quote(path, safe='')}"


def require_page(request: Request, db: DbSession) -> WebSession:
    """The signed-in session of a page request, else a redirect to sign in."""
    session = web_session(request, db)
    if session is None:
        raise LoginRequired(login_url(request))
    return session


PageSession = Annotated[WebSession, Depends(require_page)]


def require_form(request: Request, db: DbSession, csrf_token: Annotated[str, Form(max_length=200)] = "") -> WebSession:
    """A signed-in session whose form carries the session's CSRF value (403 otherwise)."""
    session = require_page(request, db)
    if not csrf_matches(session.csrf, csrf_token):
        raise HTTPException(403, detail="missing or wrong CSRF token; reload the page and try again")
    return session


FormSession = Annotated[WebSession, Depends(require_form)]


def new_login_csrf() -> str:
    return secrets.token_urlsafe(24)


__all__ = ["CSRF_FIELD", "FormSession", "LoginRequired", "PageSession", "new_login_csrf", "require_page", "safe_next"]
