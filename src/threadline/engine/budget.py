"""LLM spend and rate budgets across workers.

Rate limits: `threadline.ai.ratelimit.DividedBudget` divides the configured requests/tokens
per minute by the number of live workers; `live_worker_count` supplies that number from
the database: procrastinate workers whose heartbeat is younger than the stalled-worker
timeout (a killed worker stops counting once it would have its jobs taken over).

Spend: what a run's LLM calls have cost so far is summed from the counters its stages
committed with their results (`run_spend`), never from a shared in-memory tally.

Budget: every call reserves its largest possible cost on the run's row before it is sent
(`RunSpendGuard.reserve`: one conditional UPDATE, atomic across workers) and settles the
actual cost after. Calls in flight on any worker together never hold more than the budget,
so a run ends at most one call's estimation error above it.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import Engine, text
from sqlalchemy.orm import Session

from threadline.ai.llm.cost import BudgetExceeded
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


_RESERVE_SQL = text(
    "UPDATE runs SET llm_reserved = llm_reserved + :amount "
    "WHERE id = :run_id AND llm_spent + llm_reserved + :amount <= :budget RETURNING id"
)
_SPENT_SQL = text("SELECT llm_spent, llm_reserved FROM runs WHERE id = :run_id")
_SETTLE_SQL = text(
    "UPDATE runs SET llm_reserved = greatest(llm_reserved - :reserved, 0), llm_spent = llm_spent + :actual "
    "WHERE id = :run_id"
)


class RunSpendGuard:
    """The run's LLM budget in the database: a `SpendGuard` handed to the provider plumbing per job."""

    def __init__(self, engine: Engine, run_id: int, budget: float) -> None:
        self.engine = engine
        self.run_id = run_id
        self.budget = budget

    def reserve_now(self, amount: float) -> None:
        """Hold `amount` on the run's row, or raise `BudgetExceeded` (blocking; see `reserve`)."""
        with self.engine.begin() as conn:
            held = conn.execute(_RESERVE_SQL, {"amount": amount, "run_id": self.run_id, "budget": self.budget}).first()
            if held is None:
                spent, reserved = conn.execute(_SPENT_SQL, {"run_id": self.run_id}).one()
                raise BudgetExceeded(float(spent) + float(reserved), self.budget)

    def settle_now(self, reserved: float, actual: float) -> None:
        """Release `reserved` and add `actual` to the run's spend (blocking; see `settle`)."""
        with self.engine.begin() as conn:
            conn.execute(_SETTLE_SQL, {"reserved": reserved, "actual": actual, "run_id": self.run_id})

    async def reserve(self, amount: float) -> None:
        await asyncio.to_thread(self.reserve_now, amount)

    async def settle(self, reserved: float, actual: float) -> None:
        await asyncio.to_thread(self.settle_now, reserved, actual)


def spend_guard(engine: Engine, run_id: int, budget: float | None) -> RunSpendGuard | None:
    """The guard of run `run_id` when it has a budget, else None (unlimited: nothing to reserve)."""
    return None if budget is None else RunSpendGuard(engine, run_id, budget)
