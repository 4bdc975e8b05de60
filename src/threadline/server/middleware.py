"""ASGI middleware shared by the API and the dashboard: security headers on every response, a safe 500.

Pure ASGI (no `BaseHTTPMiddleware`): it wraps `send`, so streaming responses and the
exception handlers' responses get the headers too.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

from starlette.responses import Response
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

# The dashboard loads only its own script and stylesheet; nothing inline, nothing from elsewhere.
# Charts are inline SVG styled by classes; `data:` images are allowed for SVG use in CSS only.
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'; object-src 'none'"
)
SECURITY_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
    (b"x-frame-options", b"DENY"),  # older browsers that ignore frame-ancestors
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
NO_STORE = (b"cache-control", b"no-store")  # pages and API answers carry customer text: never cached
CACHEABLE_PREFIXES = ("/static/",)  # the dashboard's own script and stylesheet: no customer data


class SecurityHeaders:
    """Adds the CSP, frame, sniffing and referrer headers to every response, and `no-store` outside /static."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cacheable = str(scope.get("path", "")).startswith(CACHEABLE_PREFIXES)

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = [(k, v) for k, v in message.get("headers", []) if k.lower() != b"cache-control" or cacheable]
                headers.extend(SECURITY_HEADERS)
                if not cacheable:
                    headers.append(NO_STORE)
                message = {**message, "headers": headers}
            await send(message)

        await self.app(scope, receive, send_with_headers)


ErrorPage = Callable[[Scope, int], Response]


class ErrorBoundary:
    """Answers an unhandled exception with a 500 (`error_page`) and logs one line: exception class and route path.

    Without it Starlette re-raises to the server, which logs a full traceback; exception
    messages (a database error quoting its parameters, a query string) can carry customer
    text, which must never reach the logs. The line names where it happened (file and line)
    so it can still be found.
    """

    def __init__(self, app: ASGIApp, error_page: ErrorPage) -> None:
        self.app = app
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:  # noqa: BLE001 - the boundary: everything becomes a 500 and one safe log line
            logger.error(
                "unhandled %s answering %s %s (at %s)",
                type(exc).__name__,
                scope.get("method", "?"),
                _route_of(scope),
                _where(exc),
            )
            if started:
                raise _Silenced() from None  # headers are out: the server can only drop the connection
            await self.error_page(scope, 500)(scope, receive, send)


class _Silenced(Exception):
    """Raised after a response started: carries no message, so the server's log line holds no customer text."""


def _route_of(scope: Scope) -> str:
    """The route template (`/api/stories/{story_id}`) if routing got that far, else the path; never the query."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or scope.get("path", "?"))[:200]


def _where(exc: BaseException) -> str:
    """`file.py:123` of the innermost frame of `exc`'s traceback."""
    tb = exc.__traceback__
    if tb is None:
        return "?"
    while tb.tb_next is not None:
        tb = tb.tb_next
    return f"{Path(tb.tb_frame.f_code.co_filename).name}:{tb.tb_lineno}"


class BodyLimit:
    """Refuses request bodies over `max_bytes` with 413 before the app reads them (and before any authentication).

    A declared `Content-Length` over the limit is answered at once, without reading a byte of
    the body. A body sent without one (chunked) is counted as it streams: at the first chunk
    past the limit the 413 is sent, the app is told the client went away, and anything the
    app still sends is dropped. Memory held for a body is thus at most `max_bytes`.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, error_page: ErrorPage) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.error_page = error_page

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await self.error_page(scope, 413)(scope, receive, send)
            return
        received = 0
        refused = False
        started = False

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return  # the 413 went out; the app's own answer is dropped
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        async def counting_receive() -> Message:
            nonlocal received, refused
            if refused:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started:
                        await self.error_page(scope, 413)(scope, receive, send)
                    refused = True
                    return {"type": "http.disconnect"}
            return message

        await self.app(scope, counting_receive, guarded_send)


def _content_length(scope: Scope) -> int | None:
    """The declared body length, or None when absent or unreadable (then the body is counted as it streams)."""
    for key, value in scope.get("headers", []):
        if key == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
