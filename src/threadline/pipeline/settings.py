"""Limits and timings of durable runs, each with its unit and reason.

Values that tests and operators need to tune are read from the environment through
`DurableSettings.from_env()` (documented in the README); the module constants are the
defaults.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass

QUEUE = "threadline"  # procrastinate queue of every Threadline job: one queue, workers listen to it
TASK_PREFIX = "threadline."  # task-name prefix: lets SQL find this project's jobs among procrastinate's

MAX_BATCH_SIZE = 1_000  # conversations per batch job: keeps job arguments and per-batch statements small
BATCH_SIZE = (
    64  # conversations per batch job of provider-calling stages (facets): a crash or stop loses at most 64 calls' worth
)
# Local-model stages (embed, classify) size their jobs by work, not by count: per-job
# bookkeeping (claim, record, commit, fetch) costs the same for 10 short texts as for
# 1,000, while model time grows with text length.
LOCAL_BATCH_CHARS = 100_000  # characters of customer text per local-stage job: ~3-5 s of model time on 2 cores, so a crash or stop redoes or waits for seconds
MODEL_INPUT_CHARS = 2_000  # characters of one text counted towards LOCAL_BATCH_CHARS: the model reads at most 256 tokens (~1,000-1,500 characters), so longer texts cost no more
LOCAL_STAGES = frozenset({"embed", "classify", "sleep"})  # stages that call no paid provider


def default_batch_size(stage: str) -> int | None:
    """Conversations per batch job of `stage` when the run does not set `batch_size`; None: sized by characters."""
    return None if stage in LOCAL_STAGES else BATCH_SIZE


def split_by_characters(ids: Sequence[int], chars: Sequence[int]) -> list[list[int]]:
    """Consecutive batches of `ids` holding about LOCAL_BATCH_CHARS characters each (at most MAX_BATCH_SIZE ids).

    `chars[i]` is the customer-text length of `ids[i]`, counted up to MODEL_INPUT_CHARS.
    A batch always holds at least one id.
    """
    batches: list[list[int]] = []
    current: list[int] = []
    budget = 0
    for conversation_id, length in zip(ids, chars, strict=True):
        cost = min(max(int(length), 1), MODEL_INPUT_CHARS)
        if current and (budget + cost > LOCAL_BATCH_CHARS or len(current) >= MAX_BATCH_SIZE):
            batches.append(current)
            current, budget = [], 0
        current.append(conversation_id)
        budget += cost
    if current:
        batches.append(current)
    return batches


MAX_ITEM_ATTEMPTS = (
    5  # attempts per item and stage: transient faults clear within a few tries; past that it is a dead letter
)
MAX_JOB_ATTEMPTS = (
    8  # attempts per job on unexpected errors (e.g. a database blip): bounded so a broken job cannot loop forever
)
RETRY_BASE_DELAY_S = 2.0  # seconds before the first retry: long enough for a rate-limit window to move, short for a run
RETRY_MAX_DELAY_S = 300.0  # seconds: exponential backoff is capped at five minutes
MAX_RETRY_AFTER_S = 3_600.0  # seconds: a provider's Retry-After above one hour is treated as one hour
MAX_DEAD_SHARE = 0.1  # share of a run's items dead-lettered above which the run ends `failed` instead of `succeeded`

WORKER_CONCURRENCY = 1  # jobs a worker process runs at once by default: a second job's Python work competes with the model thread for the GIL (embed phase ~13% slower at 2, measured); scale with more worker processes
WORKER_POLL_INTERVAL_S = (
    1.0  # seconds between job polls: bounds the latency of scheduled retries (LISTEN/NOTIFY covers new jobs)
)
HEARTBEAT_INTERVAL_S = 5.0  # seconds between worker heartbeats
STALLED_WORKER_TIMEOUT_S = (
    30.0  # seconds without heartbeat after which a worker is dead and its jobs are taken over (6 missed heartbeats)
)
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
