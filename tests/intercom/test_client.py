"""The async client against the stand-in: pacing, retries, auth, contacts, regions, secrecy."""

from __future__ import annotations

import asyncio
import logging
import time

import pytest
from threadline_testing.intercom import WorkspaceSpec

from threadline.config import get_settings
from threadline.connectors.intercom.client import (
    IntercomAuthError,
    IntercomError,
    base_url_for,
    resolve_token,
)


def run(coro):
    return asyncio.run(coro)


def test_regions_and_token_resolution(monkeypatch) -> None:
    assert base_url_for("us") == "https://api.intercom.io"
    assert base_url_for("EU") == "https://api.eu.intercom.io"
    assert base_url_for("au") == "https://api.au.intercom.io"
    with pytest.raises(ValueError):
        base_url_for("mars")
    monkeypatch.setenv("MY_INTERCOM_TOKEN", "secret-from-env")
    assert resolve_token(token_env="MY_INTERCOM_TOKEN") == "secret-from-env"
    monkeypatch.delenv("MY_INTERCOM_TOKEN")
    with pytest.raises(IntercomAuthError, match="MY_INTERCOM_TOKEN"):
        resolve_token(token_env="MY_INTERCOM_TOKEN")


def test_pacing_fills_windows_without_429(make_standin) -> None:
    """120 concurrent calls at 40 per 1-second window: no 429, and close to the allowed rate."""
    standin = make_standin(WorkspaceSpec(conversations=3), window_seconds=1, limit_per_window=40)

    async def go():
        async with standin.client() as client:
            start = time.monotonic()
            await asyncio.gather(*(client.me() for _ in range(120)))
            return time.monotonic() - start

    elapsed = run(go())
    stats = standin.stats
    assert stats.limit_429 == 0
    assert max(stats.per_window.values()) <= 40
    assert elapsed >= 2.0  # 120 calls cannot fit in fewer than three 40-call windows
    full_windows = sorted(stats.per_window)[1:-1]  # first and last windows are partial
    assert full_windows and min(stats.per_window[w] for w in full_windows) >= 0.8 * 40
    assert stats.versions == {"2.16": 120}


def test_retries_injected_faults(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=3),
        window_seconds=1,
        limit_per_window=1000,
        error_500_share=0.2,
        error_429_share=0.1,
        fault_seed=4,
    )

    async def go():
        async with standin.client() as client:
            await asyncio.gather(*(client.me() for _ in range(60)))
            return client.stats

    stats = run(go())
    assert standin.stats.injected_500 > 0 and standin.stats.injected_429 > 0
    assert stats["server_errors"] == standin.stats.injected_500
    assert stats["rate_limited"] == standin.stats.injected_429
    assert standin.stats.by_status[200] == 60


def test_persistent_failure_is_bounded_and_never_leaks_the_token(make_standin, caplog) -> None:
    standin = make_standin(WorkspaceSpec(conversations=5), failing_conversation_ids=frozenset({"100001"}))
    caplog.set_level(logging.DEBUG)

    async def go():
        async with standin.client() as client:
            with pytest.raises(IntercomError) as info:
                await client.get_conversation("100001")
            return client, info.value

    client, error = run(go())
    attempts = get_settings().intercom.max_attempts
    assert error.status == 500 and error.attempts == attempts
    assert standin.stats.by_route["retrieve"] == attempts
    for text in (str(error), repr(error), repr(client), caplog.text):
        assert standin.token not in text


def test_bad_token_fails_fast(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=5))

    async def go():
        async with standin.client(token="not-the-token") as client:
            await client.me()

    with pytest.raises(IntercomAuthError) as info:
        run(go())
    assert info.value.status == 401 and info.value.attempts == 1
    assert "not-the-token" not in str(info.value)


def test_contacts_follow_merges_and_report_missing(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=200, seed=1, merged_contact_share=0.3, missing_contact_share=0.2)
    )
    ws = standin.workspace
    merged = next(cid for cid, target in ws.merged_into.items() if target not in ws.merged_into)
    missing = next(iter(ws.missing_contacts))

    async def go():
        async with standin.client() as client:
            return await client.get_contact(merged), await client.get_contact(missing)

    (followed, notes), (absent, absent_notes) = run(go())
    assert followed["id"] == ws.merged_into[merged]
    assert notes == [f"contact {merged} merged into {ws.merged_into[merged]}"]
    assert absent is None and "404" in absent_notes[0]


def test_search_page_is_the_documented_shape(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=400, seed=2))
    ws = standin.workspace
    stamps = sorted(c.created_at for c in ws.conversations.values())

    async def go():
        async with standin.client() as client:
            return await client.search_conversations("created_at", stamps[10], stamps[300])

    page = run(go())
    assert len(page["conversations"]) == 150
    assert page["conversations"][0]["created_at"] == stamps[10]
    assert page["pages"]["next"]["starting_after"]
