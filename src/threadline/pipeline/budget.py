"""Rate-limit budget across workers: each worker process gets 1/n of a provider's budget.

`threadline.ai.ratelimit.DividedBudget` divides the configured requests/tokens per minute
by the number of live workers; this module supplies that number from the database:
procrastinate workers whose heartbeat is younger than the stalled-worker timeout (a
killed worker stops counting once it would have its jobs taken over). One `DividedBudget`
per process (`process_budget_share`) is shared by every limiter and task of the worker.
"""

from __future__ import annotations

import threading

from sqlalchemy import Engine, text

from threadline.ai.ratelimit import DividedBudget
from threadline.pipeline.settings import STALLED_WORKER_TIMEOUT_S

_LIVE_WORKERS_SQL = text(
    "SELECT count(*) FROM procrastinate_workers WHERE last_heartbeat > now() - make_interval(secs => :seconds)"
)


def live_worker_count(engine: Engine, stalled_after_s: float = STALLED_WORKER_TIMEOUT_S) -> int:
    """Workers with a heartbeat in the last `stalled_after_s` seconds (at least 1: the caller)."""
    with engine.connect() as conn:
        return max(1, int(conn.execute(_LIVE_WORKERS_SQL, {"seconds": stalled_after_s}).scalar_one()))


_lock = threading.Lock()
_shares: dict[str, DividedBudget] = {}


def process_budget_share(engine: Engine) -> DividedBudget:
    """This process's share of every provider budget (one instance per database per process)."""
    key = engine.url.render_as_string(hide_password=True)
    with _lock:
        share = _shares.get(key)
        if share is None:
            share = DividedBudget(lambda: live_worker_count(engine))
            _shares[key] = share
        return share
