"""Starlette app that answers like Intercom's REST API 2.16, for tests and benchmarks.

Implements what the connector uses plus the basics: `/me`, `/admins`, `/tags`,
`GET /conversations`, `POST /conversations/search`, `GET /conversations/{id}`,
`GET /conversations/deleted`, `GET /contacts/{id}`, `GET /articles` (Help Center). It is region-independent (any Host),
answers 401 without a valid bearer token, rate-limits in fixed windows with Intercom's three
headers, and injects faults on demand: 429s, 500s, slow responses and conversations updated
while a client pages through search results (stateless offset cursors then shift, exactly the
failure mode Intercom documents).

`StandinStats` counts what happened so a benchmark can tell 429s the client caused (window
exhausted) from injected ones.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from threadline_testing.intercom.data import Workspace
from threadline_testing.intercom.search import SearchError, compile_query

MAX_PER_PAGE = 150  # records per page: Intercom's documented maximum
DEFAULT_PER_PAGE = 20  # records per page when the client does not ask: Intercom's default
MAX_ARTICLES_PER_PAGE = 250  # articles per /articles page: what Intercom accepts (larger is refused)
MAX_DELETED_PER_PAGE = 60  # ids per /conversations/deleted page: the 2.16 description's maximum
INTERCOM_WINDOW_SECONDS = 10  # Intercom enforces per-minute limits in 10-second windows
DEFAULT_LIMIT_PER_WINDOW = 1_666  # requests per 10 s: Intercom's 10,000/min app limit split evenly


@dataclass
class StandinConfig:
    """Behaviour of one stand-in instance (limits are per window, shares are probabilities)."""

    workspace: Workspace
    tokens: frozenset[str] = frozenset({"standin-token"})
    window_seconds: int = INTERCOM_WINDOW_SECONDS
    limit_per_window: int = DEFAULT_LIMIT_PER_WINDOW
    error_429_share: float = 0.0  # injected 429s (not caused by the window running out)
    error_500_share: float = 0.0  # injected 500s
    slow_share: float = 0.0  # responses delayed by `slow_seconds`
    slow_seconds: float = 0.5
    mutations_per_search_page: int = 0  # conversations updated after each search page served
    mutation_budget: int = 0  # total such updates over the app's lifetime
    failing_conversation_ids: frozenset[str] = frozenset()  # GET answers 500, always
    fault_seed: int = 0
    clock: Callable[[], float] = time.time


@dataclass
class StandinStats:
    """What the stand-in saw and did (read by tests and benchmarks)."""

    requests: int = 0
    by_route: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    limit_429: int = 0  # 429s because the client exceeded the window
    injected_429: int = 0
    injected_500: int = 0
    slow: int = 0
    mutations: int = 0
    unauthorized: int = 0
    first_request_at: float | None = None
    last_request_at: float | None = None
    per_window: Counter = field(default_factory=Counter)  # window index -> requests
    versions: Counter = field(default_factory=Counter)  # Intercom-Version header values seen


def _error(status: int, code: str, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    body = {"type": "error.list", "request_id": str(uuid.uuid4()), "errors": [{"code": code, "message": message}]}
    return JSONResponse(body, status_code=status, headers=headers)


def _encode_cursor(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"o": offset}).encode()).decode()


def _decode_cursor(cursor: str) -> int:
    try:
        offset = json.loads(base64.urlsafe_b64decode(cursor.encode()))["o"]
    except (ValueError, KeyError, TypeError) as exc:
        raise SearchError("invalid starting_after cursor") from exc
    if not isinstance(offset, int) or offset < 0:
        raise SearchError("invalid starting_after cursor")
    return offset


class _Limiter:
    """Fixed-window request counter with Intercom's headers."""

    def __init__(self, config: StandinConfig, stats: StandinStats) -> None:
        self.config = config
        self.stats = stats
        self.lock = threading.Lock()
        self.window = -1
        self.count = 0

    def admit(self) -> tuple[bool, dict[str, str]]:
        now = self.config.clock()
        w = self.config.window_seconds
        with self.lock:
            index = math.floor(now / w)
            if index != self.window:
                self.window, self.count = index, 0
            self.count += 1
            self.stats.per_window[index] += 1
            remaining = max(0, self.config.limit_per_window - self.count)
            headers = {
                "X-RateLimit-Limit": str(self.config.limit_per_window),
                "X-RateLimit-Remaining": str(remaining),
                "X-RateLimit-Reset": str(int((index + 1) * w)),
            }
            return self.count <= self.config.limit_per_window, headers


