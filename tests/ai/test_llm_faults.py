"""Fault test: 5% 500s, 2% malformed JSON, 1% hangs -> every item done or failed, bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from llm_helpers import RunningStandin, client_for

from threadline.ai.llm import analyze_batch
from threadline.ai.llm.facets import conversation_input

ITEMS = 300  # conversations: enough for every fault kind to occur several times
MAX_ATTEMPTS = 4  # calls per logical call in this test
READ_TIMEOUT_SECONDS = 0.5  # s: well above the 10-40 ms latency, far below the 3 s hang


@pytest.mark.slow
def test_every_item_is_done_or_failed_with_bounded_retries(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = standin_factory(
        requests_per_minute=60_000,
        tokens_per_minute=20_000_000,
        latency_min_seconds=0.01,
        latency_max_seconds=0.04,
        error_500_rate=0.05,
        malformed_json_rate=0.02,
        hang_rate=0.01,
        hang_seconds=3.0,
        seed=7,
    )
    conversations = [
        conversation_input(f"c{i}", [(f"m{i}", "customer", f"Payment {i} failed twice.")]) for i in range(ITEMS)
    ]

    async def run() -> None:
        async with client_for(server, max_attempts=MAX_ATTEMPTS, timeout_seconds=READ_TIMEOUT_SECONDS) as client:
            report = await analyze_batch(client, conversations)
        assert len(report.done) + len(report.failed) == ITEMS  # nothing lost
        assert not report.skipped and not report.cached
        ids = {r.conversation_id for r in report.done} | {f.conversation_id for f in report.failed}
        assert ids == {c.conversation_id for c in conversations}
        for failure in report.failed:  # dead-letter candidates carry class and attempts
            assert failure.error_class and failure.attempts <= 2 * MAX_ATTEMPTS
        for result in report.done:
            assert result.attempts <= 2 * MAX_ATTEMPTS
        # With independent 8% faults, 4 attempts almost always succeed.
        assert len(report.done) >= ITEMS * 0.97
        retried = sum(1 for r in report.done if r.attempts > 1)
        assert retried >= ITEMS * 0.03  # faults really happened and were retried

    asyncio.run(run())
    counters = server.state.counters
    assert counters["fault_error_500"] > 0
    assert counters["fault_malformed_json"] > 0
    assert counters["fault_hang"] > 0
    assert counters["requests"] <= ITEMS * 2 * MAX_ATTEMPTS
