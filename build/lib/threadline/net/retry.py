"""The one outbound retry policy for HTTP clients: backoff, jitter, caps, Retry-After and rate-limit headers.

Every client that calls a remote HTTP API (Intercom, the OpenAI-compatible LLM endpoint, the
trackers next) retries the same way:

* it retries transport errors and timeouts, and the retryable statuses: 429, every 5xx, plus a
  per-client extra set (e.g. 408/409 for OpenAI);
* before the next attempt it waits ``max(backoff, requested)``: ``backoff`` is exponential with
  jitter (`backoff_s`, the one backoff function of the code base), ``requested`` is what the
  server asked for (`requested_wait_s`: ``Retry-After`` in seconds or as an HTTP-date,
  ``retry-after-ms``, or the reset of an exhausted rate-limit budget) capped at
  `RetryPolicy.max_requested_wait_s`, so a bad header cannot stall a job;
* it stops after `RetryPolicy.attempts` attempts and hands the last attempt back, so the
  client raises its own error (with the attempt count) from it.

Pacing is not retrying: Intercom's window pacer and the LLM token/request limiter stay with
their clients. The `observe` hook of `call_with_retries` sees every attempt before any wait, so
a client feeds each response to its pacer and may ask for a longer wait (Intercom: "the window
is spent, everybody waits for the reset").

The engine's own retry decisions (procrastinate re-runs, per-item retries) stay the engine's;
it only borrows `backoff_s` (equal jitter) and `honour_requested_wait`.

Library choice: tenacity, not stamina. stamina is an excellent opinionated wrapper *around*
tenacity, but its opinions are the wrong ones here: it retries on exceptions only (a 429 or 503
*response* would have to be raised and caught again), its backoff is fixed at
``min(wait_max, wait_initial * base**n + uniform(0, wait_jitter))`` drawn from the global
``random`` (we need full jitter for clients, equal jitter for the engine, and a seeded RNG in
tests), and its backoff hook sees an exception, not the response whose headers set the wait.
tenacity gives exactly the parts we need and nothing we would have to switch off:
``retry_if_result``, ``stop_after_attempt``, a wait callable that receives the attempt's
outcome, an injectable ``sleep`` and a ``before_sleep`` hook for logging.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
import math
import random
import re
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC
from enum import StrEnum
from typing import Generic, Protocol, TypeVar

import httpx
import tenacity

logger = logging.getLogger(__name__)

MAX_BACKOFF_DOUBLINGS = 62  # exponent cap: 2**62 times any base is past every cap, and larger ints overflow a float
EPOCH_RESET_THRESHOLD_S = 1_000_000_000.0  # s: a reset this large is a Unix time (2001-09-09), no window lasts 31 years
DEFAULT_MAX_REQUESTED_WAIT_S = 120.0  # s: longest server-requested wait honoured unless a client says otherwise
TOO_MANY_REQUESTS = 429  # always retryable: the server asks us to come back later
FORBIDDEN = 403  # GitHub's primary and secondary rate limits answer 403 with rate-limit headers
SERVER_ERRORS = range(500, 600)  # always retryable: the server failed, not the request

# (remaining, reset) header pairs of a rate-limit budget; the reset counts only when remaining is 0.
RATE_LIMIT_HEADERS: tuple[tuple[str, str], ...] = (
    ("x-ratelimit-remaining", "x-ratelimit-reset"),  # GitHub, Intercom: Unix time; some APIs: seconds
    ("x-ratelimit-remaining-requests", "x-ratelimit-reset-requests"),  # OpenAI: a duration like "6m0s"
    ("x-ratelimit-remaining-tokens", "x-ratelimit-reset-tokens"),  # OpenAI: a duration like "20ms"
)

_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


class Jitter(StrEnum):
    """How a backoff ceiling becomes a random delay."""

    FULL = "full"  # uniform in [0, ceiling]: spreads clients best (outbound HTTP clients)
    EQUAL = "equal"  # uniform in [ceiling/2, ceiling]: never much shorter than the ceiling (engine retries)


def backoff_s(attempt: int, *, base_s: float, cap_s: float, jitter: Jitter, rng: random.Random) -> float:
    """Seconds to wait after failed `attempt` (1-based): exponential ceiling with jitter.

    ceiling = min(cap_s, base_s * 2^(attempt-1)); full jitter draws uniform(0, ceiling), equal
    jitter ceiling * uniform(0.5, 1.0). One draw from `rng` per call, so a seeded RNG gives
    the same delays every time.
    """
    doublings = min(max(attempt - 1, 0), MAX_BACKOFF_DOUBLINGS)
    ceiling = min(cap_s, base_s * (2**doublings))
    if jitter is Jitter.EQUAL:
        return ceiling * rng.uniform(0.5, 1.0)
    return rng.uniform(0.0, ceiling)


def honour_requested_wait(backoff: float, requested_s: float | None, max_requested_s: float) -> float:
    """The wait before a retry: the backoff, but never less than the requested wait capped at `max_requested_s`."""
    if requested_s is None:
        return backoff
    return max(backoff, min(max(0.0, requested_s), max_requested_s))


def _finite(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def parse_duration(value: str | None) -> float | None:
    """Seconds in an OpenAI-style duration ("1s", "6m0s", "20ms", "1h2m3.5s") or a bare number of seconds.

    None for anything unparseable, so a malformed header is ignored rather than trusted.
    """
    if value is None:
        return None
    text = value.strip().lower()
    if not text:
        return None
    number = _finite(text)
    if number is not None:
        return max(0.0, number)
    total = 0.0
    position = 0
    for match in _DURATION_PART.finditer(text):
        if match.start() != position:
            return None
        total += float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        position = match.end()
    if position != len(text) or position == 0:
        return None
    return total


def parse_http_date(value: str, *, now: float) -> float | None:
    """Seconds from `now` (Unix time) until an HTTP-date ("Wed, 21 Oct 2015 07:28:00 GMT"); 0 if past."""
    try:
        when = email.utils.parsedate_to_datetime(value.strip())
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:  # "-0000" means UTC with no claim about the local zone (RFC 5322)
        when = when.replace(tzinfo=UTC)
    return max(0.0, when.timestamp() - now)


def parse_reset(value: str | None, *, now: float) -> float | None:
    """Seconds until a rate-limit reset given as a Unix time, a number of seconds or a duration ("6m0s")."""
    if value is None:
        return None
    number = _finite(value.strip())
    if number is None:
        return parse_duration(value)
    if number >= EPOCH_RESET_THRESHOLD_S:
        return max(0.0, number - now)
    return max(0.0, number)


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {key.lower(): value for key, value in headers.items()}


def parse_retry_after(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """Seconds to wait from `retry-after-ms` (OpenAI), else `retry-after` (seconds or an HTTP-date).

    None when neither is present or parseable.
    """
    lowered = _lower(headers)
    millis = lowered.get("retry-after-ms")
    if millis is not None:
        value = _finite(millis.strip())
        if value is not None:
            return max(0.0, value / 1000.0)
    text = lowered.get("retry-after")
    if text is None:
        return None
    seconds = _finite(text.strip())
    if seconds is not None:
        return max(0.0, seconds)
    return parse_http_date(text, now=time.time() if now is None else now)


def _spent(lowered: Mapping[str, str], remaining_name: str) -> bool:
    """Does the (lower-cased) header `remaining_name` report a budget with nothing left?"""
    remaining = lowered.get(remaining_name)
    number = _finite(remaining.strip()) if remaining is not None else None
    return number is not None and number <= 0


def rate_limit_exhausted(headers: Mapping[str, str]) -> bool:
    """True when any rate-limit budget in the headers reports nothing remaining."""
    lowered = _lower(headers)
    return any(_spent(lowered, remaining_name) for remaining_name, _ in RATE_LIMIT_HEADERS)


def requested_wait_s(headers: Mapping[str, str], *, now: float | None = None) -> float | None:
    """The wait a response asks for (uncapped): Retry-After if given, else the latest reset of a spent budget.

    A reset only counts when its budget's remaining is 0: the reset of a budget with room left is
    no instruction to wait (OpenAI reports both budgets on every response).
    """
    current = time.time() if now is None else now
    retry_after = parse_retry_after(headers, now=current)
    if retry_after is not None:
        return retry_after
    lowered = _lower(headers)
    waits: list[float] = []
    for remaining_name, reset_name in RATE_LIMIT_HEADERS:
        reset = parse_reset(lowered.get(reset_name), now=current) if _spent(lowered, remaining_name) else None
        if reset is not None:
            waits.append(reset)
    return max(waits, default=None)


@dataclass(frozen=True)
class RetryPolicy:
    """How one client retries: attempts, backoff (base, cap, jitter), which statuses, the cap on requested waits."""

    attempts: int  # attempts per request, the first included
    base_s: float  # s: backoff ceiling after the first failed attempt, doubled per attempt
    cap_s: float  # s: no backoff is longer than this
    jitter: Jitter = Jitter.FULL
    max_requested_wait_s: float = DEFAULT_MAX_REQUESTED_WAIT_S  # s: a server's Retry-After/reset above this is capped
    extra_statuses: frozenset[int] = frozenset()  # retryable besides 429 and 5xx (e.g. 408, 409)
    forbidden_may_be_rate_limit: bool = False  # GitHub: a 403 with a spent budget or Retry-After is a rate limit

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("attempts must be at least 1")
        if min(self.base_s, self.cap_s, self.max_requested_wait_s) < 0:
            raise ValueError("base_s, cap_s and max_requested_wait_s must not be negative")

    def retryable(self, status: int, headers: Mapping[str, str]) -> bool:
        """Is a response with this status (and headers) worth another attempt?"""
        if status == TOO_MANY_REQUESTS or status in SERVER_ERRORS or status in self.extra_statuses:
            return True
        if self.forbidden_may_be_rate_limit and status == FORBIDDEN:
            return rate_limit_exhausted(headers) or parse_retry_after(headers) is not None
        return False

    def backoff_s(self, attempt: int, rng: random.Random) -> float:
        """The jittered exponential backoff after failed `attempt` (1-based)."""
        return backoff_s(attempt, base_s=self.base_s, cap_s=self.cap_s, jitter=self.jitter, rng=rng)

    def wait_s(self, attempt: int, rng: random.Random, requested_s: float | None = None) -> float:
        """Seconds before the attempt after `attempt`: max(backoff, requested wait capped)."""
        return honour_requested_wait(self.backoff_s(attempt, rng), requested_s, self.max_requested_wait_s)


class ResponseLike(Protocol):
    """What the policy reads from a response: httpx.Response, or a client's own small answer type."""

    @property
    def status_code(self) -> int: ...

    @property
    def headers(self) -> Mapping[str, str]: ...


