"""Sync correctness against the stand-in: completeness under faults and concurrent updates,
incremental sync, deletions, dead letters, and interruption at random points."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace

import pytest
from threadline_testing.intercom import WorkspaceSpec
from threadline_testing.sinks import MemorySink

from threadline.connectors.intercom.client import intercom_retry_policy
from threadline.connectors.intercom.sync import IntercomSync
from threadline.connectors.store import content_hash

FAST = {"retry_policy": replace(intercom_retry_policy(), base_s=0.01, cap_s=0.05)}  # keep retry waits short in tests
ROOMY = {"window_seconds": 1, "limit_per_window": 1000}  # a limit that never binds


def run(coro):
    return asyncio.run(coro)


def truth(standin) -> dict[str, int]:
    return {cid: c.updated_at for cid, c in standin.workspace.conversations.items()}


def stored(sink: MemorySink) -> dict[str, int]:
    return {cid: int(sink.records[cid].updated_at.timestamp()) for cid in sink.live_ids()}


async def sync_once(standin, sink, **kwargs):
    async with standin.client(**FAST) as client:
        return await IntercomSync(client, sink).run(**kwargs)


def test_backfill_complete_under_faults_and_updates_while_paging(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=500, seed=11, deleted=5, huge_conversation_share=0.01),
        window_seconds=1,
        limit_per_window=400,
        error_500_share=0.05,
        error_429_share=0.02,
        mutations_per_search_page=3,
        mutation_budget=10,
        fault_seed=11,
    )
    sink = MemorySink()
    report = run(sync_once(standin, sink))
    assert standin.stats.mutations == 10 and standin.stats.injected_500 > 0
    # Nothing missing; at most the records updated during the final catch-up pass's own paging
    # (the stand-in mutates while it pages) may still be stale: they are past this sync's end.
    got, expected = stored(sink), truth(standin)
    assert set(got) == set(expected)
    stale = {cid for cid in expected if got[cid] != expected[cid]}
    assert len(stale) <= 3, stale  # mutations_per_search_page
    # A sync reads `updated_at < now` in whole seconds, so a record changed in the second the next
    # sync starts belongs to the sync after it; start the next one once that second has passed.
    newest = max(truth(standin).values())
    while int(time.time()) <= newest:
        time.sleep(0.05)
    run(sync_once(standin, sink))  # the next incremental sync picks those up
    assert stored(sink) == truth(standin)  # nothing missing, nothing stale
    assert sink.writes <= len(truth(standin)) + standin.stats.mutations  # a conversation is written once per version
    assert report.dead_lettered == 0 and not sink.dead_letters
    assert set(sink.deleted) == set(standin.workspace.deleted)
    assert standin.stats.limit_429 == 0


def test_plain_cursor_following_skips_records_the_sync_does_not(make_standin) -> None:
    """Why the sync re-anchors: following Intercom's stateless cursors skips moved records."""
    standin = make_standin(
        WorkspaceSpec(conversations=600, seed=12), **ROOMY, mutations_per_search_page=5, mutation_budget=20
    )
    before = truth(standin)
    until = int(time.time())

    async def follow_cursors():
        seen, cursor = set(), None
        async with standin.client(**FAST) as client:
            while True:
                page = await client.search_conversations("updated_at", 0, until, starting_after=cursor)
                seen |= {c["id"] for c in page["conversations"]}
                cursor = (page["pages"].get("next") or {}).get("starting_after")
                if not cursor:
                    return seen

    seen = run(follow_cursors())
    untouched = {cid for cid, t in truth(standin).items() if before[cid] == t}
    assert untouched - seen, "the stand-in should reproduce Intercom's skipped records"

    sink = MemorySink()
    run(sync_once(standin, sink))
    assert stored(sink) == truth(standin)


def test_more_than_a_page_within_one_second(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=700, seed=13, span_seconds=2, part_gap_seconds=1, max_parts=1), **ROOMY
    )
    per_second = {}
    for t in truth(standin).values():
        per_second[t] = per_second.get(t, 0) + 1
    assert max(per_second.values()) > 150
    sink = MemorySink()
    run(sync_once(standin, sink))
    assert stored(sink) == truth(standin)


