"""Pace requests to a provider's rate limits: fixed windows reported in headers, and configured caps.

One implementation serves every client that must stay inside a request budget (Intercom's
10-second windows, Zendesk's per-minute account budget, GitHub's secondary limit on content
creation):

* **Header-driven fixed windows.** Each response reports the requests left in the current window
  and when it ends (`Budget`: Intercom gives the end as a Unix time, Zendesk as whole seconds from
  now, rounded up). The pacer keeps, for the current window, an interval [earliest, latest] in
  which the window must end: every response narrows it (a rounded "resets in N s" observed between
  sending and receiving bounds the end on both sides), so after a few responses the end is known to
  within the round-trip time instead of a whole second. Requests are spread evenly over what is
  left of the window. Our estimate of the budget is the server's figure minus the requests we sent
  after that one (they may not be counted yet): it errs on the safe side and corrects itself with
  each response.
* **No lone probe.** When the window surely ended (its latest end plus a guard passed) and no
  response from the new window arrived yet, the new window's budget is the limit (from the
  headers or the configuration) minus what is in flight, spread over the window's length (the
  longest "resets in" seen, or the configured window). Only when neither limit nor window length
  is known does one request go out alone to learn them.
* **Configured caps** (`Cap`): at most `limit` grants in any `window_s`, tracked as a sliding log
  for limits no header reports (GitHub's 80 creations per minute and 500 per hour). A request
  occupies the cap from its grant until `window_s` after its answer (the server counted it at some
  moment in between), so latency jitter cannot squeeze one request too many into the server's
  window: the answer already bounds the server's count from above, and only a small guard (a
  server stamping its count a little after answering, clock rates) is added, not a share of the
  window lost each time (2% cost 0.3 s per 15 s window, 1.8 s over six). Grants may burst up to
  the cap: in a sliding window bursting is the fastest pacing there is (creation k + limit can
  never be counted earlier than a window after creation k, bursting or not).

Guards and jitter scale with the window (a 6-second test window must not lose 10% to a
fixed 0.6 s). The decision logic (`try_acquire`, `update`) is synchronous and takes the time as
an argument, so tests drive it with a simulated clock; `acquire` is the async wrapper clients use.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RESET_GUARD_SHARE = 0.005  # of the window: wait after a window's latest end before assuming a new one (clock skew)
MAX_RESET_GUARD_SECONDS = 0.1  # s: the guard never exceeds this, whatever the window
RATE_LIMIT_JITTER_SHARE = 0.02  # of the window: max random delay after a 429-ordered reset, so clients do not stampede
MAX_RATE_LIMIT_JITTER_SECONDS = 0.5  # s: the jitter never exceeds this
DEFAULT_GUARD_SECONDS = 0.1  # s: guard when no window length is known yet
DEFAULT_JITTER_SECONDS = 0.5  # s: jitter when no window length is known yet
CAP_GUARD_SHARE = 0.005  # of a configured cap's window: slack after an answer (server stamping late, clock rates)
MAX_CAP_GUARD_SECONDS = 0.25  # s: the cap's guard never exceeds this (an hour's 0.5% would be 18 s per window)
PROBE_TIMEOUT_SECONDS = 1.0  # s: a probe slower than this no longer holds back other requests
MAX_RATE_LIMIT_WAIT_SECONDS = 60.0  # s: cap on any wait derived from headers: a bad reset cannot hang a sync
UNKNOWN_RESET_SECONDS = 1.0  # s: assumed wait after a 429 that names no reset


@dataclass(frozen=True)
class RateLimitInfo:
    """The `X-RateLimit-*` headers of one response, Intercom's and GitHub's form (None when absent)."""

    limit: int | None
    remaining: int | None
    reset: float | None  # Unix time the window ends

    @classmethod
    def from_headers(cls, headers: Mapping[str, str]) -> RateLimitInfo:
        def num(name: str) -> int | None:
            value = headers.get(name)
            try:
                return int(value) if value is not None else None
            except ValueError:
                return None

        return cls(num("X-RateLimit-Limit"), num("X-RateLimit-Remaining"), num("X-RateLimit-Reset"))

    def budget(self) -> Budget | None:
        """The budget these headers report, or None when they report none."""
        if self.remaining is None or self.reset is None:
            return None
        return Budget(limit=self.limit, remaining=self.remaining, reset_at=float(self.reset))


@dataclass(frozen=True)
class Budget:
    """One response's view of a fixed-window budget, translated by the client from its headers.

    Give the window's end either as `reset_at` (a time on the pacer's clock) or as `reset_in`
    (seconds from when the server answered). `resolution_s` says how the value was rounded: the
    true value lies in (value - resolution_s, value] (Zendesk rounds seconds up: 1.0).
    """

    limit: int | None
    remaining: int
    reset_at: float | None = None
    reset_in: float | None = None
    resolution_s: float = 0.0


@dataclass(frozen=True)
class Cap:
    """A configured limit no header reports: at most `limit` requests in any `window_s` seconds."""

    limit: int
    window_s: float


def cap_guard(cap: Cap) -> float:
    """Seconds a cap's slot stays taken after `window_s` has passed since the request's answer."""
    return min(MAX_CAP_GUARD_SECONDS, cap.window_s * CAP_GUARD_SHARE)


class RateLimitPacer:
    """Shared by all requests of one client; coroutine-safe within one event loop."""

    def __init__(
        self,
        clock: Callable[[], float] = time.time,
        rng: random.Random | None = None,
        *,
        limit: int | None = None,
        window_s: float | None = None,
        caps: Sequence[Cap] = (),
    ) -> None:
        """`limit`/`window_s`: the header-reported window as configured (headers win when they say
        more); `caps`: configured limits no header reports."""
        self._clock = clock
        self._rng = rng or random.Random()
        self._lock = asyncio.Lock()
        self._wake = asyncio.Event()
        self._configured_limit = limit
        self._configured_window = window_s
        self._limit = limit
        self._longest_reset_in = 0.0  # the longest "resets in" seen: the window's length, from below
        self._end_lo: float | None = None  # the current window ends within [_end_lo, _end_hi]
        self._end_hi: float | None = None
        self._remaining = 0
        self._applied_seq = -1
        self._seq = 0
        self._sent_at: dict[int, float] = {}
        self._next_slot = 0.0
        self._paused_until = 0.0
        self._probe_seq: int | None = None
        self._probe_sent_at = 0.0
        # Caps alone (no header budget configured): pace by the caps only, never probe.
        self._header_paced = not caps or limit is not None or window_s is not None
        # per cap: (cap, window with guard, answer times of finished requests); in-flight ones count too
        self._caps = [(cap, cap.window_s + cap_guard(cap), deque[float]()) for cap in caps]
        self._counted: set[int] = set()  # granted, not yet answered
        self.probes = 0  # lone requests sent to learn a window's budget (for tests and reports)

    # ---- what we know ----------------------------------------------------------------------
    def window_length(self) -> float | None:
        """The window's length: the longest "resets in" seen, else the configured one."""
        if self._longest_reset_in > 0:
            if self._configured_window:
                return min(self._configured_window, self._longest_reset_in)
            return self._longest_reset_in
        return self._configured_window

    def _guard(self) -> float:
        window = self.window_length()
        return min(MAX_RESET_GUARD_SECONDS, window * RESET_GUARD_SHARE) if window else DEFAULT_GUARD_SECONDS

    def jitter(self) -> float:
        window = self.window_length()
        top = min(MAX_RATE_LIMIT_JITTER_SECONDS, window * RATE_LIMIT_JITTER_SHARE) if window else DEFAULT_JITTER_SECONDS
        return self._rng.uniform(0, top)

    @property
    def in_flight(self) -> int:
        return len(self._sent_at)

    # ---- granting --------------------------------------------------------------------------
    def try_acquire(self, now: float) -> tuple[int | None, float]:
        """(sequence number, 0) when a request may go out now, else (None, seconds to wait at most)."""
        wait = self._cap_wait(now)
        if wait > 0:
            return None, wait
        if now < self._paused_until:
            return None, self._paused_until - now
        if not self._header_paced:
            return self._grant(now), 0.0
        if self._probe_seq is not None:
            if now - self._probe_sent_at < PROBE_TIMEOUT_SECONDS:
                return None, self._probe_sent_at + PROBE_TIMEOUT_SECONDS - now
            logger.debug("rate-limit probe slower than %.1fs; sending another", PROBE_TIMEOUT_SECONDS)
            self._probe_seq = None
        if self._end_hi is None or now >= self._end_hi + self._guard():
            if not self._roll_over(now):
                seq = self._grant(now)
                self._probe_seq, self._probe_sent_at = seq, now
                self.probes += 1
                return seq, 0.0
        assert self._end_lo is not None and self._end_hi is not None
        if self._remaining <= 0:
            # Our budget is spent (no 429 seen): wait for the window's latest end.
            until = min(self._end_hi + self._guard(), now + MAX_RATE_LIMIT_WAIT_SECONDS)
            return None, max(until - now, 1e-3)
        if self._next_slot > now:
            return None, self._next_slot - now
        self._next_slot = now + max(0.0, self._end_hi - now) / max(self._remaining, 1)
        self._remaining -= 1
        return self._grant(now), 0.0

    def _roll_over(self, now: float) -> bool:
        """Start the next window from what we know (no probe); False when limit or length is unknown."""
        window = self.window_length()
        if self._limit is None or not window:
            return False
        if self._end_hi is None or self._end_lo is None:
            self._end_lo, self._end_hi = now, now + window
        else:
            missed = max(0, int((now - self._end_hi) // window))  # whole windows nobody used
            self._end_lo = self._end_hi + missed * window
            self._end_hi = self._end_hi + (missed + 1) * window
        self._remaining = max(0, self._limit - self.in_flight)
        self._applied_seq = self._seq  # answers to requests sent before now say less than we know
        self._next_slot = 0.0
        return True

    def _grant(self, now: float) -> int:
        self._seq += 1
        self._sent_at[self._seq] = now
        self._counted.add(self._seq)
        return self._seq

    def _cap_wait(self, now: float) -> float:
        wait = 0.0
        for cap, window, log in self._caps:
            # one expression decides both "left the window" and the wait: `log[0] <= now - window` and
            # `log[0] + window - now > 0` can both hold in floating point, a wait of 0 that granted one too many
            while log and log[0] + window <= now:
                log.popleft()
            if len(log) + self.in_flight >= cap.limit:
                # the oldest answer leaves the window then; with none, an answer wakes us first
                wait = max(wait, log[0] + window - now if log else window)
        return wait

    async def acquire(self) -> int:
        """Wait until a request may be sent; returns its sequence number for `update`."""
        async with self._lock:
            while True:
                seq, wait = self.try_acquire(self._clock())
                if seq is not None:
                    return seq
                self._wake.clear()
                try:  # an answer may move the window or end a probe: wake early then
                    await asyncio.wait_for(self._wake.wait(), wait)
                except TimeoutError:
                    pass

    # ---- learning --------------------------------------------------------------------------
    def update(self, seq: int, budget: Budget | None, now: float | None = None) -> None:
        """Apply one response's budget (None: the response said nothing, or never came)."""
        now = self._clock() if now is None else now
        sent_at = self._sent_at.pop(seq, now)
        if seq in self._counted:
            self._counted.discard(seq)
            for _cap, _window, log in self._caps:
                log.append(now)
        if seq == self._probe_seq:
            self._probe_seq = None
        self._wake.set()
        if budget is None:
            return
        if budget.limit is not None and budget.limit > 0:
            self._limit = budget.limit
        if budget.reset_at is not None:
            lo, hi = budget.reset_at - budget.resolution_s, budget.reset_at
            self._longest_reset_in = max(self._longest_reset_in, hi - now)
        elif budget.reset_in is not None:
            lo = sent_at + budget.reset_in - budget.resolution_s
            hi = now + budget.reset_in
            self._longest_reset_in = max(self._longest_reset_in, budget.reset_in)
        else:
            return
        sent_after = self._seq - seq
        if self._end_lo is None or self._end_hi is None or lo > self._end_hi:  # a later window
            self._end_lo, self._end_hi = lo, hi
            self._applied_seq = seq
            self._remaining = max(0, budget.remaining - sent_after)
            self._next_slot = 0.0
            return
        if hi < self._end_lo:
            return  # a late answer from an earlier window
        new_lo, new_hi = max(self._end_lo, lo), min(self._end_hi, hi)
        self._end_lo, self._end_hi = (new_lo, new_hi) if new_lo <= new_hi else (lo, hi)
        if seq > self._applied_seq:
            self._applied_seq = seq
            self._remaining = max(0, budget.remaining - sent_after)

    def update_headers(self, seq: int, headers: Mapping[str, str]) -> RateLimitInfo:
        """Apply `X-RateLimit-*` headers (Intercom's form); returns what they said."""
        info = RateLimitInfo.from_headers(headers)
        self.update(seq, info.budget())
        return info

    # ---- after a 429 -----------------------------------------------------------------------
    def pause_until_reset(self, info: RateLimitInfo) -> float:
        """After a 429 with an exhausted window: hold every request until the reset (+ jitter)."""
        now = self._clock()
        reset = float(info.reset) if info.reset is not None else now + UNKNOWN_RESET_SECONDS
        until = min(max(reset, now) + self._guard() + self.jitter(), now + MAX_RATE_LIMIT_WAIT_SECONDS)
        self._paused_until = max(self._paused_until, until)
        self._remaining = 0
        return until - now

    def wait_until_reset(self, info: RateLimitInfo) -> float:
        """Seconds one throttled request should wait (reset + jitter) without pausing the others."""
        now = self._clock()
        reset = float(info.reset) if info.reset is not None else now
        return min(max(0.0, reset - now) + self.jitter(), MAX_RATE_LIMIT_WAIT_SECONDS)
