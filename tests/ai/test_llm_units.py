"""Pure pieces: cost aggregation, budget check, strict schemas, scrubbing, fault draws."""

from __future__ import annotations

from typing import Any

import pytest
from threadline_testing.openai.config import StandinConfig
from threadline_testing.openai.faults import Fault, FaultPlan
from threadline_testing.openai.limits import format_duration

from threadline.ai.llm import BudgetExceeded, CallUsage, ModelPrice, check_budget, summarize
from threadline.ai.llm.privacy import REDACTED, scrub
from threadline.ai.llm.schemas import FacetsOut, StoryOut, strict_json_schema


def test_cost_is_aggregated_per_stage_and_run_from_returned_usages() -> None:
    prices = {"m": ModelPrice(input_per_million=1.0, output_per_million=4.0)}
    usages = [
        CallUsage("facets", "m", 1_000_000, 0),
        CallUsage("facets", "m", 0, 500_000),
        CallUsage("stories", "m", 500_000, 250_000),
        CallUsage("stories", "unpriced-model", 10, 10),
    ]
    summary = summarize(usages, prices)
    assert summary.stages["facets"].cost == pytest.approx(3.0)
    assert summary.stages["stories"].cost == pytest.approx(1.5)
    assert summary.stages["stories"].unpriced_calls == 1
    assert summary.total.calls == 4
    assert summary.total.input_tokens == 1_500_010
    assert summary.total.cost == pytest.approx(4.5)
    assert summary.as_dict()["total"]["output_tokens"] == 750_010  # type: ignore[index]


def test_budget_check_raises_with_a_message() -> None:
    check_budget(0.99, 1.0)
    check_budget(100.0, None)
    with pytest.raises(BudgetExceeded, match="budget reached: spent 1.0000 of 1.0000"):
        check_budget(1.0, 1.0)


def _objects(node: Any) -> list[dict[str, Any]]:
    found = []
    if isinstance(node, dict):
        if node.get("type") == "object":
            found.append(node)
        for value in node.values():
            found.extend(_objects(value))
    elif isinstance(node, list):
        for item in node:
            found.extend(_objects(item))
    return found


@pytest.mark.parametrize("model", [FacetsOut, StoryOut])
def test_strict_schemas_close_every_object_and_require_every_property(model: Any) -> None:
    objects = _objects(strict_json_schema(model))
    assert objects
    for obj in objects:
        assert obj["additionalProperties"] is False
        assert set(obj["required"]) == set(obj["properties"])


@pytest.mark.parametrize(
    ("text", "secret"),
    [
        ("Write to jo.b+x@mail.example.org today", "jo.b+x@mail.example.org"),
        ("Call me on +1 (415) 555-0134", "555-0134"),
        ("Order #448812 is late", "448812"),
        ("my booking ref XK9Q27 failed", "XK9Q27"),
        ("Ms. Okafor said hi", "Okafor"),
        ("card 4111 1111 1111 1111 declined", "4111"),
    ],
)
def test_scrub_removes_personal_data(text: str, secret: str) -> None:
    cleaned = scrub(text)
    assert secret not in cleaned and REDACTED in cleaned


def test_scrub_keeps_ordinary_words() -> None:
    text = "Refunds for the account settings page are slow."
    assert scrub(text) == text


def test_fault_draws_are_deterministic_by_seed_and_fresh_per_retry() -> None:
    config = StandinConfig(error_500_rate=0.5, latency_min_seconds=1, latency_max_seconds=4, seed=3)
    first, second = FaultPlan(config), FaultPlan(config)
    bodies = [f"request {i}".encode() for i in range(200)]
    draws = [first.draw(b) for b in bodies]
    assert draws == [second.draw(b) for b in bodies]
    assert 60 <= sum(d.fault is Fault.ERROR_500 for d in draws) <= 140
    assert all(1 <= d.latency_seconds <= 4 for d in draws)
    # The same body again is a new occurrence with an independent draw.
    retries = [first.draw(bodies[0]).fault for _ in range(40)]
    assert Fault.NONE in retries and Fault.ERROR_500 in retries


@pytest.mark.parametrize(("seconds", "text"), [(0.02, "20ms"), (1.0, "1s"), (17.28, "17.28s"), (360.0, "6m0s")])
def test_reset_headers_use_openai_duration_format(seconds: float, text: str) -> None:
    assert format_duration(seconds) == text
