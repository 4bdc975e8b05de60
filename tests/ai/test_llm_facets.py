"""Facets: verbatim quotes, privacy scrubbing, cached reruns make zero calls, budget stop."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from llm_helpers import KEY_ENV, RunningStandin, client_for, settings_for
from threadline_testing.facet_cache import InMemoryFacetCache

from threadline.ai.llm import (
    LLMClient,
    LLMSettings,
    ModelPrice,
    analyze_batch,
    analyze_facets,
    facet_input_hash,
    llm_enabled,
    summarize,
)
from threadline.ai.llm.facets import conversation_input
from threadline.ai.llm.quotes import QuoteCandidate, verify_quotes

MESSAGES = [("m1", "The app   crashes\nwhen I open it."), ("m2", "It still CRASHES today.")]


def test_quote_verification_allows_only_whitespace_differences() -> None:
    check = verify_quotes(
        [
            QuoteCandidate("m1", "The app crashes when I open it."),  # whitespace only: kept
            QuoteCandidate("m1", "the app crashes when I open it."),  # case changed: dropped
            QuoteCandidate("m1", "It still CRASHES today."),  # wrong message: re-attributed
            QuoteCandidate("m2", "It still crashes today."),  # case changed: dropped
            QuoteCandidate("m1", "The app crashes when I opened it."),  # paraphrase: dropped
            QuoteCandidate("m1", "app"),  # too short to be evidence: dropped
            QuoteCandidate("m9", "The app crashes when I open it."),  # duplicate: dropped
        ],
        MESSAGES,
    )
    assert [(q.message_id, q.text) for q in check.kept] == [
        ("m1", "The app crashes when I open it."),
        ("m2", "It still CRASHES today."),
    ]
    assert (check.dropped_not_found, check.dropped_too_short) == (3, 1)
    assert check.dropped == 5


def test_fabricated_quotes_from_the_model_are_dropped_and_counted(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = standin_factory(fabricated_quote_rate=1.0)
    conv = conversation_input("c1", [("m1", "customer", "My card was declined at the shop.")])

    async def run() -> None:
        async with client_for(server) as client:
            result = await analyze_facets(client, conv)
        assert [q.text for q in result.facets.quotes] == ["My card was declined at the shop."]
        assert result.facets.quotes_dropped == 1

    asyncio.run(run())


def test_summary_is_scrubbed_of_personal_data(standin: RunningStandin) -> None:
    text = "Hi, I'm Dana Whitfield, dana.w@example.com, order #88123 never arrived."
    conv = conversation_input("c1", [("m1", "customer", text)], known_names=["Dana Whitfield"])

    async def run() -> None:
        async with client_for(standin) as client:
            facets = (await analyze_facets(client, conv)).facets
        for secret in ("Dana", "Whitfield", "dana.w@example.com", "88123"):
            assert secret not in facets.summary
            assert secret not in facets.customer_problem
        assert facets.quotes and facets.quotes[0].text in text  # evidence stays verbatim

    asyncio.run(run())


def _conversations(count: int) -> list:
    return [
        conversation_input(f"c{i}", [(f"m{i}", "customer", f"Transfer number {i} is stuck.")]) for i in range(count)
    ]


def test_cached_rerun_makes_zero_calls(standin: RunningStandin) -> None:
    conversations = _conversations(12)
    cache = InMemoryFacetCache()

    async def run() -> tuple[int, int]:
        async with client_for(standin) as client:
            first = await analyze_batch(client, conversations, cache)
            calls_after_first = standin.state.counters["requests"]
            second = await analyze_batch(client, conversations, cache)
        assert len(first.done) == 12 and not first.failed
        assert len(second.cached) == 12 and not second.done and not second.usages
        return calls_after_first, standin.state.counters["requests"]

    after_first, after_second = asyncio.run(run())
    assert after_first == 12
    assert after_second == after_first  # the rerun made zero calls
    # A different model is a different key: it would recompute.
    assert facet_input_hash(conversations[0], "other-model") != facet_input_hash(conversations[0], "gpt-4o-mini")


def test_budget_stops_the_run_cleanly_and_accounts_for_every_item(
    standin: RunningStandin,
) -> None:
    conversations = _conversations(40)
    prices = {"gpt-4o-mini": ModelPrice(input_per_million=1000.0, output_per_million=1000.0)}

    async def run() -> None:
        # ~250 tokens per call at 1,000 per million = 0.25 per call; budget 1.0 -> ~4 calls
        # before the stop, plus whatever was in flight.
        async with client_for(standin, prices=prices, run_budget=1.0) as client:
            report = await analyze_batch(client, conversations, max_in_flight=2)
        assert report.stopped_reason is not None and "budget reached" in report.stopped_reason
        assert report.accounted == 40
        assert 4 <= len(report.done) <= 8
        assert len(report.skipped) == 40 - len(report.done) - len(report.failed)
        summary = summarize(report.usages, prices)
        assert summary.stages["facets"].calls == len(report.done)
        assert summary.total.cost >= 1.0
        assert summary.total.input_tokens > 0 and summary.total.output_tokens > 0

    asyncio.run(run())


def test_json_object_mode_with_validation_works(standin: RunningStandin) -> None:
    conv = conversation_input("c1", [("m1", "customer", "How do I reset my password?")])

    async def run() -> None:
        async with client_for(standin, structured_mode="json_object") as client:
            facets = (await analyze_facets(client, conv)).facets
        assert facets.conversation_type == "account_access"

    asyncio.run(run())


def test_no_key_means_offline() -> None:
    settings = LLMSettings(api_key_env="THREADLINE_TEST_UNSET_KEY")
    assert llm_enabled(settings, environ={}) is False
    assert llm_enabled(None) is False
    assert llm_enabled(settings, environ={"THREADLINE_TEST_UNSET_KEY": "sk-x"}) is True


@pytest.mark.parametrize(
    ("mode", "fault"),
    [
        ("json_schema", "malformed_json_rate"),
        ("json_object", "malformed_json_rate"),
        ("json_schema", "truncated_json_rate"),
    ],
)
def test_invalid_replies_get_one_repair_then_fail_bounded(
    standin_factory: Callable[..., RunningStandin], mode: str, fault: str
) -> None:
    server = standin_factory(**{fault: 1.0})
    conv = conversation_input("c1", [("m1", "customer", "Card declined.")])

    async def run() -> None:
        async with client_for(server, structured_mode=mode) as client:
            report = await analyze_batch(client, [conv])
        assert not report.done and len(report.failed) == 1
        failure = report.failed[0]
        assert failure.error_class == "InvalidModelOutput"
        assert failure.attempts == 2  # the call and its one repair

    asyncio.run(run())
    assert server.state.counters["requests"] == 2


def test_analysis_record_carries_the_cache_key_and_usage(standin: RunningStandin) -> None:
    conv = conversation_input("c9", [("m1", "customer", "The export button is missing.")])

    async def run() -> None:
        async with client_for(standin) as client:
            record = (await analyze_facets(client, conv)).analysis_record()
        assert record["conversation_id"] == "c9" and record["stage"] == "facets"
        assert record["input_hash"] == facet_input_hash(conv, "gpt-4o-mini")
        assert record["version"] == "facets-v1"
        assert record["output"]["quotes"][0]["text"] == "The export button is missing."
        assert record["usage"][0]["input_tokens"] > 0

    asyncio.run(run())


def test_non_retryable_errors_fail_at_once(standin: RunningStandin) -> None:
    conv = conversation_input("c1", [("m1", "customer", "Card declined.")])

    async def run() -> None:
        settings = settings_for(standin)
        client = LLMClient.from_settings(settings, environ={KEY_ENV: "wrong-key"})
        async with client:
            report = await analyze_batch(client, [conv])
        assert [f.error_class for f in report.failed] == ["AuthenticationError"]
        assert report.failed[0].attempts == 1  # a 401 is not retried

    asyncio.run(run())
    assert standin.state.counters["requests"] == 0  # refused before admission
