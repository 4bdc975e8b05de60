"""Pace requests from Intercom's rate-limit headers (10-second windows).

Intercom counts requests in fixed 10-second windows and reports, on every response,
`X-RateLimit-Remaining` (requests left in the window) and `X-RateLimit-Reset` (Unix time the
window ends). `RateLimitPacer` spreads the remaining requests evenly until the reset, so a
sync runs close to the allowed rate without bursting into 429s.

How the budget is tracked: every `acquire()` returns a sequence number; the response's
headers are applied with `update(seq, headers)`. Our estimate of the remaining budget is the
server's figure minus the requests we sent after that one (they may not be counted yet), so
it errs a little on the safe side and corrects itself with each response. When a window ends
we do not know the next window's budget (another app may share the workspace), so one probe
request goes out alone and its response sets the pace.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RESET_GUARD_SECONDS = 0.1  # wait after a window's reset before probing: tolerates clock skew
PROBE_TIMEOUT_SECONDS = 1.0  # a probe slower than this no longer holds back other requests
RATE_LIMIT_JITTER_SECONDS = 0.5  # max random delay added after a reset, so clients do not stampede
MAX_RATE_LIMIT_WAIT_SECONDS = 60.0  # cap on any wait derived from headers: a bad Reset cannot hang a sync


@dataclass(frozen=True)
class RateLimitInfo:
    """The three headers of one response (None when absent)."""

    limit: int | None
    remaining: int | None
    reset: float | None

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        def num(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        return cls(num("X-RateLimit-Limit"), num("X-RateLimit-Remaining"), num("X-RateLimit-Reset"))


class RateLimitPacer:
    """Shared by all requests of one sync; coroutine-safe within one event loop."""

    def __init__(self, clock: Callable[[], float] = time.time, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        self._reset_at: float | None = None
        self._remaining = 0
        self._applied_seq = -1
        self._seq = 0
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._probe_seq: int | None = None
        self._probe_event = asyncio.Event()

    def jitter(self) -> float:
        return self._rng.uniform(0, RATE_LIMIT_JITTER_SECONDS)

    async def acquire(self) -> int:
        """Wait until a request may be sent; returns its sequence number for `update`."""
        async with self._lock:
            while True:
                now = self._clock()
                if now < self._paused_until:
                    await asyncio.sleep(self._paused_until - now)
                    continue
                if self._reset_at is None or now >= self._reset_at + RESET_GUARD_SECONDS:
                    if self._probe_seq is not None:
                        try:
                            await asyncio.wait_for(self._probe_event.wait(), PROBE_TIMEOUT_SECONDS)
                        except TimeoutError:
                            logger.debug("rate-limit probe slower than %.1fs; sending another", PROBE_TIMEOUT_SECONDS)
                            self._probe_seq = None
                        continue
                    self._probe_event.clear()
                    self._probe_seq = self._take()
                    return self._probe_seq
                if now < self._reset_at and self._remaining <= 0:
                    # Our own budget is spent (no 429 seen): wait for the reset; the even spread
                    # already de-synchronises clients, so no jitter is added here.
                    self._paused_until = min(self._reset_at + RESET_GUARD_SECONDS, now + MAX_RATE_LIMIT_WAIT_SECONDS)
                    continue
                if now >= self._reset_at:  # inside the guard interval after a reset
                    await asyncio.sleep(self._reset_at + RESET_GUARD_SECONDS - now)
                    continue
                if self._next_slot > now:
                    await asyncio.sleep(self._next_slot - now)
                    continue
                interval = (self._reset_at - now) / max(self._remaining, 1)
                self._next_slot = now + interval
                self._remaining -= 1
                return self._take()

    def _take(self) -> int:
        self._seq += 1
        return self._seq

    def update(self, seq: int, headers: Mapping[str, str]) -> RateLimitInfo:
        """Apply one response's headers (responses may arrive out of order)."""
        info = RateLimitInfo.from_headers(headers)
        if seq == self._probe_seq:
            self._probe_seq = None
            self._probe_event.set()
        if info.remaining is None or info.reset is None:
            return info
        reset = float(info.reset)
        if self._reset_at is not None and reset < self._reset_at:
            return info  # a late answer from an earlier window
        if self._reset_at is None or reset > self._reset_at:
            self._reset_at = reset
            self._applied_seq = -1
            self._next_slot = 0.0
        if seq > self._applied_seq:
            self._applied_seq = seq
            sent_after = self._seq - seq
            self._remaining = max(0, info.remaining - sent_after)
        return info

    def pause_until_reset(self, info: RateLimitInfo) -> float:
        """After a 429 with an exhausted window: hold every request until the reset (+ jitter)."""
        now = self._clock()
        reset = float(info.reset) if info.reset is not None else now + 1.0
        until = min(max(reset, now) + RESET_GUARD_SECONDS + self.jitter(), now + MAX_RATE_LIMIT_WAIT_SECONDS)
        self._paused_until = max(self._paused_until, until)
        self._remaining = 0
        return until - now

    def wait_until_reset(self, info: RateLimitInfo) -> float:
        """Seconds one throttled request should wait (reset + jitter) without pausing the others."""
        now = self._clock()
        reset = float(info.reset) if info.reset is not None else now
        return min(max(0.0, reset - now) + self.jitter(), MAX_RATE_LIMIT_WAIT_SECONDS)
