"""Starlette app that answers like Zendesk's Support API, for tests and benchmarks.

Zendesk publishes no machine-readable API description we could validate against, so this
stand-in is built from Zendesk's API reference. Each documented fact it relies on, with the
page it comes from:

Incremental Exports (https://developer.zendesk.com/api-reference/ticketing/ticket-management/incremental_exports/
and the guide https://developer.zendesk.com/documentation/ticketing/managing-tickets/using-the-incremental-export-api)
  F1. `GET /api/v2/incremental/tickets/cursor.json` returns the tickets that changed since
      `start_time` (Unix seconds, required on the first request); later requests pass
      `cursor` (the previous `after_cursor`) instead.
  F2. The response is `{"tickets": [...], "after_cursor", "after_url", "before_cursor",
      "before_url", "end_of_stream"}`; `end_of_stream` is true when the request returned
      every result up to the current time, false when another page follows.
  F3. Items are compared on the ticket's `generated_timestamp` (updated for every change,
      system updates included), not on `updated_at`; an export can therefore return tickets
      whose `updated_at` is earlier than `start_time`.
  F4. `start_time` must be at least one minute in the past; items created or changed within
      the minute before the request are excluded (`recent_exclusion_s`, scalable).
  F5. `per_page` sets the page size of cursor-based exports (at most 1000, the default).
  F6. Side-loading: `include=users,organizations` adds `users` and `organizations` arrays for
      the tickets of the page (last_audits is not supported on this endpoint).
  F7. Deleted tickets are exported with `status: "deleted"` (unless `exclude_deleted=true`).
  F8. "You can make up to 10 requests per minute to these endpoints"; the limiting behaves like
      the account rate limit (429 with Retry-After).

Rate limits (https://developer.zendesk.com/api-reference/introduction/rate-limits and
https://developer.zendesk.com/documentation/api-basics/best-practices/best-practices-for-avoiding-rate-limiting)
  F9. Account-wide limits per minute by plan: Team 200, Growth 400, Professional 400,
      Enterprise 700, High Volume API add-on / Enterprise Plus 2500 (default here: 700).
  F10. Every response carries `X-Rate-Limit` and `X-Rate-Limit-Remaining` (the current
      minute); Ticketing API responses also carry `ratelimit-limit`, `ratelimit-remaining`
      and `ratelimit-reset` (seconds until the window resets).
  F11. Over the limit the API answers 429 Too Many Requests with `Retry-After` (seconds);
      the body of a 429 may be `text/plain` (https://developer.zendesk.com/api-reference/introduction/requests:
      "You may get a text/plain response in case of an error").

Ticket Comments (https://developer.zendesk.com/api-reference/ticketing/tickets/ticket_comments/)
  F12. `GET /api/v2/tickets/{ticket_id}/comments` lists a ticket's comments, oldest first;
      fields include `id`, `type`, `author_id`, `body`, `html_body`, `plain_body`, `public`
      (false: a private/internal comment), `attachments`, `audit_id`, `via`, `metadata`,
      `created_at`. A ticket holds at most 5000 comments.
  F13. Cursor pagination (https://developer.zendesk.com/api-reference/introduction/pagination/):
      `page[size]` (at most 100 on most endpoints) and `page[after]`; the response has
      `meta: {has_more, after_cursor, before_cursor}` and `links: {next, prev}`.

Tickets (https://developer.zendesk.com/api-reference/ticketing/tickets/tickets/)
  F14. Ticket fields used: `id`, `url`, `subject`, `description`, `status` (new, open, pending,
      hold, solved, closed), `priority` (urgent, high, normal, low), `type` (problem, incident,
      question, task), `requester_id`, `submitter_id`, `assignee_id`, `organization_id`, `tags`,
      `custom_fields` ([{id, value}]), `satisfaction_rating` ({id, score, comment}), `via`,
      `created_at`, `updated_at` (ISO 8601, UTC: "Time stamps use UTC time and their format is
      ISO 8601", requests page). `GET /api/v2/tickets/{id}.json` shows one, with side-loads.
  F15. Merging (`POST /api/v2/tickets/{id}/merge`, "Merge Tickets into Target Ticket"): the
      source tickets are closed; a private comment is added to the source and to the target
      (by default), and the comment's `via.source.rel` is "merge".

Users and Organizations (https://developer.zendesk.com/api-reference/ticketing/users/users/ and
.../organizations/organizations/)
  F16. A user's `role` is "end-user", "agent" or "admin"; users have `organization_id`.
  F17. Organizations have `name`, `domain_names`, `tags`, `details`, `notes` and
      `organization_fields` (custom attributes such as a plan).

Authentication (https://support.zendesk.com/hc/en-us/articles/4408831452954)
  F18. API token: `Authorization: Basic base64("{email_address}/token:{api_token}")`; OAuth:
      `Authorization: Bearer {access_token}`. Unauthenticated requests answer 401 with
      `{"error": "Couldn't authenticate you"}`; an authenticated user without permission gets
      403 (incremental exports are "Allowed for: Admins").
  F19. Business-level errors are JSON (`application/json`): e.g. 404
      `{"error": "RecordNotFound", "description": "Not found"}` (requests page, 400 range).

Fault injection (not Zendesk behaviour; for tests): shares of 5xx and 429, slow responses,
tickets changing while a client pages (`mutations_per_export_page`), tickets whose comments
always fail (`failing_ticket_ids`). Rate windows scale: `window_seconds` (Zendesk: 60) with
`requests_per_window` and `export_requests_per_window`, so tests and benchmarks run the same
limits in seconds instead of minutes.
"""

