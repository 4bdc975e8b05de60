"""Pieces the tracker stand-ins share: rate-limit windows, fault injection, traffic counts.

Windows are scaled by `time_scale` (a factor on every documented window length; 1.0 is the real
vendor, 0.01 turns an hour into 36 s and a minute into 0.6 s) so benchmarks can run a limited
workload in seconds while keeping the documented number of requests per window.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections import Counter, deque
from collections.abc import Callable
from dataclasses import dataclass, field


@dataclass
class FixedWindow:
    """A request budget that refills completely at each window boundary (GitHub's primary limit)."""

    limit: int
    seconds: float
    clock: Callable[[], float] = time.time
    _index: int = -1
    _used: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def take(self) -> tuple[bool, int, float]:
        """Count one request: (admitted, used in this window, window reset as Unix time)."""
        now = self.clock()
        with self._lock:
            index = math.floor(now / self.seconds)
            if index != self._index:
                self._index, self._used = index, 0
            admitted = self._used < self.limit
            if admitted:
                self._used += 1
            return admitted, self._used, (index + 1) * self.seconds

    def peek(self) -> tuple[int, float]:
        """(used, reset) without counting a request."""
        now = self.clock()
        with self._lock:
            index = math.floor(now / self.seconds)
            used = self._used if index == self._index else 0
            return used, (index + 1) * self.seconds


@dataclass
class SlidingWindow:
    """At most `limit` events in any `seconds`-long span (GitHub's secondary content limits)."""

    limit: int
    seconds: float
    clock: Callable[[], float] = time.time
    _events: deque[float] = field(default_factory=deque)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def wait_needed(self) -> float:
        """Seconds until one more event fits (0 when it fits now)."""
        now = self.clock()
        with self._lock:
            while self._events and self._events[0] <= now - self.seconds:
                self._events.popleft()
            if len(self._events) < self.limit:
                return 0.0
            return self._events[0] + self.seconds - now

    def record(self) -> None:
        with self._lock:
            self._events.append(self.clock())


@dataclass
class LeakyBucket:
    """Linear's limiter: a bucket of `capacity` tokens refilled at capacity/period per second."""

    capacity: float
    period_seconds: float
    clock: Callable[[], float] = time.time
    _level: float | None = None
    _at: float = 0.0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def _refill(self, now: float) -> float:
        if self._level is None:
            self._level, self._at = self.capacity, now
        rate = self.capacity / self.period_seconds
        self._level = min(self.capacity, self._level + (now - self._at) * rate)
        self._at = now
        return self._level

    def take(self, amount: float) -> tuple[bool, float, float]:
        """Spend `amount` if available: (admitted, remaining, Unix time the bucket is full again)."""
        now = self.clock()
        with self._lock:
            level = self._refill(now)
            admitted = level >= amount
            if admitted:
                self._level = level - amount
            remaining = self._level or 0.0
            full_at = now + (self.capacity - remaining) * self.period_seconds / self.capacity
            return admitted, remaining, full_at

    def seconds_until(self, amount: float) -> float:
        """How long until `amount` tokens are available."""
        now = self.clock()
        with self._lock:
            level = self._refill(now)
            return max(0.0, (amount - level) * self.period_seconds / self.capacity)


@dataclass
class Faults:
    """Injected misbehaviour, each a probability per request (stable for a given seed)."""

    error_5xx_share: float = 0.0  # answer 500 (or 503) instead of serving the request
    error_429_share: float = 0.0  # answer the vendor's rate-limit error although budget remains
    delay_share: float = 0.0  # serve after `delay_seconds`
    delay_seconds: float = 0.5
    retry_after_seconds: int = 1  # Retry-After on injected 429s
    seed: int = 0
    _rng: random.Random = field(init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)

    async def roll(self) -> str | None:
        """Decide this request's fault: "5xx", "429" or None (sleeping first when delayed)."""
        with self._lock:
            roll, delayed = self._rng.random(), self._rng.random() < self.delay_share
        if delayed:
            await asyncio.sleep(self.delay_seconds)
        if roll < self.error_5xx_share:
            return "5xx"
        if roll < self.error_5xx_share + self.error_429_share:
            return "429"
        return None


@dataclass
class TrafficStats:
    """What a stand-in saw and did (read by tests and benchmarks)."""

    requests: int = 0
    by_route: Counter[str] = field(default_factory=Counter)
    by_status: Counter[int] = field(default_factory=Counter)
    unauthorized: int = 0
    primary_limited: int = 0  # refused because the primary / request budget ran out
    secondary_limited: int = 0  # refused by GitHub's secondary content-creation limit
    complexity_limited: int = 0  # refused by Linear's complexity budget
    injected_429: int = 0
    injected_5xx: int = 0
    created: int = 0  # content actually created (issues, comments, ...)
    created_at: list[float] = field(default_factory=list)  # clock of each creation (benchmarks)
