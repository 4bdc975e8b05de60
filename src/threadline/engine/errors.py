"""Error classes of durable runs: what a stage raises decides retry or dead letter."""

from __future__ import annotations

import random

from threadline.config import get_settings
from threadline.net.retry import Jitter, backoff_s, honour_requested_wait


class RunError(RuntimeError):
    """A run could not be created, stopped, resumed or executed; the message says why."""


class TransientError(RuntimeError):
    """A failure worth retrying (timeouts, 429/5xx); `retry_after_s` honours a provider's Retry-After."""

    def __init__(self, message: str, *, retry_after_s: float | None = None) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class PermanentError(RuntimeError):
    """A failure that retrying cannot fix (bad input, 4xx other than 429): dead-letter at once."""


class RetryLater(Exception):
    """Raised by a job after committing its successes: procrastinate re-runs it in `delay_s` seconds."""

    def __init__(self, delay_s: float, pending: int) -> None:
        super().__init__(f"{pending} item(s) to retry in {delay_s:.1f}s")
        self.delay_s = delay_s
        self.pending = pending


def is_transient(exc: BaseException) -> bool:
    """Transient by type: our TransientError, timeouts and connection-level OS errors."""
    if isinstance(exc, TransientError | TimeoutError | ConnectionError):
        return True
    retry_after = getattr(exc, "retry_after_s", None)
    return retry_after is not None


def backoff_delay_s(
    attempt: int, base_s: float, *, retry_after_s: float | None = None, rng: random.Random | None = None
) -> float:
    """Exponential backoff with equal jitter for `attempt` (1-based), never below Retry-After.

    delay = min(cap, base * 2^(attempt-1)) scaled by a uniform factor in [0.5, 1.0] (the shared
    `threadline.net.retry.backoff_s`), so retries of many items spread out instead of arriving
    together; a provider's Retry-After (capped at `max_retry_after_s`) is a floor. Only the delay
    is shared with the outbound HTTP policy: whether and when a job runs again stays procrastinate's.
    """
    rng = rng or random.Random()
    limits = get_settings().engine
    delay = backoff_s(attempt, base_s=base_s, cap_s=limits.retry_max_delay_s, jitter=Jitter.EQUAL, rng=rng)
    return honour_requested_wait(delay, retry_after_s, limits.max_retry_after_s)


class RunRequestError(RunError):
    """The run as asked for cannot exist (inverted period, nothing matches): refused before anything is written.

    The CLI exits 2, the API answers 422 and the dashboard shows the message on the form.
    """