from __future__ import annotations

import asyncio
import base64
import json
import math
import random
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlencode

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response
from starlette.routing import Route

from threadline_testing.zendesk.data import Account, Ticket

ZENDESK_WINDOW_SECONDS = 60  # F9/F10: limits are per minute
DEFAULT_REQUESTS_PER_WINDOW = 700  # F9: Enterprise plan
EXPORT_REQUESTS_PER_WINDOW = 10  # F8: incremental exports
MAX_EXPORT_PER_PAGE = 1000  # F5
MAX_COMMENTS_PAGE_SIZE = 100  # F13
DEFAULT_COMMENTS_PAGE_SIZE = 100  # cursor pages default to the maximum here
RECENT_EXCLUSION_SECONDS = 60  # F4


@dataclass
class StandinConfig:
    """Behaviour of one stand-in instance (limits per window, shares are probabilities)."""

    account: Account
    public_url: str = "https://acme.zendesk.com"  # the account's URL, as Zendesk writes it in `url` fields
    email: str = "admin@example.com"
    api_tokens: frozenset[str] = frozenset({"standin-token"})
    oauth_tokens: frozenset[str] = frozenset()
    forbidden_tokens: frozenset[str] = frozenset()  # authenticate, but are not admins: 403 on exports
    window_seconds: float = ZENDESK_WINDOW_SECONDS
    requests_per_window: int = DEFAULT_REQUESTS_PER_WINDOW
    export_requests_per_window: int = EXPORT_REQUESTS_PER_WINDOW
    recent_exclusion_s: int = 0  # F4 is 60 s; tests default to 0 so they need not wait a minute
    error_429_share: float = 0.0  # injected 429s (not caused by the window running out)
    error_500_share: float = 0.0  # injected 500/503s
    slow_share: float = 0.0
    slow_seconds: float = 0.5
    mutations_per_export_page: int = 0  # tickets changed after each export page served
    mutation_budget: int = 0  # total such changes over the app's lifetime
    failing_ticket_ids: frozenset[int] = frozenset()  # comments of these tickets answer 500, always
    fault_seed: int = 0
    clock: Callable[[], float] = time.time


@dataclass
class StandinStats:
    """What the stand-in saw and did (read by tests and benchmarks)."""

    requests: int = 0
    by_route: Counter = field(default_factory=Counter)
    by_status: Counter = field(default_factory=Counter)
    limit_429: int = 0  # 429s because the client exceeded a window
    export_limit_429: int = 0
    injected_429: int = 0
    injected_500: int = 0
    slow: int = 0
    mutations: int = 0
    unauthorized: int = 0
    first_request_at: float | None = None
    last_request_at: float | None = None
    per_window: Counter = field(default_factory=Counter)  # window index -> admitted requests
    export_per_window: Counter = field(default_factory=Counter)


