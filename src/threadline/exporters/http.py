"""What the three tracker clients share: timeouts, the retry policy, one request helper, error mapping.

Every request goes through `request()`: the shared retry policy (`threadline.net.retry`)
with the `trackers` settings, honouring Retry-After and the tracker's rate-limit headers
(GitHub's `x-ratelimit-*` through the policy itself, others through an `observe` hook that
reads their own headers). Creating requests are not idempotent, so they retry only answers
that say nothing was done (429 and rate-limit 403s): a 5xx or a lost connection after a
create might have created the item, and retrying it blind could duplicate it. The export
service heals that case by finding the item by its marker on the next attempt.

Errors become `TrackerError`s with one line: the operation and the HTTP status, plus field
names for validation errors, never a token, a body or customer text.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import httpx

from threadline.config import get_settings
from threadline.exporters.base import TrackerAuthError, TrackerError, TrackerNotFound, TrackerValidationError
from threadline.net.pacer import RateLimitPacer
from threadline.net.retry import SERVER_ERRORS, Attempt, RetryPolicy, call_with_retries

logger = logging.getLogger(__name__)

MAX_FIELDS_NAMED = 5  # field names listed in a validation error: enough to act on, still one line


@dataclass(frozen=True)
class NoBlindRetryPolicy(RetryPolicy):
    """The policy for creating requests: retries rate limits only, never a 5xx (the create may have happened)."""

    def retryable(self, status: int, headers: Mapping[str, str]) -> bool:
        if status in SERVER_ERRORS:
            return False
        return super().retryable(status, headers)


def retry_policy(*, forbidden_may_be_rate_limit: bool = False, creates: bool = False) -> RetryPolicy:
    """The shared retry policy with the `trackers` settings (GitHub: 403 may be a rate limit)."""
    settings = get_settings().trackers
    kind = NoBlindRetryPolicy if creates else RetryPolicy
    return kind(
        attempts=settings.max_attempts,
        base_s=settings.backoff_base_s,
        cap_s=settings.backoff_cap_s,
        max_requested_wait_s=settings.max_retry_after_s,
        forbidden_may_be_rate_limit=forbidden_may_be_rate_limit,
    )


def timeouts() -> httpx.Timeout:
    """Connect, read, write and pool timeouts from the `trackers` settings."""
    settings = get_settings().trackers
    return httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.write_timeout_s,
        pool=settings.pool_timeout_s,
    )


def new_client(base_url: str, headers: Mapping[str, str], auth: httpx.Auth | None = None) -> httpx.AsyncClient:
    """One job's HTTP client for one tracker (closed by the caller's `async with`)."""
    return httpx.AsyncClient(base_url=base_url.rstrip("/"), headers=dict(headers), auth=auth, timeout=timeouts())


def field_names(names: Iterable[Any]) -> str:
    """Up to `MAX_FIELDS_NAMED` field names, comma-separated (names only: values may be customer text)."""
    cleaned = [str(name)[:60] for name in names if isinstance(name, str | int)]
    shown = ", ".join(cleaned[:MAX_FIELDS_NAMED])
    return shown + (", ..." if len(cleaned) > MAX_FIELDS_NAMED else "")


def raise_for(response: httpx.Response, operation: str, *, fields: Callable[[Any], str] | None = None) -> None:
    """Turn an error answer into the matching one-line `TrackerError` (2xx and 3xx pass)."""
    status = response.status_code
    if status < 400:
        return
    if status == 401:
        raise TrackerAuthError(f"{operation}: the token was refused (HTTP 401)")
    if status == 403:
        raise TrackerAuthError(f"{operation}: the token lacks permission (HTTP 403)")
    if status == 404:
        raise TrackerNotFound(f"{operation}: not found (HTTP 404)")
    if status in (400, 410, 422):
        named = ""
        if fields is not None:
            try:
                named = fields(response.json())
            except ValueError:
                named = ""
        suffix = f", fields: {named}" if named else ""
        raise TrackerValidationError(f"{operation}: refused as invalid (HTTP {status}{suffix})")
    raise TrackerError(f"{operation}: HTTP {status}")


async def request(
    client: httpx.AsyncClient,
    method: str,
    url: str,
    *,
    operation: str,
    policy: RetryPolicy,
    observe: Callable[[Attempt[httpx.Response]], float | None] | None = None,
    pacer: RateLimitPacer | None = None,
    **kwargs: Any,
) -> httpx.Response:
    """One request with the policy's retries; the final response whatever its status (transport failure raises).

    `pacer`, when given, paces every attempt (e.g. GitHub's secondary limit on creations).
    `operation` names the call in logs and errors ("create issue"): never a secret or customer text.
    """

    async def send() -> httpx.Response:
        if pacer is None:
            return await client.request(method, url, **kwargs)
        seq = await pacer.acquire()  # every attempt counts against the tracker's limit
        try:
            return await client.request(method, url, **kwargs)
        finally:
            pacer.update(seq, None)

    retry_on: tuple[type[BaseException], ...] = (
        () if isinstance(policy, NoBlindRetryPolicy) else (httpx.TransportError,)
    )
    try:
        attempt = await call_with_retries(send, policy=policy, retry_on=retry_on, observe=observe, label=operation)
    except httpx.TransportError as exc:
        raise TrackerError(f"{operation}: {type(exc).__name__}") from None
    if attempt.response is None:
        raise TrackerError(f"{operation}: {attempt.describe} after {attempt.number} attempts")
    response = attempt.response
    if policy.retryable(response.status_code, response.headers):
        raise TrackerError(f"{operation}: HTTP {response.status_code} after {attempt.number} attempts")
    return response
