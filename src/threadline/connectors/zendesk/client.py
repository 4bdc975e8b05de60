"""Thin async client for the Zendesk Support API endpoints the connector needs.

One `ZendeskClient` (one `httpx.AsyncClient`) per sync; explicit timeouts from the `zendesk`
settings; every request paced by the account-wide budget Zendesk reports on each response
(`X-Rate-Limit`, `X-Rate-Limit-Remaining`, `ratelimit-reset`), export requests additionally
spaced to the incremental export limit (10 requests per minute); 429, 5xx and transport
errors retried by the shared outbound policy (`threadline.net.retry`), which honours
`Retry-After`. Credentials (an API token with the agent's email, or an OAuth access token)
come from environment variables and never appear in logs, exception messages or reprs:
errors name the variables instead.
"""

from __future__ import annotations

import asyncio
import base64
import logging
import os
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from threadline.config import get_settings
from threadline.connectors.base import ConnectorAuthError, ConnectorError
from threadline.net.pacer import Budget, RateLimitInfo, RateLimitPacer
from threadline.net.retry import Attempt, Jitter, RetryPolicy, call_with_retries, parse_retry_after

logger = logging.getLogger(__name__)

DEFAULT_EMAIL_ENV = "ZENDESK_EMAIL"
DEFAULT_TOKEN_ENV = "ZENDESK_API_TOKEN"
EXPORT_PATH = "/api/v2/incremental/tickets/cursor.json"
SIDELOADS = "users,organizations"  # side-loads of the export and of a shown ticket
UNKNOWN_WINDOW_S = 60.0  # s: Zendesk's budgets are per minute; assumed reset when a response gives none
RESET_RESOLUTION_S = 1.0  # s: `ratelimit-reset` is whole seconds, rounded up


def zendesk_retry_policy() -> RetryPolicy:
    """The retry policy of Zendesk requests, from the `zendesk` settings."""
    settings = get_settings().zendesk
    return RetryPolicy(
        attempts=settings.max_attempts,
        base_s=settings.backoff_base_s,
        cap_s=settings.backoff_cap_s,
        jitter=Jitter.FULL,
        max_requested_wait_s=settings.max_retry_after_s,
    )


def default_timeout() -> httpx.Timeout:
    """Connect, read, write and pool timeouts from the `zendesk` settings."""
    settings = get_settings().zendesk
    return httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.write_timeout_s,
        pool=settings.pool_timeout_s,
    )


class ZendeskError(ConnectorError):
    """A Zendesk call failed for good. Carries status, Zendesk's error code and path only."""


class ZendeskAuthError(ZendeskError, ConnectorAuthError):
    """401/403 or missing credentials; retrying cannot help."""


@dataclass(frozen=True)
class Credentials:
    """How requests authenticate, and the names of the variables they came from (for messages)."""

    authorization: str  # the Authorization header value (secret)
    source: str  # "$ZENDESK_EMAIL/$ZENDESK_API_TOKEN" or "$ZENDESK_OAUTH_TOKEN": safe to show

    def __repr__(self) -> str:
        return f"Credentials(source={self.source!r}, authorization=<hidden>)"


def api_token_credentials(email: str, token: str, source: str = "the API token") -> Credentials:
    """Basic auth as Zendesk documents it: base64("{email}/token:{api_token}")."""
    raw = f"{email}/token:{token}".encode()
    return Credentials("Basic " + base64.b64encode(raw).decode("ascii"), source)


def oauth_credentials(token: str, source: str = "the OAuth token") -> Credentials:
    return Credentials(f"Bearer {token}", source)


def resolve_credentials(
    *, email_env: str = DEFAULT_EMAIL_ENV, token_env: str = DEFAULT_TOKEN_ENV, oauth_token_env: str | None = None
) -> Credentials:
    """Credentials from the named environment variables; errors name the variables only."""
    if oauth_token_env:
        token = os.environ.get(oauth_token_env, "")
        if not token:
            raise ZendeskAuthError(f"no Zendesk OAuth token: set the environment variable {oauth_token_env}")
        return oauth_credentials(token, f"${oauth_token_env}")
    email, token = os.environ.get(email_env, ""), os.environ.get(token_env, "")
    missing = [name for name, value in ((email_env, email), (token_env, token)) if not value]
    if missing:
        raise ZendeskAuthError(f"no Zendesk credentials: set the environment variable(s) {', '.join(missing)}")
    return api_token_credentials(email, token, f"${email_env}/${token_env}")