R = TypeVar("R", bound=ResponseLike)


@dataclass(frozen=True)
class Attempt(Generic[R]):
    """One attempt: a response (any status) or the transport error that replaced it."""

    number: int  # 1-based
    response: R | None = None
    error: BaseException | None = None
    retry: bool = False  # the policy would try again after this outcome
    requested_wait_s: float | None = None  # what the server's headers or the observer asked for, uncapped

    @property
    def status(self) -> int | None:
        """The HTTP status, None when no response arrived."""
        return self.response.status_code if self.response is not None else None

    @property
    def describe(self) -> str:
        """The status as "HTTP 503", or the error's class name ("ReadTimeout"): safe to log, never a message or body."""
        if self.response is not None:
            return f"HTTP {self.response.status_code}"
        return type(self.error).__name__


Observer = Callable[[Attempt[R]], float | None]
Sleep = Callable[[float], Awaitable[None]]


async def call_with_retries(
    send: Callable[[], Awaitable[R]],
    *,
    policy: RetryPolicy,
    retry_on: tuple[type[BaseException], ...] = (httpx.TransportError,),
    observe: Observer[R] | None = None,
    rng: random.Random | None = None,
    sleep: Sleep = asyncio.sleep,
    clock: Callable[[], float] = time.time,
    label: str = "request",
    log_level: int = logging.INFO,
) -> Attempt[R]:
    """Call `send` until it answers with a non-retryable status or `policy.attempts` are spent.

    `send` performs one attempt and returns its response whatever the status; exceptions in
    `retry_on` (transport errors, timeouts) count as failed attempts, any other exception
    propagates at once. `observe` sees every attempt before any wait (feed it to a pacer or
    limiter there); a number it returns is a floor on the wait before the next attempt, like a
    server's Retry-After. Returns the last attempt: a success, a non-retryable answer, or the
    final failure; the caller raises its own error from it. `label` names the call in logs and
    must not carry secrets or customer text.
    """
    draw = rng or random.Random()
    count = 0

    async def once() -> Attempt[R]:
        nonlocal count
        count += 1
        try:
            response = await send()
        except retry_on as error:
            attempt: Attempt[R] = Attempt(count, error=error, retry=True)
        else:
            attempt = Attempt(count, response=response, retry=policy.retryable(response.status_code, response.headers))
        floor = observe(attempt) if observe is not None else None
        if attempt.retry:
            asked = requested_wait_s(attempt.response.headers, now=clock()) if attempt.response is not None else None
            waits = [w for w in (asked, floor) if w is not None]
            attempt = replace(attempt, requested_wait_s=max(waits, default=None))
        return attempt

    def wait(state: tenacity.RetryCallState) -> float:
        attempt: Attempt[R] = state.outcome.result()  # type: ignore[union-attr]
        if attempt.number >= policy.attempts:
            return 0.0  # no retry follows: draw nothing, so a seeded RNG maps one draw to one retry
        return policy.wait_s(attempt.number, draw, attempt.requested_wait_s)

    def log_retry(state: tenacity.RetryCallState) -> None:
        attempt: Attempt[R] = state.outcome.result()  # type: ignore[union-attr]
        logger.log(
            log_level, "%s: %s, retry %d in %.1fs", label, attempt.describe, attempt.number, state.upcoming_sleep
        )

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        retry=tenacity.retry_if_result(lambda attempt: attempt.retry),
        wait=wait,
        sleep=sleep,
        before_sleep=log_retry,
        retry_error_callback=lambda state: state.outcome.result(),  # type: ignore[union-attr]
    )
    return await retrying(once)
