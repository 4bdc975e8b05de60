"""The LLM runtime of one worker process: one event loop thread and one shared rate limiter.

Pipeline jobs are synchronous and run in worker threads; the limiter is an asyncio object
bound to one loop. So each process keeps a single background loop, owns the limiter on
it, and jobs submit their coroutines to it and wait. Every job still opens its own
`LLMClient` (one HTTP client per job) and closes it when the job ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from typing import TypeVar

from threadline.ai.llm.client import LLMClient, llm_rate_limit
from threadline.ai.llm.cost import SpendGuard
from threadline.ai.ratelimit import DividedBudget, RateLimiter, WholeBudget
from threadline.config import LLMSettings

logger = logging.getLogger(__name__)

T = TypeVar("T")
WorkerCounter = Callable[[], int]


def _off_loop(count: WorkerCounter) -> Callable[[], Awaitable[int]]:
    """Run a blocking counter (a database query) in a thread so the loop keeps serving calls."""

    async def counted() -> int:
        return await asyncio.to_thread(count)

    return counted


class LLMRuntime:
    """Background event loop + the process's limiter; `run` executes one job's coroutine there."""

    def __init__(self, settings: LLMSettings, live_workers: WorkerCounter | None = None) -> None:
        self.settings = settings
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="threadline-llm", daemon=True)
        self._thread.start()
        share = DividedBudget(_off_loop(live_workers)) if live_workers else WholeBudget()
        self.limiter: RateLimiter = self._call(self._make_limiter(share))

    async def _make_limiter(self, share) -> RateLimiter:
        return RateLimiter(llm_rate_limit(self.settings), share=share)

    def _call(self, coro: Awaitable[T]) -> T:
        future: Future[T] = asyncio.run_coroutine_threadsafe(coro, self._loop)  # type: ignore[arg-type]
        return future.result()

    def run(
        self,
        job: Callable[[LLMClient], Awaitable[T]],
        settings: LLMSettings | None = None,
        spend_guard: SpendGuard | None = None,
    ) -> T:
        """Run `job(client)` on the runtime's loop with a fresh client that is closed afterwards.

        `settings` may narrow the process settings for this job (e.g. the run's remaining budget);
        `spend_guard` (the engine's, per run) reserves each call's cost before it is sent.
        """

        async def with_client() -> T:
            client = LLMClient.from_settings(settings or self.settings, self.limiter)
            client.spend_guard = spend_guard
            try:
                return await job(client)
            finally:
                await client.aclose()

        return self._call(with_client())

    def close(self) -> None:
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


_lock = threading.Lock()
_runtime: LLMRuntime | None = None


def process_runtime(settings: LLMSettings, live_workers: WorkerCounter | None = None) -> LLMRuntime:
    """The process-wide runtime (created on first use with these settings)."""
    global _runtime
    with _lock:
        if _runtime is None or _runtime.settings != settings:
            if _runtime is not None:
                _runtime.close()
            _runtime = LLMRuntime(settings, live_workers)
        return _runtime
