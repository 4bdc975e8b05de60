"""Limits and timings of durable runs, each with its unit and reason.

Values that tests and operators need to tune are read from the environment through
`DurableSettings.from_env()` (documented in the README); the module constants are the
defaults.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

QUEUE = "threadline"  # procrastinate queue of every Threadline job: one queue, workers listen to it
TASK_PREFIX = "threadline."  # task-name prefix: lets SQL find this project's jobs among procrastinate's

BATCH_SIZE = 64  # conversations per batch job of provider-calling stages (facets): a crash or stop loses at most 64 calls' worth
LOCAL_BATCH_SIZE = 256  # conversations per batch job of local-model stages (embed, classify): ~1-10 s of CPU, so per-job bookkeeping stays small and a crash or stop redoes or waits for seconds
LOCAL_STAGES = frozenset({"embed", "classify", "sleep"})  # stages that call no paid provider


def default_batch_size(stage: str) -> int:
    """Conversations per batch job of `stage` when the run does not set `batch_size`."""
    return LOCAL_BATCH_SIZE if stage in LOCAL_STAGES else BATCH_SIZE


MAX_BATCH_SIZE = 1_000  # conversations per batch job: keeps job arguments and per-batch statements small
MAX_ITEM_ATTEMPTS = 5  # attempts per item and stage: transient faults clear within a few tries; past that it is a dead letter
MAX_JOB_ATTEMPTS = 8  # attempts per job on unexpected errors (e.g. a database blip): bounded so a broken job cannot loop forever
RETRY_BASE_DELAY_S = 2.0  # seconds before the first retry: long enough for a rate-limit window to move, short for a run
RETRY_MAX_DELAY_S = 300.0  # seconds: exponential backoff is capped at five minutes
MAX_RETRY_AFTER_S = 3_600.0  # seconds: a provider's Retry-After above one hour is treated as one hour
MAX_DEAD_SHARE = 0.1  # share of a run's items dead-lettered above which the run ends `failed` instead of `succeeded`

WORKER_CONCURRENCY = 1  # jobs a worker process runs at once by default: a second job's Python work competes with the model thread for the GIL (embed phase ~13% slower at 2, measured); scale with more worker processes
WORKER_POLL_INTERVAL_S = 1.0  # seconds between job polls: bounds the latency of scheduled retries (LISTEN/NOTIFY covers new jobs)
HEARTBEAT_INTERVAL_S = 5.0  # seconds between worker heartbeats
STALLED_WORKER_TIMEOUT_S = 30.0  # seconds without heartbeat after which a worker is dead and its jobs are taken over (6 missed heartbeats)
MAINTENANCE_INTERVAL_S = 2.0  # seconds between a worker's sweeps: stalled-job takeover and finishing stopped runs
SHUTDOWN_GRACE_S = 60.0  # seconds a stopping worker waits for in-flight jobs before aborting them
PROGRESS_POLL_S = 0.5  # seconds between progress reads by `threadline run`


def _float_env(name: str, default: float) -> float:
    value = os.environ.get(name)
    return float(value) if value not in (None, "") else default


@dataclass(frozen=True)
class DurableSettings:
    """Tunable durable-run settings (environment overrides of the defaults above)."""

    retry_base_delay_s: float = RETRY_BASE_DELAY_S
    max_item_attempts: int = MAX_ITEM_ATTEMPTS
    max_dead_share: float = MAX_DEAD_SHARE

    @classmethod
    def from_env(cls) -> DurableSettings:
        """THREADLINE_RETRY_BASE_DELAY_S, THREADLINE_MAX_ITEM_ATTEMPTS, THREADLINE_MAX_DEAD_SHARE."""
        return cls(
            retry_base_delay_s=_float_env("THREADLINE_RETRY_BASE_DELAY_S", RETRY_BASE_DELAY_S),
            max_item_attempts=int(_float_env("THREADLINE_MAX_ITEM_ATTEMPTS", MAX_ITEM_ATTEMPTS)),
            max_dead_share=_float_env("THREADLINE_MAX_DEAD_SHARE", MAX_DEAD_SHARE),
        )
