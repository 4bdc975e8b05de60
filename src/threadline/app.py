"""The FastAPI application: JSON API under /api, dashboard pages at /, /health open to all."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import Depends, FastAPI
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import Engine

from threadline.api.routers import (
    conversations,
    dead_letters,
    documentation,
    forget,
    health,
    knowledge,
    runs,
    schedules,
    sources,
    stories,
    themes,
)
from threadline.config import Settings, get_settings
from threadline.db.engine import get_engine
from threadline.server.deps import ApiAuth, Reader
from threadline.server.middleware import BodyLimit, ErrorBoundary, SecurityHeaders
from threadline.server.params import storable_query
from threadline.server.sessions import SessionSigner, load_or_create_secret
from threadline.server.throttle import AuthThrottle
from threadline.server.tokens import TokenCache
from threadline.web import routes as web_routes

logger = logging.getLogger(__name__)

WEB_DIR = Path(__file__).resolve().parent / "web"


def create_app(settings: Settings | None = None, *, engine: Engine | None = None) -> FastAPI:
    """Build the app for `settings` (default: the environment's), on `engine` if given.

    The session-signing secret lives in `settings.home`; the engine defaults to the
    migrated process-wide engine of those settings.
    """
    settings = settings or get_settings()
    if engine is None:
        engine = get_engine(settings)
    app = FastAPI(
        title="Threadline API",
        version="1",
        summary="Evidence-backed backlog stories from support conversations.",
        description="All endpoints except /health need `Authorization: Bearer <token>` "
        "(create one with `threadline tokens create NAME`).",
        # The schema is served below behind auth; no Swagger/ReDoc pages (they load scripts from a CDN).
        openapi_url=None,
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(storable_query)],  # a NUL in any query parameter is a 422, never a database error
    )
    app.state.engine = engine
    app.state.settings = settings
    app.state.signer = SessionSigner(load_or_create_secret(settings.home), settings.api.session_max_age_s)
    app.state.reader = Reader(engine)  # list reads: one worker thread and one pooled connection per request
    # Verified tokens, trusted for `api.token_cache_ttl_s` without a lookup.
    app.state.token_cache = TokenCache(settings.api.token_cache_ttl_s, max_entries=settings.api.max_cached_tokens)
    app.state.auth_throttle = AuthThrottle(
        settings.api.auth_failure_burst, settings.api.auth_failures_per_minute, settings.api.max_throttled_clients
    )

    @app.get("/openapi.json", include_in_schema=False)
    def openapi_schema(_: ApiAuth) -> JSONResponse:
        """The OpenAPI schema of the API (authenticated like every other endpoint but /health)."""
        return JSONResponse(app.openapi())

    app.include_router(health.router)
    for module in (
        runs,
        conversations,
        themes,
        stories,
        documentation,
        dead_letters,
        sources,
        knowledge,
        forget,
        schedules,
    ):
        app.include_router(module.router, prefix="/api")
    app.mount("/static", StaticFiles(directory=WEB_DIR / "static"), name="static")
    web_routes.install(app)
    # Added innermost first: security headers on every answer (errors included), then bodies
    # refused by size before anything reads them, then the 500 boundary around the app.
    app.add_middleware(ErrorBoundary, error_page=web_routes.error_page)
    app.add_middleware(BodyLimit, max_bytes=settings.api.max_body_bytes, error_page=web_routes.error_page)
    app.add_middleware(SecurityHeaders)
    return app
