"""Thin async client for the Intercom REST API endpoints the connector needs.

One `IntercomClient` (one `httpx.AsyncClient`) per sync; explicit timeouts; API version pinned
with `Intercom-Version: 2.16`; requests paced by `threadline.net.pacer.RateLimitPacer`; 429, 5xx and transport
errors retried by the shared outbound policy (`threadline.net.retry`), the pacer deciding how
long a 429 waits. The bearer token comes from an environment variable or config and never
appears in logs, exception messages or reprs.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import re
from collections.abc import Mapping
from typing import Any

import httpx

from threadline.config import get_settings
from threadline.connectors.base import ConnectorAuthError, ConnectorError
from threadline.net.pacer import MAX_RATE_LIMIT_WAIT_SECONDS, RateLimitInfo, RateLimitPacer
from threadline.net.retry import Attempt, Jitter, RetryPolicy, call_with_retries

logger = logging.getLogger(__name__)

API_VERSION = "2.16"  # Intercom-Version we were validated against
REGION_BASE_URLS: Mapping[str, str] = {
    "us": "https://api.intercom.io",
    "eu": "https://api.eu.intercom.io",
    "au": "https://api.au.intercom.io",
}
DEFAULT_TOKEN_ENV = "INTERCOM_TOKEN"
INTERCOM_WINDOW_S = 10.0  # s: Intercom counts requests in 10-second windows (the pacer learns shorter ones)
SEARCH_PAGE_SIZE = 150  # records per search page: Intercom's documented maximum
DELETED_PAGE_SIZE = 60  # ids per /conversations/deleted page: the 2.16 description's maximum for this endpoint


def intercom_retry_policy() -> RetryPolicy:
    """The retry policy of Intercom requests, from the `intercom` settings."""
    settings = get_settings().intercom
    return RetryPolicy(
        attempts=settings.max_attempts,
        base_s=settings.backoff_base_s,
        cap_s=settings.backoff_cap_s,
        jitter=Jitter.FULL,
        max_requested_wait_s=MAX_RATE_LIMIT_WAIT_SECONDS,  # the pacer's own cap: one bound on header-derived waits
    )


def default_timeout() -> httpx.Timeout:
    """Connect, read, write and pool timeouts from the `intercom` settings."""
    settings = get_settings().intercom
    return httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.write_timeout_s,
        pool=settings.pool_timeout_s,
    )


_LINK_URL = re.compile(r"<([^>]+)>")


class IntercomError(ConnectorError):
    """An Intercom call failed for good. Carries status, Intercom error code and path only."""


class IntercomAuthError(IntercomError, ConnectorAuthError):
    """401/403: the token is missing, wrong or lacks a scope; retrying cannot help."""


def resolve_token(token: str | None = None, token_env: str = DEFAULT_TOKEN_ENV) -> str:
    """The token from config, else from the environment variable; error names the variable only."""
    value = token or os.environ.get(token_env, "")
    if not value:
        raise IntercomAuthError(f"no Intercom token: set the environment variable {token_env}")
    return value


def base_url_for(region: str) -> str:
    try:
        return REGION_BASE_URLS[region.lower()]
    except KeyError:
        raise ValueError(f"unknown Intercom region {region!r}; expected one of {sorted(REGION_BASE_URLS)}") from None


def _error_code(response: httpx.Response) -> str | None:
    try:
        errors = response.json().get("errors") or []
        return str(errors[0].get("code")) if errors else None
    except (ValueError, AttributeError, IndexError):
        return None


def _json_object(response: httpx.Response) -> dict[str, Any]:
    """The response's JSON object; `IntercomError` when the body is not one (a proxy's HTML page, say)."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise IntercomError(
            f"Intercom answered {response.status_code} without a JSON object",
            status=response.status_code,
            path=response.request.url.path,
        )
    return body


