"""LLM spend and rate budgets across workers.

Rate limits: `threadline.ai.ratelimit.DividedBudget` divides the configured requests/tokens
per minute by the number of live workers; `live_worker_count` supplies that number from
the database: procrastinate workers whose heartbeat is younger than the stalled-worker
timeout (a killed worker stops counting once it would have its jobs taken over).

Spend: what a run's LLM calls have cost so far is summed from the counters its stages
committed with their results (`run_spend`), never from a shared in-memory tally.
"""

from __future__ import annotations

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.db.models import Run

_LIVE_WORKERS_SQL = text(
    "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => :seconds)"
)


def live_worker_count(engine: Engine, stalled_after_s: float | None = None) -> int:
    """Workers with a heartbeat in the last `stalled_after_s` seconds (at least 1: the caller)."""
    stalled_after_s = stalled_after_s or get_settings().engine.stalled_worker_timeout_s
    with engine.connect() as conn:
        return max(1, int(conn.execute(_LIVE_WORKERS_SQL, {"seconds": stalled_after_s}).scalar_one()))


def run_spend(session: Session, run_id: int) -> float:
    """What the run's LLM calls have cost so far, from the counters its stages committed."""
    run = session.get(Run, run_id)
    if run is None:
        return 0.0
    return sum(float(c.get("cost", 0.0)) for c in (run.counters or {}).values() if isinstance(c, dict))