def test_incremental_sync_fetches_changes_and_deletions_only(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=200, seed=14), **ROOMY)
    sink = MemorySink()
    first = run(sync_once(standin, sink))
    assert first.written == 200 and sink.state["watermark"] >= int(time.time()) - 5
    ws = standin.workspace
    ids = sorted(ws.conversations)
    now = int(time.time())
    for cid in ids[:3]:
        ws.touch(cid, now)
    for cid in ids[3:5]:
        ws.delete(cid, now)
    time.sleep(1.1)  # a sync reads up to the current second, exclusive
    second = run(sync_once(standin, sink))
    assert second.written == 3 and second.deleted == 2
    assert stored(sink) == truth(standin)
    third = run(sync_once(standin, sink))
    assert third.fetched == 0  # the overlap re-reads recent hits, but stored versions are not fetched again


def test_created_at_range_backfill_bounds(make_standin) -> None:
    standin = make_standin(WorkspaceSpec(conversations=300, seed=15), **ROOMY)
    created = sorted(c.created_at for c in standin.workspace.conversations.values())
    since, until = created[40], created[200]
    sink = MemorySink()

    async def go():
        async with standin.client(**FAST) as client:
            return await IntercomSync(client, sink, field="created_at").run(since=since, until=until)

    run(go())
    expected = {cid for cid, c in standin.workspace.conversations.items() if since <= c.created_at < until}
    assert set(sink.records) == expected
    assert "watermark" not in sink.state


def test_persistent_detail_failure_dead_letters_then_retries(make_standin) -> None:
    standin = make_standin(
        WorkspaceSpec(conversations=120, seed=16), **ROOMY, failing_conversation_ids=frozenset({"100003", "100007"})
    )
    sink = MemorySink()
    report = run(sync_once(standin, sink))
    assert report.dead_lettered == 2
    assert sorted(d.item for d in sink.dead_letters) == ["100003", "100007"]
    assert all(d.error_class == "IntercomError" and d.attempts > 1 for d in sink.dead_letters)
    assert sink.state["retry_ids"] == ["100003", "100007"]
    assert set(sink.records) == set(truth(standin)) - {"100003", "100007"}

    standin.config.failing_conversation_ids = frozenset()
    run(sync_once(standin, sink))
    assert sink.state["retry_ids"] == []
    assert stored(sink) == truth(standin)


class _CancelAfter:
    """ASGI wrapper that cancels the sync task when the n-th request arrives (a random kill point)."""

    def __init__(self, app, n: int) -> None:
        self.app, self.n, self.count, self.task = app, n, 0, None

    async def __call__(self, scope, receive, send):
        self.count += 1
        if self.count == self.n and self.task is not None:
            self.task.cancel()
        await self.app(scope, receive, send)


@pytest.mark.parametrize("seed", [1, 2, 3, 4, 5])
def test_interrupted_sync_ends_identical_to_uninterrupted(make_standin, seed) -> None:
    spec = WorkspaceSpec(conversations=160, seed=seed, deleted=4, merged_contact_share=0.2)
    faults = dict(window_seconds=1, limit_per_window=1000, error_500_share=0.05, fault_seed=seed)
    baseline_standin = make_standin(spec, **faults)
    baseline = MemorySink()
    run(sync_once(baseline_standin, baseline))

    standin = make_standin(spec, **faults)
    sink = MemorySink()
    rng = random.Random(seed)
    interruptions = 0

    async def attempt(n: int) -> bool:
        import httpx

        from threadline.connectors.intercom.client import IntercomClient

        wrapper = _CancelAfter(standin.checked, n)
        async with IntercomClient(
            standin.token, base_url="https://api.intercom.io", transport=httpx.ASGITransport(app=wrapper), **FAST
        ) as client:
            task = asyncio.create_task(IntercomSync(client, sink).run())
            wrapper.task = task
            try:
                await task
                return True
            except asyncio.CancelledError:
                return False

    kill_points = [rng.randint(1, 120) for _ in range(3)] + [10**9]  # three random kills, then run to the end
    for n in kill_points:
        if run(attempt(n)):
            break
        interruptions += 1
    else:
        pytest.fail("sync never completed")
    assert interruptions >= 1
    assert sink.live_ids() == baseline.live_ids()
    assert {cid: content_hash(sink.records[cid]) for cid in sink.live_ids()} == {
        cid: content_hash(baseline.records[cid]) for cid in baseline.live_ids()
    }
    assert set(sink.deleted) == set(baseline.deleted)
