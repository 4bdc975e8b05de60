"""Sync correctness against the Zendesk stand-in: completeness under faults and tickets changing
while paging, incremental sync, deletions, merges, dead letters, and cancellation at random points."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from threadline_testing.sinks import MemorySink
from threadline_testing.zendesk import AccountSpec

from threadline.config import ZendeskSettings
from threadline.connectors.store import content_hash
from threadline.connectors.zendesk.client import ExportSpacer
from threadline.connectors.zendesk.sync import ZendeskSync

SMALL_PAGES = ZendeskSettings(export_page_size=50, commit_chunk_size=10)  # several export pages per test


def run(coro):
    return asyncio.run(coro)


def spacer() -> ExportSpacer:
    return ExportSpacer(1_000, 1.0)  # the export limit scaled out of the way (its own test checks it)


def truth(standin) -> dict[str, int]:
    """Live tickets (not deleted, not merged away) -> updated_at."""
    acc = standin.account
    return {
        str(tid): t.updated_at
        for tid, t in acc.tickets.items()
        if tid not in acc.deleted and tid not in acc.merged_into
    }


def stored(sink: MemorySink) -> dict[str, int]:
    return {cid: int(sink.records[cid].updated_at.timestamp()) for cid in sink.live_ids()}


async def sync_once(standin, sink, limits=SMALL_PAGES, **kwargs):
    async with standin.client(export_spacer=spacer()) as client:
        return await ZendeskSync(client, sink, limits=limits).run(**kwargs)


def test_backfill_complete_under_faults_and_changes_while_paging(make_standin) -> None:
    standin = make_standin(
        AccountSpec(tickets=500, seed=11, deleted=5, merged=4, long_ticket_share=0.01),
        requests_per_window=600,
        error_500_share=0.05,
        error_429_share=0.02,
        mutations_per_export_page=3,
        mutation_budget=12,
        fault_seed=11,
    )
    sink = MemorySink()
    report = run(sync_once(standin, sink))
    stats = standin.stats
    assert stats.mutations == 12 and stats.injected_500 > 0 and stats.injected_429 > 0
    # The cursor export re-delivers a ticket changed while paging, so nothing is missing or stale.
    assert stored(sink) == truth(standin)
    assert sink.duplicate_writes() == 0
    assert report.dead_lettered == 0 and not sink.dead_letters
    assert set(sink.deleted) == {str(t) for t in (*standin.account.deleted, *standin.account.merged_into)}
    assert report.fetched == report.written + report.dead_lettered + report.gone
    long = [
        t for t in standin.account.tickets.values() if len(t.comments) > 100 and t.id not in standin.account.deleted
    ]
    assert long and all(
        len(sink.records[str(t.id)].messages) == len(t.comments) for t in long
    )  # comment pages followed
    assert stats.limit_429 == 0  # the pacer kept within the account budget


def test_incremental_sync_picks_up_changes_new_tickets_comments_and_deletions(make_standin) -> None:
    standin = make_standin(AccountSpec(tickets=120, seed=14))
    sink = MemorySink()
    first = run(sync_once(standin, sink))
    assert first.written == 120 and sink.state["cursor"] and sink.state["watermark"] > 0
    acc = standin.account
    now = int(time.time())
    ids = sorted(acc.tickets)
    acc.touch(ids[0], now)
    acc.add_comment(ids[1], now, text="A new reply from the customer")
    acc.add_comment(ids[2], now, public=False, from_requester=False, text="An internal note")
    acc.delete(ids[3], now)
    acc._generate_ticket(10_000, random.Random(5))  # a new ticket
    acc.tickets[10_000].generated_timestamp = acc.tickets[10_000].updated_at = now
    second = run(sync_once(standin, sink))
    assert second.written == 4 and second.deleted == 1 and second.tickets == 5
    assert stored(sink) == truth(standin)
    assert sink.records[str(ids[1])].messages[-1].text == "A new reply from the customer"
    assert sink.records[str(ids[1])].messages[-1].author_role == "customer"
    assert sink.records[str(ids[2])].messages[-1].author_role == "note"
    assert "touched" in sink.records[str(ids[0])].tags
    third = run(sync_once(standin, sink))
    assert third.fetched == 0 and third.tickets == 0  # the cursor resumes after what was committed


def test_merge_after_first_sync_marks_source_merged_and_updates_target(make_standin) -> None:
    standin = make_standin(AccountSpec(tickets=40, seed=15))
    sink = MemorySink()
    run(sync_once(standin, sink))
    standin.account.merge(7, 9, int(time.time()))
    report = run(sync_once(standin, sink))
    assert report.merged == 1 and "7" in sink.deleted and "7" not in sink.live_ids()
    source = sink.records["7"]
    assert source.state == "merged" and "closed and merged into ticket 9" in source.notes
    target = sink.records["9"]
    assert (
        target.messages[-1].author_role == "note"
        and "was closed and merged into this request" in target.messages[-1].text
    )


def test_persistent_comment_failure_dead_letters_then_retries(make_standin) -> None:
    standin = make_standin(AccountSpec(tickets=60, seed=16), failing_ticket_ids=frozenset({3, 7}))
    sink = MemorySink()
    report = run(sync_once(standin, sink))
    assert report.dead_lettered == 2
    assert sorted(d.item for d in sink.dead_letters) == ["3", "7"]
    assert all(
        d.stage == "ingest.zendesk" and d.error_class == "ZendeskError" and d.attempts > 1 for d in sink.dead_letters
    )
    assert (
        sink.state["retry_ids"] == ["3", "7"] and sink.state["cursor"]
    )  # the cursor moved on; the retry list remembers
    standin.config.failing_ticket_ids = frozenset()
    second = run(sync_once(standin, sink))
    assert second.written == 2 and sink.state["retry_ids"] == []
    assert stored(sink) == truth(standin)


def test_export_requests_are_spaced_to_the_export_limit(make_standin) -> None:
    """10 export requests per (scaled) window: the spacer keeps the client inside it, no 429."""
    standin = make_standin(AccountSpec(tickets=300, seed=17, max_comments=1), export_requests_per_window=5)
    sink = MemorySink()

    async def go():
        async with standin.client(export_spacer=ExportSpacer(5, 1.0)) as client:
            return await ZendeskSync(client, sink, limits=ZendeskSettings(export_page_size=20)).run()

    report = run(go())
    assert report.export_pages == 15 and standin.stats.export_limit_429 == 0
    assert max(standin.stats.export_per_window.values()) <= 5
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


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_cancelled_sync_ends_identical_to_uninterrupted(make_standin, seed) -> None:
    spec = AccountSpec(tickets=160, seed=seed, deleted=4, merged=3)
    faults = dict(error_500_share=0.05, fault_seed=seed)
    baseline_standin = make_standin(spec, **faults)
    baseline = MemorySink()
    run(sync_once(baseline_standin, baseline))

    standin = make_standin(spec, **faults)
    sink = MemorySink()
    rng = random.Random(seed)
    interruptions = 0

    async def attempt(n: int) -> bool:
        wrapper = _CancelAfter(standin.app, n)
        async with standin.client(app=wrapper, export_spacer=spacer()) as client:
            task = asyncio.create_task(ZendeskSync(client, sink, limits=SMALL_PAGES).run())
            wrapper.task = task
            try:
                await task
                return True
            except asyncio.CancelledError:
                return False

    for n in [rng.randint(2, 40) for _ in range(3)] + [
        10**9
    ]:  # three random kills (each within its attempt), then to the end
        if run(attempt(n)):
            break
        interruptions += 1
    assert interruptions == 3
    assert sink.live_ids() == baseline.live_ids()
    assert {cid: content_hash(sink.records[cid]) for cid in sink.live_ids()} == {
        cid: content_hash(baseline.records[cid]) for cid in baseline.live_ids()
    }
    assert set(sink.deleted) == set(baseline.deleted)
    assert sink.state["cursor"] == baseline.state["cursor"]
