"""Provider-side enforcement of requests/tokens per minute, as OpenAI describes it.

Each budget is a bucket holding up to `burst_seconds` worth of the per-minute limit,
refilled continuously. A request is admitted only if one request and its whole token
cost are available; otherwise it gets 429 and the time until it would fit. This is an
independent implementation from `threadline.ai.ratelimit` on purpose: the client's
limiter is tested against it, not against itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

SECONDS_PER_MINUTE = 60.0  # s: budgets are stated per minute


@dataclass(frozen=True)
class Admission:
    """Outcome of one admission check plus the state to report in headers."""

    admitted: bool
    retry_after_seconds: float
    remaining_requests: int
    remaining_tokens: int
    reset_requests_seconds: float
    reset_tokens_seconds: float


class _ProviderBucket:
    def __init__(self, per_minute: float, burst_seconds: float, now: float) -> None:
        self.rate = per_minute / SECONDS_PER_MINUTE
        self.capacity = max(1.0, self.rate * burst_seconds)
        self.level = self.capacity
        self.updated = now

    def refill(self, now: float) -> None:
        self.level = min(self.capacity, self.level + (now - self.updated) * self.rate)
        self.updated = now

    def shortfall_seconds(self, amount: float) -> float:
        need = min(amount, self.capacity)
        return 0.0 if self.level >= need else (need - self.level) / self.rate

    def reset_seconds(self) -> float:
        return (self.capacity - self.level) / self.rate


class ProviderLimits:
    """Requests and tokens per minute for one stand-in instance (single event loop)."""

    def __init__(
        self,
        requests_per_minute: float,
        tokens_per_minute: float,
        burst_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        now = clock()
        self._clock = clock
        self._requests = _ProviderBucket(requests_per_minute, burst_seconds, now)
        self._tokens = _ProviderBucket(tokens_per_minute, burst_seconds, now)

    def admit(self, tokens: int) -> Admission:
        """Charge one request and `tokens`, or refuse with the wait until both fit."""
        now = self._clock()
        self._requests.refill(now)
        self._tokens.refill(now)
        wait = max(self._requests.shortfall_seconds(1.0), self._tokens.shortfall_seconds(tokens))
        admitted = wait <= 0.0
        if admitted:
            self._requests.level -= 1.0
            self._tokens.level -= min(float(tokens), self._tokens.capacity)
        return self.snapshot(admitted, wait)

    def snapshot(self, admitted: bool = True, wait: float = 0.0) -> Admission:
        """Current header values (after refilling to now)."""
        now = self._clock()
        self._requests.refill(now)
        self._tokens.refill(now)
        return Admission(
            admitted=admitted,
            retry_after_seconds=wait,
            remaining_requests=max(0, int(self._requests.level)),
            remaining_tokens=max(0, int(self._tokens.level)),
            reset_requests_seconds=self._requests.reset_seconds(),
            reset_tokens_seconds=self._tokens.reset_seconds(),
        )


def format_duration(seconds: float) -> str:
    """Format like OpenAI's reset headers: "20ms", "1.5s", "6m0s", "1h2m3s"."""
    if seconds < 1.0:
        return f"{round(seconds * 1000)}ms"
    hours, rest = divmod(seconds, 3600.0)
    minutes, secs = divmod(rest, 60.0)
    secs_text = f"{secs:.3f}".rstrip("0").rstrip(".")
    if hours >= 1:
        return f"{int(hours)}h{int(minutes)}m{secs_text}s"
    if minutes >= 1:
        return f"{int(minutes)}m{secs_text}s"
    return f"{secs_text}s"
