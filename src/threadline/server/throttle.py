"""A per-client token bucket for failed authentications: guessing tokens gets 429, not an answer per guess.

In-process (each server process has its own buckets): enough to turn hundreds of guesses a
second into a handful per second per address. Only failures take from the bucket, so a
client with a valid token is never slowed by it; once empty, every request of that address
needing authentication is refused with 429 and `Retry-After` *before* any token is checked.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable


class AuthThrottle:
    """Buckets of `burst` failures per client, refilled at `per_minute`; at most `max_clients` tracked."""

    def __init__(
        self, burst: int, per_minute: float, max_clients: int, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.burst = burst
        self.rate_per_s = per_minute / 60.0
        self.max_clients = max_clients
        self._clock = clock
        self._lock = threading.Lock()
        self._buckets: OrderedDict[str, tuple[float, float]] = OrderedDict()  # client -> (tokens, at)

    def _level(self, client: str, now: float) -> float:
        tokens, at = self._buckets.get(client, (float(self.burst), now))
        return min(float(self.burst), tokens + (now - at) * self.rate_per_s)

    def retry_after(self, client: str) -> int | None:
        """Seconds until `client` may try again (it has no failure left), or None when it may try now."""
        now = self._clock()
        with self._lock:
            level = self._level(client, now)
        if level >= 1.0:
            return None
        return max(1, math.ceil((1.0 - level) / self.rate_per_s))

    def failed(self, client: str) -> None:
        """Take one failure from `client`'s bucket."""
        now = self._clock()
        with self._lock:
            level = self._level(client, now)
            self._buckets[client] = (max(0.0, level - 1.0), now)
            self._buckets.move_to_end(client)
            while len(self._buckets) > self.max_clients:
                self._buckets.popitem(last=False)