def create_app(config: StandinConfig) -> Starlette:
    """Build the ASGI app; `app.state.stats` and `app.state.config` expose its state."""
    ws = config.workspace
    stats = StandinStats()
    limiter = _Limiter(config, stats)
    rng = random.Random(config.fault_seed)
    rng_lock = threading.Lock()

    def base_url(request: Request) -> str:
        return str(request.base_url).rstrip("/")

    async def gate(request: Request, route: str) -> tuple[Response | None, dict[str, str]]:
        """Auth, rate limit and injected faults shared by every endpoint."""
        now = config.clock()
        stats.requests += 1
        stats.by_route[route] += 1
        stats.first_request_at = stats.first_request_at or now
        stats.last_request_at = now
        stats.versions[request.headers.get("intercom-version", "")] += 1
        auth = request.headers.get("authorization", "")
        token = auth[7:] if auth.lower().startswith("bearer ") else ""
        if token not in config.tokens:
            stats.unauthorized += 1
            return _error(401, "unauthorized", "Access Token Invalid"), {}
        admitted, headers = limiter.admit()
        if not admitted:
            stats.limit_429 += 1
            return _error(429, "rate_limit_exceeded", "Exceeded rate limit", headers), headers
        with rng_lock:
            roll = rng.random()
            slow = rng.random() < config.slow_share
        if slow:
            stats.slow += 1
            await asyncio.sleep(config.slow_seconds)
        if roll < config.error_429_share:
            stats.injected_429 += 1
            return _error(429, "rate_limit_exceeded", "Exceeded rate limit", headers), headers
        if roll < config.error_429_share + config.error_500_share:
            stats.injected_500 += 1
            return _error(500, "server_error", "Internal server error", headers), headers
        return None, headers

    def respond(body: Any, headers: dict[str, str], status: int = 200) -> JSONResponse:
        return JSONResponse(body, status_code=status, headers=headers)

    async def finish(request: Request, route: str, handler: Callable[[dict[str, str]], Any]) -> Response:
        early, headers = await gate(request, route)
        response = early if early is not None else await handler(headers)
        stats.by_status[response.status_code] += 1
        return response

    async def me(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            admin = ws.admins[0]
            return respond({**admin, "email_verified": True, "app": None, "has_inbox_seat": True}, headers)

        return await finish(request, "me", h)

    async def admins(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            items = [
                {
                    **a,
                    "job_title": "Support",
                    "away_mode_enabled": False,
                    "away_mode_reassign": False,
                    "has_inbox_seat": True,
                    "team_ids": [],
                    "avatar": None,
                }
                for a in ws.admins
            ]
            return respond({"type": "admin.list", "admins": items}, headers)

        return await finish(request, "admins", h)

    async def tags(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            return respond({"type": "list", "data": ws.tags}, headers)

        return await finish(request, "tags", h)

    def page_of(items: list[Any], offset: int, per_page: int, request: Request) -> dict[str, Any]:
        chunk = items[offset : offset + per_page]
        total_pages = max(1, math.ceil(len(items) / per_page))
        pages: dict[str, Any] = {
            "type": "pages",
            "page": offset // per_page + 1,
            "per_page": per_page,
            "total_pages": total_pages,
        }
        if offset + per_page < len(items):
            pages["next"] = {"per_page": per_page, "starting_after": _encode_cursor(offset + per_page)}
        return {
            "type": "conversation.list",
            "conversations": [ws.list_item_json(c, base_url(request)) for c in chunk],
            "total_count": len(items),
            "pages": pages,
        }

    async def search(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            try:
                body = json.loads(await request.body() or b"null")
                if not isinstance(body, dict) or "query" not in body:
                    raise SearchError("query is required")
                predicate = compile_query(body["query"])
                paging = body.get("pagination") or {}
                per_page = int(paging.get("per_page") or DEFAULT_PER_PAGE)
                if not 1 <= per_page <= MAX_PER_PAGE:
                    raise SearchError(f"per_page must be between 1 and {MAX_PER_PAGE}")
                cursor = paging.get("starting_after")
                offset = _decode_cursor(cursor) if cursor else 0
                sort = body.get("sort") or {"field": "updated_at", "order": "descending"}
                sort_field = sort.get("field", "updated_at")
                if sort_field not in ("created_at", "updated_at", "id"):
                    raise SearchError(f"cannot sort by {sort_field!r}")
                reverse = sort.get("order", "descending") == "descending"
            except SearchError as exc:
                return _error(400, exc.code, str(exc), headers)
            except (ValueError, TypeError, AttributeError):
                return _error(400, "parameter_invalid", "malformed search request", headers)
            with ws.lock:
                matches = [c for c in ws.conversations.values() if predicate(c)]
                key = (
                    (lambda c: (int(c.id), 0))
                    if sort_field == "id"
                    else (lambda c: (getattr(c, sort_field), int(c.id)))
                )
                matches.sort(key=key, reverse=reverse)
                out = page_of(matches, offset, per_page, request)
                if config.mutations_per_search_page and stats.mutations < config.mutation_budget:
                    count = min(config.mutations_per_search_page, config.mutation_budget - stats.mutations)
                    ws.touch_random(int(config.clock()), count)
                    stats.mutations += count
            return respond(out, headers)

        return await finish(request, "search", h)

    async def list_conversations(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            try:
                per_page = int(request.query_params.get("per_page", DEFAULT_PER_PAGE))
                if not 1 <= per_page <= MAX_PER_PAGE:
                    raise SearchError(f"per_page must be between 1 and {MAX_PER_PAGE}")
                cursor = request.query_params.get("starting_after")
                offset = _decode_cursor(cursor) if cursor else 0
            except (SearchError, ValueError) as exc:
                return _error(400, "parameter_invalid", str(exc), headers)
            with ws.lock:
                items = sorted(ws.conversations.values(), key=lambda c: (c.updated_at, int(c.id)), reverse=True)
                return respond(page_of(items, offset, per_page, request), headers)

        return await finish(request, "list", h)

    async def retrieve(request: Request) -> Response:
        conv_id = request.path_params["conversation_id"]

        async def h(headers: dict[str, str]) -> Response:
            if conv_id in config.failing_conversation_ids:
                return _error(500, "server_error", "Internal server error", headers)
            with ws.lock:
                conv = ws.conversations.get(conv_id)
                if conv is None:
                    return _error(404, "not_found", "Resource Not Found", headers)
                return respond(ws.conversation_json(conv, base_url(request)), headers)

        return await finish(request, "retrieve", h)

    async def deleted(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            try:
                page = int(request.query_params.get("page", 1))
                per_page = int(request.query_params.get("per_page", DEFAULT_PER_PAGE))
                order = request.query_params.get("order", "desc")
                if page < 1 or not 1 <= per_page <= MAX_DELETED_PER_PAGE or order not in ("asc", "desc"):
                    raise ValueError("bad paging")
            except ValueError:
                return _error(400, "parameter_invalid", "invalid page, per_page or order", headers)
            with ws.lock:
                items = sorted(ws.deleted.items(), key=lambda kv: (kv[1], int(kv[0])), reverse=order == "desc")
            chunk = items[(page - 1) * per_page : page * per_page]
            total_pages = max(1, math.ceil(len(items) / per_page))
            nxt = None
            if page < total_pages:
                nxt = f"{base_url(request)}/conversations/deleted?" + urlencode(
                    {"page": page + 1, "per_page": per_page, "order": order}
                )
            return respond(
                {
                    "type": "conversation.list",
                    "conversations": [
                        {"type": "conversation", "id": cid, "metrics_retained": False, "deleted_at": at}
                        for cid, at in chunk
                    ],
                    "total_count": len(items),
                    "pages": {
                        "type": "pages",
                        "page": page,
                        "per_page": per_page,
                        "total_pages": total_pages,
                        "next": nxt,
                    },
                },
                headers,
            )

        return await finish(request, "deleted", h)

    async def articles(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            try:
                page = int(request.query_params.get("page", 1))
                per_page = int(request.query_params.get("per_page", DEFAULT_PER_PAGE))
                if page < 1 or not 1 <= per_page <= MAX_ARTICLES_PER_PAGE:
                    raise ValueError("bad paging")
            except ValueError:
                return _error(400, "parameter_invalid", "invalid page or per_page", headers)
            with ws.lock:  # newest update first, as Intercom documents
                items = sorted(ws.articles.values(), key=lambda a: (a["updated_at"], int(a["id"])), reverse=True)
            chunk = items[(page - 1) * per_page : page * per_page]
            return respond(
                {
                    "type": "list",
                    "pages": {
                        "type": "pages",
                        "page": page,
                        "per_page": per_page,
                        "total_pages": max(1, math.ceil(len(items) / per_page)),
                    },
                    "total_count": len(items),
                    "data": chunk,
                },
                headers,
            )

        return await finish(request, "articles", h)

    async def contact(request: Request) -> Response:
        contact_id = request.path_params["contact_id"]

        async def h(headers: dict[str, str]) -> Response:
            if contact_id in ws.merged_into:
                link = f'<{base_url(request)}/contacts/{ws.merged_into[contact_id]}>; rel="canonical"'
                return _error(
                    410, "contact_merged", "Contact was merged into another contact", {**headers, "Link": link}
                )
            if contact_id in ws.missing_contacts or contact_id not in ws.contacts:
                return _error(404, "not_found", "User Not Found", headers)
            return respond(ws.contact_json(contact_id, base_url(request)), headers)

        return await finish(request, "contact", h)

    app = Starlette(
        routes=[
            Route("/me", me, methods=["GET"]),
            Route("/admins", admins, methods=["GET"]),
            Route("/tags", tags, methods=["GET"]),
            Route("/conversations", list_conversations, methods=["GET"]),
            Route("/conversations/search", search, methods=["POST"]),
            Route("/conversations/deleted", deleted, methods=["GET"]),
            Route("/conversations/{conversation_id}", retrieve, methods=["GET"]),
            Route("/contacts/{contact_id}", contact, methods=["GET"]),
            Route("/articles", articles, methods=["GET"]),
        ]
    )
    app.state.stats = stats
    app.state.config = config
    return app
