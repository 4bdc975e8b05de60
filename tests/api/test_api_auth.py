"""Authentication: only /health is open; tokens are hashed, revocable, and sent as Bearer."""

from __future__ import annotations

import hashlib

from sqlalchemy import select, update

from threadline.config import ApiSettings
from threadline.db.engine import session_scope
from threadline.db.models import ApiToken
from threadline.server.tokens import TokenCache, create_token, revoke_token

PROTECTED = [
    "/openapi.json",
    "/api/runs",
    "/api/conversations",
    "/api/themes",
    "/api/stories",
    "/api/dead-letters",
    "/api/sources",
    "/api/overview",
    "/api/stories/1",
    "/api/conversations/1",
    "/api/themes/1/trend",
]


def test_health_is_open_and_checks_the_database(client):
    response = client.get("/health")
    assert response.status_code == 200 and response.json() == {"status": "ok", "database": "ok"}


def test_everything_else_needs_a_token(client, app):
    for path in PROTECTED:
        response = client.get(path)
        assert response.status_code == 401, path
        assert response.headers["www-authenticate"] == "Bearer"
    assert client.get("/api/stories", headers={"Authorization": "Bearer tl_wrong"}).status_code == 401
    assert client.get("/api/stories", headers={"Authorization": "Basic abc"}).status_code == 401
    assert client.patch("/api/stories/1", json={"status": "accepted"}).status_code == 401
    assert client.get("/docs").status_code == 404 and client.get("/redoc").status_code == 404  # no CDN-backed pages
    # Pages redirect to the sign-in form instead.
    page = client.get("/stories")
    assert page.status_code == 303 and page.headers["location"].startswith("/login?next=")


def test_only_the_hash_is_stored_and_revocation_is_immediate(authed, api_engine, token):
    with session_scope(api_engine) as session:
        row = session.execute(select(ApiToken).where(ApiToken.name == "tests")).scalar_one()
        assert row.token_hash == hashlib.sha256(token.encode()).hexdigest()
        assert token not in (row.token_hash, row.name)
    assert authed.get("/api/stories").status_code == 200
    with session_scope(api_engine) as session:
        assert revoke_token(session, "tests") is True
        assert revoke_token(session, "tests") is False
    assert authed.get("/api/stories").status_code == 401
    with session_scope(api_engine) as session:  # the name can be reused; the old token stays dead
        fresh = create_token(session, "tests")
    assert fresh != token
    assert authed.get("/api/stories", headers={"Authorization": f"Bearer {fresh}"}).status_code == 200


class FakeClock:
    """Monotonic seconds that only move when a test says so."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_revocation_from_another_process_bites_within_the_ttl(app, authed, client, api_engine, token):
    """Verified tokens are cached for `api.token_cache_ttl_s`; a revocation this process does not see ends at the TTL."""
    ttl_s = ApiSettings().token_cache_ttl_s
    clock = FakeClock()
    app.state.token_cache = TokenCache(clock=clock)
    _sign_in(client, token, "/")
    assert authed.get("/api/stories").status_code == 200
    assert client.get("/api/stories").status_code == 200  # the dashboard cookie, through the same cache
    with session_scope(api_engine) as session:  # what `threadline tokens revoke` in another process does to the row
        session.execute(update(ApiToken).where(ApiToken.name == "tests").values(revoked_at=ApiToken.created_at))
    clock.now += ttl_s / 2
    assert authed.get("/api/stories").status_code == 200  # still trusted: the bounded staleness of the cache
    clock.now += ttl_s / 2 + 0.001
    assert authed.get("/api/stories").status_code == 401
    assert client.get("/api/stories").status_code == 401
    assert client.get("/").status_code == 303  # dashboard pages sign out too


def test_token_cache_holds_no_tokens_and_forgets_failures(token):
    cache = TokenCache(clock=FakeClock())
    assert cache.token_id(token) is None
    cache.remember(7, token)
    assert cache.token_id(token) == 7 and cache.is_active(7)
    assert token not in repr(vars(cache))  # hashes and ids only
    assert cache.token_id(token + "x") is None and cache.token_id("") is None


def _sign_in(client, token: str, next_path: str = "/stories") -> None:
    form = client.get(f"/login?next={next_path}")
    assert form.status_code == 200
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"token": token, "csrf_token": csrf, "next": next_path})
    assert response.status_code == 303 and response.headers["location"] == next_path


def test_dashboard_session_cookie_and_csrf(client, token):
    form = client.get("/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    # A wrong token is refused; a missing login CSRF value is rejected outright.
    assert (
        client.post("/login", data={"token": "tl_nope", "csrf_token": csrf}).headers["location"].startswith("/login?")
    )
    assert client.post("/login", data={"token": token, "csrf_token": "forged"}).status_code == 403

    _sign_in(client, token)
    cookie = next(c for c in client.cookies.jar if c.name == "threadline_session")
    assert token not in cookie.value
    page = client.get("/stories")
    assert page.status_code == 200 and "Stories" in page.text
    story_id = int(page.text.split('href="/stories/')[1].split('"')[0].split("?")[0])  # /stories/ID?run_id=R

    # The cookie authenticates API reads, but writes need the CSRF header as well.
    assert client.get("/api/stories").status_code == 200
    assert client.patch(f"/api/stories/{story_id}", json={"status": "accepted"}).status_code == 403
    # Forms without the session's CSRF value are refused.
    assert client.post(f"/stories/{story_id}/status", data={"status": "accepted"}).status_code == 403
    assert (
        client.post(f"/stories/{story_id}/status", data={"status": "accepted", "csrf_token": "x" * 32}).status_code
        == 403
    )
    story_page = client.get(f"/stories/{story_id}")
    session_csrf = story_page.text.split('name="csrf_token" value="')[1].split('"')[0]
    done = client.post(f"/stories/{story_id}/status", data={"status": "accepted", "csrf_token": session_csrf})
    assert done.status_code == 303
    assert client.get(f"/api/stories/{story_id}").json()["status"] == "accepted"
    assert (
        client.patch(
            f"/api/stories/{story_id}", json={"status": "rejected"}, headers={"X-CSRF-Token": session_csrf}
        ).json()["status"]
        == "rejected"
    )


def test_session_cookie_attributes_and_tampering(client, token):
    form = client.get("/login")
    csrf = form.text.split('name="csrf_token" value="')[1].split('"')[0]
    response = client.post("/login", data={"token": token, "csrf_token": csrf, "next": "//evil.example/x"})
    assert response.headers["location"] == "/"  # never an open redirect
    header = response.headers["set-cookie"].lower()
    assert "threadline_session=" in header and "httponly" in header and "samesite=lax" in header
    tampered = client.cookies.get("threadline_session")[:-2] + "xx"
    client.cookies.clear()
    client.cookies.set("threadline_session", tampered)
    assert client.get("/api/stories").status_code == 401


def test_session_dies_with_its_token(client, token, api_engine):
    _sign_in(client, token, "/")
    assert client.get("/").status_code == 200
    with session_scope(api_engine) as session:
        revoke_token(session, "tests")
    assert client.get("/").status_code == 303