def base_url_for(subdomain: str) -> str:
    return f"https://{subdomain}.zendesk.com"


def _error_code(response: httpx.Response) -> str | None:
    """Zendesk's `error` field (a string, or an object with `title`); None for text bodies."""
    try:
        body = response.json()
    except ValueError:
        return None
    if not isinstance(body, dict):
        return None
    error = body.get("error")
    if isinstance(error, dict):
        error = error.get("title") or error.get("message")
    return str(error)[:80] if error else None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise ZendeskError(
            f"Zendesk answered {response.status_code} without a JSON object",
            status=response.status_code,
            path=response.request.url.path,
        )
    return body


class ExportSpacer:
    """Spaces requests to one endpoint evenly: `limit` per `window_s` (the export's 10/minute)."""

    def __init__(self, limit: int, window_s: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval = window_s / limit
        self._clock = clock
        self._next = 0.0
        self._lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self._lock:
            now = self._clock()
            if self._next > now:
                await asyncio.sleep(self._next - now)
                now = self._clock()
            self._next = now + self.interval


def zendesk_budget(headers: Mapping[str, str]) -> Budget | None:
    """Zendesk's budget headers as the pacer's `Budget`; None when a response carries none.

    Zendesk gives the reset in whole seconds rounded up (`ratelimit-reset`, on Ticketing API
    responses) or not at all; without it the window is assumed to end a minute from now
    (conservative). The pacer narrows the rounding with every response.
    """
    limit = headers.get("x-rate-limit") or headers.get("ratelimit-limit")
    remaining = headers.get("x-rate-limit-remaining") or headers.get("ratelimit-remaining")
    if limit is None or remaining is None:
        return None
    try:
        limit_n, remaining_n = int(limit), int(remaining)
    except ValueError:
        return None
    try:
        reset_in = float(headers.get("ratelimit-reset") or "")
    except ValueError:
        return Budget(limit=limit_n, remaining=remaining_n, reset_in=UNKNOWN_WINDOW_S)
    return Budget(limit=limit_n, remaining=remaining_n, reset_in=reset_in, resolution_s=RESET_RESOLUTION_S)


class ZendeskClient:
    """Async Zendesk client; use as `async with ZendeskClient(...) as client:`."""

    def __init__(
        self,
        credentials: Credentials,
        *,
        subdomain: str | None = None,
        base_url: str | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: RateLimitPacer | None = None,
        export_spacer: ExportSpacer | None = None,
        max_concurrency: int | None = None,
        rng: random.Random | None = None,
        retry_policy: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """Timeouts, concurrency, retries and the export limit default to the `zendesk` settings."""
        settings = get_settings().zendesk
        if not (base_url or subdomain):
            raise ValueError("a Zendesk subdomain or base_url is required")
        max_concurrency = max_concurrency or settings.max_concurrent_requests
        self._credentials = credentials
        self.base_url = (base_url or base_url_for(subdomain or "")).rstrip("/")
        self.retry_policy = retry_policy or zendesk_retry_policy()
        self._timeout = timeout or default_timeout()
        self._transport = transport
        self._clock = clock
        self.pacer = pacer or RateLimitPacer(clock=clock, window_s=settings.window_s)
        self.export_spacer = export_spacer or ExportSpacer(
            settings.export_requests_per_minute, settings.export_window_s
        )
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._rng = rng or random.Random()
        self._http: httpx.AsyncClient | None = None
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0, "server_errors": 0}

    def __repr__(self) -> str:
        return f"ZendeskClient(base_url={self.base_url!r}, credentials=<hidden>)"

    async def __aenter__(self) -> ZendeskClient:
        limits = httpx.Limits(max_connections=self._max_concurrency, max_keepalive_connections=self._max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={"Authorization": self._credentials.authorization, "Accept": "application/json"},
            timeout=self._timeout,
            transport=self._transport,
            limits=limits,
        )
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._http is not None:
            await self._http.aclose()
            self._http = None

    async def request(
        self,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        ok_statuses: tuple[int, ...] = (),
        export: bool = False,
    ) -> httpx.Response:
        """One paced GET, retrying 429/5xx/transport errors up to `retry_policy.attempts`.

        Returns 2xx responses and any status in `ok_statuses` (e.g. 404); 401/403 raise
        `ZendeskAuthError` at once; anything else raises `ZendeskError`.
        """
        http = self._http
        if http is None:
            raise RuntimeError("ZendeskClient must be used as an async context manager")

        async def send() -> httpx.Response:
            if export:
                await self.export_spacer.acquire()
            async with self._semaphore:  # held for the request only, never while waiting to retry
                seq = await self.pacer.acquire()
                self.stats["requests"] += 1
                try:
                    response = await http.get(path, params=params)
                except httpx.TransportError:  # connect/read/write/pool timeout or connection error
                    self.pacer.update(seq, None)
                    raise
                self.pacer.update(seq, zendesk_budget(response.headers))
                return response

        last = await call_with_retries(
            send, policy=self.retry_policy, observe=self._observe, rng=self._rng, label=f"zendesk GET {path}"
        )
        self.stats["retries"] += last.number - 1
        response = last.response
        if response is None:
            raise ZendeskError(
                f"Zendesk GET {path} failed after {last.number} attempts ({last.describe})",
                path=path,
                attempts=last.number,
            )
        status = response.status_code
        if status < 300 or status in ok_statuses:
            return response
        code = _error_code(response)
        if status in (401, 403):
            what = "refused" if status == 401 else "lacks the permission for"
            raise ZendeskAuthError(
                f"Zendesk {what} the credentials from {self._credentials.source} ({status} {code}) on {path}",
                status=status,
                code=code,
                path=path,
                attempts=last.number,
            )
        if last.retry:
            raise ZendeskError(
                f"Zendesk GET {path} failed after {last.number} attempts ({last.describe})",
                status=status,
                code=code,
                path=path,
                attempts=last.number,
            )
        raise ZendeskError(
            f"Zendesk answered {status} ({code})", status=status, code=code, path=path, attempts=last.number
        )

    def _observe(self, attempt: Attempt[httpx.Response]) -> float | None:
        """Count 429s and 5xx. A 429 with the account budget spent holds every request until its
        Retry-After has passed; with budget left (the export limit, an injected 429) only this one waits."""
        if attempt.response is None:
            return None
        status = attempt.response.status_code
        if status == 429:
            self.stats["rate_limited"] += 1
            headers = attempt.response.headers
            wait = parse_retry_after(headers, now=self._clock())
            if wait is None:
                return None
            remaining = headers.get("x-rate-limit-remaining")
            if remaining is not None and remaining.strip().isdigit() and int(remaining) > 0:
                return wait  # budget left (another limit, e.g. the export's): only this request waits
            return self.pacer.pause_until_reset(RateLimitInfo(None, 0, self._clock() + wait))
        if status >= 500:
            self.stats["server_errors"] += 1
        return None

    # ---- endpoints -------------------------------------------------------------------------
    async def export_tickets(
        self, *, start_time: int | None = None, cursor: str | None = None, per_page: int | None = None
    ) -> dict[str, Any]:
        """One page of the cursor-based incremental ticket export, users and organizations side-loaded."""
        params: dict[str, Any] = {"include": SIDELOADS, "per_page": per_page or get_settings().zendesk.export_page_size}
        if cursor:
            params["cursor"] = cursor
        else:
            params["start_time"] = int(start_time or 0)
        return _json_object(await self.request(EXPORT_PATH, params=params, export=True))

    async def ticket_comments(self, ticket_id: str) -> list[dict[str, Any]] | None:
        """Every comment of a ticket, oldest first (cursor pagination); None when the ticket is gone (404)."""
        size = get_settings().zendesk.comments_page_size
        out: list[dict[str, Any]] = []
        after: str | None = None
        while True:
            params: dict[str, Any] = {"page[size]": size}
            if after:
                params["page[after]"] = after
            response = await self.request(
                f"/api/v2/tickets/{ticket_id}/comments.json", params=params, ok_statuses=(404,)
            )
            if response.status_code == 404:
                return None
            body = _json_object(response)
            out.extend(c for c in body.get("comments") or [] if isinstance(c, dict))
            meta = body.get("meta") or {}
            after = meta.get("after_cursor")
            if not meta.get("has_more") or not after:
                return out

    async def show_ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """One ticket with its users and organizations side-loaded; None when it is gone (404)."""
        response = await self.request(
            f"/api/v2/tickets/{ticket_id}.json", params={"include": SIDELOADS}, ok_statuses=(404,)
        )
        return None if response.status_code == 404 else _json_object(response)

    async def show_user(self, user_id: str) -> dict[str, Any] | None:
        response = await self.request(f"/api/v2/users/{user_id}.json", ok_statuses=(404,))
        if response.status_code == 404:
            return None
        user = _json_object(response).get("user")
        return user if isinstance(user, dict) else None