def _json_error(
    status: int, error: str, description: str | None = None, headers: dict[str, str] | None = None
) -> Response:
    body: dict[str, Any] = {"error": error}
    if description is not None:
        body["description"] = description
    return JSONResponse(body, status_code=status, headers=headers)


def _encode(payload: dict[str, Any]) -> str:
    return base64.urlsafe_b64encode(json.dumps(payload, separators=(",", ":")).encode()).decode().rstrip("=")


def _decode(cursor: str) -> dict[str, Any]:
    padded = cursor + "=" * (-len(cursor) % 4)
    value = json.loads(base64.urlsafe_b64decode(padded.encode()))
    if not isinstance(value, dict):
        raise ValueError("cursor")
    return value


class _Window:
    """Fixed-window counter: (admitted, remaining, seconds to reset, window index)."""

    def __init__(self, seconds: float, limit: int, clock: Callable[[], float]) -> None:
        self.seconds, self.limit, self.clock = seconds, limit, clock
        self.lock = threading.Lock()
        self.index = -1
        self.count = 0

    def admit(self) -> tuple[bool, int, float, int]:
        now = self.clock()
        with self.lock:
            index = math.floor(now / self.seconds)
            if index != self.index:
                self.index, self.count = index, 0
            self.count += 1
            reset = (index + 1) * self.seconds - now
            return self.count <= self.limit, max(0, self.limit - self.count), reset, index


