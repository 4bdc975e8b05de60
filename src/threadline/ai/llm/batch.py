"""Run the facet stage over many conversations: cache first, pace by the limiter, lose nothing.

Every input ends in exactly one bucket of the returned `BatchReport`: `cached`, `done`,
`failed` (dead-letter candidates with error class and attempts) or `skipped` (the run's
budget was reached before the item started). Spend is summed from the usages the item
tasks *return*; when it reaches the budget no new item starts, in-flight ones finish,
and `stopped_reason` carries the `BudgetExceeded` message.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Protocol

from threadline.ai.llm.client import LLMCallFailed, LLMClient
from threadline.ai.llm.cost import BudgetExceeded, CallUsage, check_budget
from threadline.ai.llm.facets import (
    ConversationInput,
    FacetResult,
    Facets,
    analyze_facets,
    facet_input_hash,
)
from threadline.config import LLMSettings, ModelPrice

logger = logging.getLogger(__name__)


class FacetCache(Protocol):
    """Lookup of stored facets by `facet_input_hash` (the integrator's `analyses` table)."""

    def get(self, key: str) -> Facets | None:
        """Stored facets for `key`, or None."""
        ...

    def put(self, key: str, facets: Facets) -> None:
        """Store facets under `key`."""
        ...


@dataclass(frozen=True)
class FailedItem:
    """An item that exhausted its bounded attempts: a dead-letter candidate."""

    conversation_id: str
    error_class: str
    message: str
    attempts: int
    usages: tuple[CallUsage, ...]


@dataclass
class BatchReport:
    """Where every input ended up, and what it cost."""

    done: list[FacetResult] = field(default_factory=list)
    cached: list[str] = field(default_factory=list)
    failed: list[FailedItem] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    stopped_reason: str | None = None

    @property
    def usages(self) -> list[CallUsage]:
        """Every call's usage, from done and failed items."""
        return [u for r in self.done for u in r.usages] + [u for f in self.failed for u in f.usages]

    @property
    def accounted(self) -> int:
        """Items in some bucket (must equal the input size)."""
        return len(self.done) + len(self.cached) + len(self.failed) + len(self.skipped)


def default_in_flight(settings: LLMSettings) -> int:
    """Items in flight needed to use the request budget when calls take `latency_allowance_s` (at least `min_in_flight`)."""
    return max(settings.min_in_flight, math.ceil(settings.requests_per_minute / 60.0 * settings.latency_allowance_s))


async def _one(client: LLMClient, conv: ConversationInput) -> FacetResult | FailedItem | BudgetExceeded:
    try:
        return await analyze_facets(client, conv)
    except BudgetExceeded as stop:  # the run's budget refused the call's reservation: skipped, not failed
        return stop
    except LLMCallFailed as error:
        return FailedItem(conv.conversation_id, error.error_class, error.detail, error.attempts, error.usages)
    except Exception as error:  # noqa: BLE001 - an unexpected error must dead-letter, not vanish
        logger.warning("facets for %s failed: %s", conv.conversation_id, type(error).__name__)
        return FailedItem(conv.conversation_id, type(error).__name__, "unexpected error", 0, ())


def _spent(usages: Iterable[CallUsage], prices: Mapping[str, ModelPrice]) -> float:
    return sum(u.cost(prices) or 0.0 for u in usages)


async def analyze_batch(
    client: LLMClient,
    conversations: Iterable[ConversationInput],
    cache: FacetCache | None = None,
    max_in_flight: int | None = None,
) -> BatchReport:
    """Facets for every conversation; see the module docstring for the guarantees."""
    settings = client.settings
    limit = max_in_flight or default_in_flight(settings)
    model = settings.models.facets
    report = BatchReport()
    spent = 0.0
    pending: set[asyncio.Task[FacetResult | FailedItem | BudgetExceeded]] = set()
    started: dict[asyncio.Task[FacetResult | FailedItem | BudgetExceeded], str] = {}
    items = iter(conversations)
    exhausted = False
    while True:
        while not exhausted and report.stopped_reason is None and len(pending) < limit:
            conv = next(items, None)
            if conv is None:
                exhausted = True
                break
            key = facet_input_hash(conv, model)
            if cache is not None and cache.get(key) is not None:
                report.cached.append(conv.conversation_id)
                continue
            try:
                check_budget(spent, settings.run_budget)
            except BudgetExceeded as stop:
                report.stopped_reason = str(stop)
                report.skipped.append(conv.conversation_id)
                break
            task = asyncio.create_task(_one(client, conv))
            started[task] = conv.conversation_id
            pending.add(task)
        if not pending:
            break
        finished, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
        for task in finished:
            outcome = task.result()
            if isinstance(outcome, BudgetExceeded):
                report.stopped_reason = report.stopped_reason or str(outcome)
                report.skipped.append(started[task])
                continue
            spent += _spent(outcome.usages, settings.prices)
            if isinstance(outcome, FailedItem):
                report.failed.append(outcome)
            else:
                report.done.append(outcome)
                if cache is not None:
                    cache.put(outcome.input_hash, outcome.facets)
    if report.stopped_reason is not None:
        report.skipped.extend(conv.conversation_id for conv in items)
    return report
