"""The `sleep` stage: an I/O-bound step with simulated latency, for engine tests and benchmarks.

`sleep_ms` in the run's params is slept once per batch, like one provider call per batch.
Registered through the `threadline.stages` entry point of this package, so `threadline
worker` subprocesses started by tests find it; it is never part of the product's phases.
"""

from __future__ import annotations

import time
from collections.abc import Sequence

from threadline.engine.stage import BatchOutcome, PerConversationStage, StageContext

MAX_SLEEP_MS = 60_000  # milliseconds per batch: a simulated call, not a way to park workers


def run(context: StageContext, ids: Sequence[int]) -> BatchOutcome:
    delay_ms = min(float(context.params.get("sleep_ms", 0)), MAX_SLEEP_MS)
    if delay_ms > 0:
        time.sleep(delay_ms / 1000)
    return BatchOutcome(done=list(ids), computed=len(ids))


SLEEP = PerConversationStage(name="sleep", version="1", position=0, run=run, local=True, default=False)
