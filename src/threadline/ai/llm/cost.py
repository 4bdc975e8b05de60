"""Token usage and cost: per call, aggregated per stage and per run, and the run budget.

Aggregation is a pure function over the `CallUsage` values calls *return*; there is no
shared mutable tally, so concurrent tasks and several workers cannot race on it (the
integrator sums stored usages from the `analyses` rows for a run-wide figure).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from threadline.config import ModelPrice

TOKENS_PER_MILLION = 1_000_000  # price tables are quoted per million tokens


@dataclass(frozen=True)
class CallUsage:
    """Tokens of one HTTP call (a retry or repair is its own call)."""

    stage: str
    model: str
    input_tokens: int
    output_tokens: int

    def cost(self, prices: Mapping[str, ModelPrice]) -> float | None:
        """Cost in currency units, or None when the model has no price configured."""
        price = prices.get(self.model)
        if price is None:
            return None
        return (
            self.input_tokens * price.input_per_million + self.output_tokens * price.output_per_million
        ) / TOKENS_PER_MILLION


@dataclass(frozen=True)
class StageCost:
    """Totals for one stage (or for the whole run)."""

    calls: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    cost: float = 0.0
    unpriced_calls: int = 0


@dataclass(frozen=True)
class CostSummary:
    """Per-stage totals and the run total, ready for `runs show`."""

    stages: dict[str, StageCost] = field(default_factory=dict)
    total: StageCost = field(default_factory=StageCost)

    def as_dict(self) -> dict[str, object]:
        """JSON-able form for storage and the API."""
        return {
            "stages": {name: vars(stage) for name, stage in self.stages.items()},
            "total": vars(self.total),
        }


def _add(acc: StageCost, usage: CallUsage, cost: float | None) -> StageCost:
    return StageCost(
        calls=acc.calls + 1,
        input_tokens=acc.input_tokens + usage.input_tokens,
        output_tokens=acc.output_tokens + usage.output_tokens,
        cost=acc.cost + (cost or 0.0),
        unpriced_calls=acc.unpriced_calls + (1 if cost is None else 0),
    )


def summarize(usages: Iterable[CallUsage], prices: Mapping[str, ModelPrice]) -> CostSummary:
    """Aggregate call usages into per-stage and total tokens and cost."""
    stages: dict[str, StageCost] = {}
    total = StageCost()
    for usage in usages:
        cost = usage.cost(prices)
        stages[usage.stage] = _add(stages.get(usage.stage, StageCost()), usage, cost)
        total = _add(total, usage, cost)
    return CostSummary(stages=stages, total=total)


class BudgetExceeded(Exception):
    """The run's spend reached its budget: stop starting new work, finish in-flight items."""

    def __init__(self, spent: float, budget: float) -> None:
        self.spent = spent
        self.budget = budget
        super().__init__(
            f"LLM budget reached: spent {spent:.4f} of {budget:.4f}; "
            "the run stops cleanly and can be resumed with a higher budget"
        )


class SpendGuard(Protocol):
    """Reserves a call's largest possible cost before it is sent and settles the actual cost after.

    The engine implements it atomically in the database (`threadline.engine.budget`), so the
    provider plumbing here needs no database: it asks before every call and reports after.
    """

    async def reserve(self, amount: float) -> None:
        """Hold `amount` of the run's budget, or raise `BudgetExceeded` when it does not fit."""
        ...

    async def settle(self, reserved: float, actual: float) -> None:
        """Release a reservation of `reserved` and record `actual` as spent."""
        ...


def call_cost(prices: Mapping[str, ModelPrice], model: str, input_tokens: int, output_tokens: int) -> float | None:
    """What a call of these token counts costs with `model`'s price, or None when the model has no price."""
    return CallUsage("estimate", model, input_tokens, output_tokens).cost(prices)


def unpriced_models(models: Iterable[str], prices: Mapping[str, ModelPrice]) -> list[str]:
    """The models without a price: with a budget they would cost 0 and the budget would never hold."""
    return sorted({m for m in models if m not in prices})


def check_budget(spent: float, budget: float | None) -> None:
    """Raise `BudgetExceeded` when `spent` has reached `budget` (None = unlimited)."""
    if budget is not None and spent >= budget:
        raise BudgetExceeded(spent, budget)


def cost_counters(usages: Iterable[CallUsage], prices: Mapping[str, ModelPrice]) -> dict[str, float]:
    """A run phase's LLM counters (calls, tokens, cost) from the usages its calls returned."""
    total = summarize(usages, prices).total
    return {
        "llm_calls": total.calls,
        "input_tokens": total.input_tokens,
        "output_tokens": total.output_tokens,
        "cost": round(total.cost, 6),
    }