class IntercomClient:
    """Async Intercom client; use as `async with IntercomClient(...) as client:`."""

    def __init__(
        self,
        token: str,
        *,
        region: str = "us",
        base_url: str | None = None,
        timeout: httpx.Timeout | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        pacer: RateLimitPacer | None = None,
        max_concurrency: int | None = None,
        rng: random.Random | None = None,
        retry_policy: RetryPolicy | None = None,
    ) -> None:
        """Timeouts, concurrency and retries default to the `intercom` settings."""
        max_concurrency = max_concurrency or get_settings().intercom.max_concurrent_requests
        self._token = token
        self.retry_policy = retry_policy or intercom_retry_policy()
        self.base_url = (base_url or base_url_for(region)).rstrip("/")
        self._timeout = timeout or default_timeout()
        self._transport = transport
        self.pacer = pacer or RateLimitPacer(window_s=INTERCOM_WINDOW_S)
        self._semaphore = asyncio.Semaphore(max_concurrency)
        self._max_concurrency = max_concurrency
        self._rng = rng or random.Random()
        self._http: httpx.AsyncClient | None = None
        self.stats: dict[str, int] = {"requests": 0, "retries": 0, "rate_limited": 0, "server_errors": 0}

    def __repr__(self) -> str:
        return f"IntercomClient(base_url={self.base_url!r}, token=<hidden>)"

    async def __aenter__(self) -> IntercomClient:
        limits = httpx.Limits(max_connections=self._max_concurrency, max_keepalive_connections=self._max_concurrency)
        self._http = httpx.AsyncClient(
            base_url=self.base_url,
            headers={
                "Authorization": f"Bearer {self._token}",
                "Intercom-Version": API_VERSION,
                "Accept": "application/json",
            },
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
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        ok_statuses: tuple[int, ...] = (),
    ) -> httpx.Response:
        """Send one paced request, retrying 429/5xx/transport errors up to `retry_policy.attempts`.

        Returns 2xx responses and any status listed in `ok_statuses` (non-retryable ones, e.g.
        404, 410) to the caller; 401/403 raise `IntercomAuthError` at once; anything else raises
        `IntercomError`.
        """
        http = self._http
        if http is None:
            raise RuntimeError("IntercomClient must be used as an async context manager")

        async def send() -> httpx.Response:
            async with self._semaphore:  # held for the request only, never while waiting to retry
                seq = await self.pacer.acquire()
                self.stats["requests"] += 1
                try:
                    response = await http.request(method, path, params=params, json=json)
                except httpx.TransportError:  # connect/read/write/pool timeout or connection error
                    self.pacer.update(seq, None)
                    raise
                self.pacer.update_headers(seq, response.headers)
                return response

        last = await call_with_retries(
            send, policy=self.retry_policy, observe=self._observe, rng=self._rng, label=f"intercom {method} {path}"
        )
        self.stats["retries"] += last.number - 1
        response = last.response
        if response is None:
            raise IntercomError(
                f"Intercom {method} {path} failed after {last.number} attempts ({last.describe})",
                status=None,
                code=None,
                path=path,
                attempts=last.number,
            )
        status = response.status_code
        if status < 300 or status in ok_statuses:
            return response
        code = _error_code(response)
        if status in (401, 403):
            raise IntercomAuthError(
                f"Intercom refused the token ({status} {code})",
                status=status,
                code=code,
                path=path,
                attempts=last.number,
            )
        if last.retry:  # 429/5xx on every attempt
            raise IntercomError(
                f"Intercom {method} {path} failed after {last.number} attempts ({last.describe})",
                status=status,
                code=code,
                path=path,
                attempts=last.number,
            )
        raise IntercomError(
            f"Intercom answered {status} ({code})", status=status, code=code, path=path, attempts=last.number
        )

    def _observe(self, attempt: Attempt[httpx.Response]) -> float | None:
        """Count 429s and 5xx; after a 429 the pacer says how long to wait (and whether everyone waits)."""
        if attempt.response is None:
            return None
        status = attempt.response.status_code
        if status == 429:
            self.stats["rate_limited"] += 1
            return self._wait_for_429(RateLimitInfo.from_headers(attempt.response.headers))
        if status >= 500:
            self.stats["server_errors"] += 1
        return None

    def _wait_for_429(self, info: RateLimitInfo) -> float:
        """Wait until the window resets (+ jitter). If the window is spent, everyone waits."""
        if info.remaining is None or info.remaining <= 0:
            return self.pacer.pause_until_reset(info)
        # Budget left but still throttled (e.g. the workspace-wide limit): only this request waits.
        return self.pacer.wait_until_reset(info)

    # ---- endpoints -------------------------------------------------------------------------
    async def me(self) -> dict[str, Any]:
        return _json_object(await self.request("GET", "/me"))

    async def search_conversations(
        self, field: str, since: int, until: int, *, starting_after: str | None = None, per_page: int = SEARCH_PAGE_SIZE
    ) -> dict[str, Any]:
        """One page of conversations with since <= field < until, ascending by field.

        The lower bound is written `(f > t OR f = t)`: inclusive, and robust to Intercom
        truncating the date in a single `>=`. Groups only contain groups, as the 2.16
        description requires (`AND[OR[>, =], AND[<]]`, two levels: Intercom's nesting limit).
        """
        body: dict[str, Any] = {
            "query": {
                "operator": "AND",
                "value": [
                    {
                        "operator": "OR",
                        "value": [
                            {"field": field, "operator": ">", "value": since},
                            {"field": field, "operator": "=", "value": since},
                        ],
                    },
                    {"operator": "AND", "value": [{"field": field, "operator": "<", "value": until}]},
                ],
            },
            "pagination": {"per_page": per_page, **({"starting_after": starting_after} if starting_after else {})},
            "sort": {"field": field, "order": "ascending"},
        }
        return _json_object(await self.request("POST", "/conversations/search", json=body))

    async def list_articles(self, page: int, per_page: int) -> dict[str, Any]:
        """One page of Help Center articles (`GET /articles`), newest update first."""
        return _json_object(await self.request("GET", "/articles", params={"page": page, "per_page": per_page}))

    async def get_conversation(self, conversation_id: str) -> dict[str, Any] | None:
        """Full conversation with parts as plain text; None if it no longer exists (404)."""
        response = await self.request(
            "GET", f"/conversations/{conversation_id}", params={"display_as": "plaintext"}, ok_statuses=(404,)
        )
        return None if response.status_code == 404 else _json_object(response)

    async def get_contact(self, contact_id: str) -> tuple[dict[str, Any] | None, list[str]]:
        """The contact, following 410 (merged) to the canonical contact; notes say what happened."""
        notes: list[str] = []
        current = contact_id
        max_hops = get_settings().intercom.max_merge_hops
        for _ in range(max_hops + 1):
            response = await self.request("GET", f"/contacts/{current}", ok_statuses=(404, 410))
            if response.status_code == 404:
                notes.append(f"contact {current} not found (404)")
                return None, notes
            if response.status_code == 410:
                target = self._canonical_contact(response.headers.get("link", ""))
                if target is None or target == current:
                    notes.append(f"contact {current} merged (410) without a usable Link header")
                    return None, notes
                notes.append(f"contact {current} merged into {target}")
                current = target
                continue
            return _json_object(response), notes
        notes.append(f"contact {contact_id}: more than {max_hops} merge hops, gave up")
        return None, notes

    @staticmethod
    def _canonical_contact(link: str) -> str | None:
        match = _LINK_URL.search(link)
        if not match:
            return None
        tail = match.group(1).rstrip("/").rsplit("/", 1)[-1]
        return tail or None

    async def deleted_conversations(
        self, page: int, *, order: str = "desc", per_page: int = DELETED_PAGE_SIZE
    ) -> dict[str, Any]:
        params = {"page": page, "per_page": per_page, "order": order}
        return _json_object(await self.request("GET", "/conversations/deleted", params=params))