def create_app(config: StandinConfig) -> Starlette:
    """Build the ASGI app; `app.state.stats` and `app.state.config` expose its state."""
    account = config.account
    stats = StandinStats()
    account_window = _Window(config.window_seconds, config.requests_per_window, config.clock)
    export_window = _Window(config.window_seconds, config.export_requests_per_window, config.clock)
    rng = random.Random(config.fault_seed)
    rng_lock = threading.Lock()

    def base_url(request: Request) -> str:
        """The account's own URL (Zendesk names it in `url` fields whatever host the request used)."""
        return config.public_url.rstrip("/")

    def authenticate(request: Request) -> str | None:
        """'ok', 'forbidden', or None (F18)."""
        auth = request.headers.get("authorization", "")
        scheme, _, value = auth.partition(" ")
        if scheme.lower() == "bearer":
            token = value.strip()
            if token in config.oauth_tokens:
                return "ok"
            return "forbidden" if token in config.forbidden_tokens else None
        if scheme.lower() == "basic":
            try:
                user, _, secret = base64.b64decode(value.strip()).decode().partition(":")
            except (ValueError, UnicodeDecodeError):
                return None
            if user != f"{config.email}/token":
                return None
            if secret in config.api_tokens:
                return "ok"
            return "forbidden" if secret in config.forbidden_tokens else None
        return None

    async def gate(request: Request, route: str, *, export: bool = False) -> tuple[Response | None, dict[str, str]]:
        now = config.clock()
        stats.requests += 1
        stats.by_route[route] += 1
        stats.first_request_at = stats.first_request_at or now
        stats.last_request_at = now
        who = authenticate(request)
        if who is None:
            stats.unauthorized += 1
            return _json_error(401, "Couldn't authenticate you"), {}
        admitted, remaining, reset, index = account_window.admit()
        headers = {
            "X-Rate-Limit": str(config.requests_per_window),
            "X-Rate-Limit-Remaining": str(remaining),
            "ratelimit-limit": str(config.requests_per_window),
            "ratelimit-remaining": str(remaining),
            "ratelimit-reset": str(max(1, math.ceil(reset))),
        }
        if not admitted:
            stats.limit_429 += 1
            return _too_many(reset, headers), headers
        stats.per_window[index] += 1
        if export:
            ok, _, export_reset, export_index = export_window.admit()
            if not ok:
                stats.export_limit_429 += 1
                return _too_many(export_reset, headers), headers
            stats.export_per_window[export_index] += 1
        if who == "forbidden" and export:
            return _json_error(403, "Forbidden", "You do not have access to this page.", headers), headers
        with rng_lock:
            roll = rng.random()
            slow = rng.random() < config.slow_share
        if slow:
            stats.slow += 1
            await asyncio.sleep(config.slow_seconds)
        if roll < config.error_429_share:
            stats.injected_429 += 1
            return _too_many(1.0, headers), headers
        if roll < config.error_429_share + config.error_500_share:
            stats.injected_500 += 1
            status = 503 if roll < config.error_429_share + config.error_500_share / 2 else 500
            return _json_error(status, "InternalError", "Something went wrong", headers), headers
        return None, headers

    def _too_many(reset: float, headers: dict[str, str]) -> Response:
        # F11: 429 with Retry-After in whole seconds; the body is text/plain
        return PlainTextResponse(
            "Too Many Requests", status_code=429, headers={**headers, "Retry-After": str(max(1, math.ceil(reset)))}
        )

    async def finish(
        request: Request, route: str, handler: Callable[[dict[str, str]], Any], *, export: bool = False
    ) -> Response:
        early, headers = await gate(request, route, export=export)
        response = early if early is not None else await handler(headers)
        stats.by_status[response.status_code] += 1
        return response

    # ---- incremental ticket export (F1-F8) ----------------------------------------------------
    async def export(request: Request) -> Response:
        async def h(headers: dict[str, str]) -> Response:
            params = request.query_params
            try:
                per_page = int(params.get("per_page", MAX_EXPORT_PER_PAGE))
                if not 1 <= per_page <= MAX_EXPORT_PER_PAGE:
                    raise ValueError("per_page")
                if "cursor" in params:
                    position = _decode(params["cursor"])
                    after = (int(position["t"]), int(position["i"]))
                elif "start_time" in params:
                    start = int(params["start_time"])
                    if start > config.clock() - config.recent_exclusion_s:
                        return _json_error(
                            400, "InvalidValue", "Too recent start_time. Use a start_time older than 1 minute", headers
                        )
                    after = (start, -1)
                else:
                    return _json_error(400, "InvalidValue", "start_time or cursor is required", headers)
            except (ValueError, KeyError, TypeError):
                return _json_error(400, "InvalidValue", "Invalid cursor or per_page", headers)
            include = {p.strip() for p in params.get("include", "").split(",") if p.strip()}
            exclude_deleted = params.get("exclude_deleted") == "true"
            horizon = int(config.clock()) - config.recent_exclusion_s
            with account.lock:
                candidates = sorted(
                    (t for t in account.tickets.values() if (t.generated_timestamp, t.id) > after),
                    key=lambda t: (t.generated_timestamp, t.id),
                )
                visible = [t for t in candidates if t.generated_timestamp <= horizon]
                page = visible[:per_page]
                end_of_stream = len(visible) <= per_page
                last = (page[-1].generated_timestamp, page[-1].id) if page else after
                shown: list[Ticket] = [t for t in page if not (exclude_deleted and t.id in account.deleted)]
                body: dict[str, Any] = {"tickets": [account.ticket_json(t, base_url(request)) for t in shown]}
                users, orgs = account.sideloads(shown)
                if "users" in include:
                    body["users"] = users
                if "organizations" in include:
                    body["organizations"] = orgs
                if config.mutations_per_export_page and stats.mutations < config.mutation_budget:
                    count = min(config.mutations_per_export_page, config.mutation_budget - stats.mutations)
                    with rng_lock:
                        account.touch_random(int(config.clock()), count, rng)
                    stats.mutations += count
            after_cursor = _encode({"t": last[0], "i": last[1]})
            extra = {k: v for k, v in (("include", params.get("include")), ("per_page", params.get("per_page"))) if v}
            body.update(
                {
                    "after_cursor": after_cursor,
                    "after_url": f"{base_url(request)}/api/v2/incremental/tickets/cursor.json?"
                    + urlencode({"cursor": after_cursor, **extra}),
                    "before_cursor": None,
                    "before_url": None,
                    "end_of_stream": end_of_stream,
                }
            )
            return JSONResponse(body, headers=headers)

        return await finish(request, "export", h, export=True)

    # ---- ticket comments (F12, F13) -------------------------------------------------------------
    async def comments(request: Request) -> Response:
        raw_id = request.path_params["ticket_id"]

        async def h(headers: dict[str, str]) -> Response:
            try:
                tid = int(raw_id.removesuffix(".json"))
                size = int(request.query_params.get("page[size]", DEFAULT_COMMENTS_PAGE_SIZE))
                if not 1 <= size <= MAX_COMMENTS_PAGE_SIZE:
                    raise ValueError("page[size]")
                after_raw = request.query_params.get("page[after]")
                after = int(_decode(after_raw)["c"]) if after_raw else -1
            except (ValueError, KeyError, TypeError):
                return _json_error(400, "InvalidPaginationParameter", "page[size] or page[after] is invalid", headers)
            if tid in config.failing_ticket_ids:
                return _json_error(500, "InternalError", "Something went wrong", headers)
            with account.lock:
                ticket = account.tickets.get(tid)
                if ticket is None or tid in account.deleted:
                    return _json_error(404, "RecordNotFound", "Not found", headers)
                items = [c for c in ticket.comments if c.id > after]
                chunk = items[:size]
                has_more = len(items) > size
                out = [account.comment_json(c) for c in chunk]
            after_cursor = _encode({"c": chunk[-1].id}) if chunk else None
            before_cursor = _encode({"c": chunk[0].id}) if chunk else None
            url = f"{base_url(request)}/api/v2/tickets/{tid}/comments.json"
            return JSONResponse(
                {
                    "comments": out,
                    "meta": {"has_more": has_more, "after_cursor": after_cursor, "before_cursor": before_cursor},
                    "links": {
                        "next": f"{url}?" + urlencode({"page[size]": size, "page[after]": after_cursor})
                        if has_more
                        else None,
                        "prev": f"{url}?" + urlencode({"page[size]": size, "page[before]": before_cursor})
                        if before_cursor and after >= 0
                        else None,
                    },
                },
                headers=headers,
            )

        return await finish(request, "comments", h)

    # ---- show ticket, show user (F14, F16, F17) --------------------------------------------------
    async def show_ticket(request: Request) -> Response:
        raw_id = request.path_params["ticket_id"]

        async def h(headers: dict[str, str]) -> Response:
            try:
                tid = int(raw_id.removesuffix(".json"))
            except ValueError:
                return _json_error(404, "RecordNotFound", "Not found", headers)
            include = {p.strip() for p in request.query_params.get("include", "").split(",") if p.strip()}
            with account.lock:
                ticket = account.tickets.get(tid)
                if ticket is None or tid in account.deleted:
                    return _json_error(404, "RecordNotFound", "Not found", headers)
                body: dict[str, Any] = {"ticket": account.ticket_json(ticket, base_url(request))}
                users, orgs = account.sideloads([ticket])
            if "users" in include:
                body["users"] = users
            if "organizations" in include:
                body["organizations"] = orgs
            return JSONResponse(body, headers=headers)

        return await finish(request, "ticket", h)

    async def show_user(request: Request) -> Response:
        raw_id = request.path_params["user_id"]

        async def h(headers: dict[str, str]) -> Response:
            try:
                uid = int(raw_id.removesuffix(".json"))
            except ValueError:
                return _json_error(404, "RecordNotFound", "Not found", headers)
            with account.lock:
                user = account.users.get(uid)
            if user is None:
                return _json_error(404, "RecordNotFound", "Not found", headers)
            return JSONResponse({"user": dict(user)}, headers=headers)

        return await finish(request, "user", h)

    app = Starlette(
        routes=[
            Route("/api/v2/incremental/tickets/cursor.json", export, methods=["GET"]),
            Route("/api/v2/incremental/tickets/cursor", export, methods=["GET"]),
            Route("/api/v2/tickets/{ticket_id}/comments.json", comments, methods=["GET"]),
            Route("/api/v2/tickets/{ticket_id}/comments", comments, methods=["GET"]),
            Route("/api/v2/tickets/{ticket_id}", show_ticket, methods=["GET"]),
            Route("/api/v2/users/{user_id}", show_user, methods=["GET"]),
        ]
    )
    app.state.stats = stats
    app.state.config = config
    return app
