"""Intercom sync: date-range backfill and incremental sync on an `updated_at` watermark.

How a pass works (`since <= updated_at < until`, ascending):
- Each search page is a fresh query anchored at the highest `updated_at` seen so far
  (keyset pagination). Intercom's cursors are stateless offsets: when a conversation earlier
  in the order is updated mid-paging it moves to the end, every later record shifts one place
  up, and plain cursor-following silently skips one record per move (the stand-in reproduces
  this and a test demonstrates it). Re-anchoring cannot skip: updated_at only grows, so no
  record can move below the anchor. The `starting_after` cursor is still followed when a page
  makes no progress (more than a page of records share one second).
- Hits are deduplicated by (id, updated_at) against this sync and against what the sink has
  already stored; the rest are fetched in detail (with their contact) concurrently, bounded by
  the client's concurrency and rate limiter.
- Pages are committed in order, each in one transaction together with the new watermark, so the
  watermark only covers committed data. A sync cancelled or killed at any point restarts from
  the last committed page; the overlap window re-reads the edge.
- A conversation whose detail fetch fails for good becomes a dead letter and is remembered in
  the sync state (`retry_ids`) so the next sync tries it again; it does not fail the sync.
- After the range pass, catch-up passes pick up conversations updated while we were paging
  (they moved past `until`), then deletions come from GET /conversations/deleted.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from threadline.config import IntercomSettings, get_settings
from threadline.connectors.base import DeadLetter, SyncBatch, SyncSink
from threadline.connectors.intercom import mapping
from threadline.connectors.intercom.client import IntercomAuthError, IntercomClient, IntercomError
from threadline.connectors.records import ContactRecord, ConversationRecord

logger = logging.getLogger(__name__)

STATE_VERSION = 1  # layout of the JSON sync state
DEAD_LETTER_STAGE = "ingest.intercom"


@dataclass
class SyncReport:
    """Counters of one sync run (they add up: fetched = written + dead_lettered + gone)."""

    search_pages: int = 0
    hits: int = 0
    duplicates: int = 0
    unchanged: int = 0
    fetched: int = 0
    written: int = 0
    gone: int = 0
    dead_lettered: int = 0
    deleted: int = 0
    passes: int = 0
    watermark: int | None = None

    def counters(self) -> dict[str, int]:
        """Every counter by name (the watermark is not a counter)."""
        return {name: int(value) for name, value in vars(self).items() if name != "watermark"}


def _epoch(dt: datetime | None) -> int | None:
    return int(dt.timestamp()) if dt is not None else None


class IntercomSync:
    """One sync of one Intercom source into one sink."""

    def __init__(
        self,
        client: IntercomClient,
        sink: SyncSink[ConversationRecord],
        *,
        field: str = "updated_at",
        limits: IntercomSettings | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        """A sync of `field` (`updated_at`: incremental; `created_at`: a date-range backfill).

        `limits` (overlap, fetches and pages in flight, catch-up passes, commit chunks)
        default to the process's `intercom` settings.
        """
        if field not in ("updated_at", "created_at"):
            raise ValueError("field must be updated_at or created_at")
        self.client = client
        self.sink = sink
        self.field = field
        self.limits = limits or get_settings().intercom
        self.overlap = self.limits.overlap_s
        self.clock = clock
        self.report = SyncReport()
        self._state: dict[str, Any] = {}
        self._seen: dict[str, int] = {}
        self._contacts: dict[str, asyncio.Task[tuple[dict[str, Any] | None, list[str]]]] = {}

    # ---- entry point ---------------------------------------------------------------------
    async def run(self, since: int | None = None, until: int | None = None) -> SyncReport:
        """Sync `since <= field < until` (defaults: from the watermark minus overlap, to now).

        With `field="created_at"` this is a pure date-range backfill and the watermark is left
        alone. Raises only for problems that concern the whole sync (bad token, search failing).
        """
        self._state = {"version": STATE_VERSION, **(await asyncio.to_thread(self.sink.load_state))}
        try:
            await self._retry_dead_letters()
            incremental = self.field == "updated_at"
            if since is None:
                wm = self._state.get("watermark") if incremental else None
                since = max(0, int(wm) - self.overlap) if wm is not None else 0
            end = int(until) if until is not None else int(self.clock())
            await self._pass(since, end, advance_watermark=incremental)
            if incremental and until is None:
                for _ in range(self.limits.max_catchup_passes):
                    before = self.report.fetched
                    start, end = end - self.overlap, int(self.clock())
                    await self._pass(start, end, advance_watermark=True)
                    if self.report.fetched == before:
                        break
            await self._sync_deletions()
        finally:
            for task in self._contacts.values():
                task.cancel()
        self.report.watermark = self._state.get("watermark")
        return self.report

    # ---- range pass ----------------------------------------------------------------------
    async def _pass(self, since: int, until: int, *, advance_watermark: bool) -> None:
        self.report.passes += 1
        window = _PageWindow(self, advance_watermark)
        anchor, cursor = since, None
        try:
            while True:
                page = await self.client.search_conversations(self.field, anchor, until, starting_after=cursor)
                self.report.search_pages += 1
                items = [
                    c for c in page.get("conversations") or [] if since <= int(c.get(self.field, -1)) < until
                ]  # local check: never trust the bound blindly
                self.report.hits += len(items)
                todo = await self._new_versions(items)
                top = max((int(c[self.field]) for c in items), default=anchor)
                nxt = ((page.get("pages") or {}).get("next") or {}).get("starting_after")
                window.add(
                    [asyncio.create_task(self._fetch(item)) for item in todo], until if not nxt else max(anchor, top)
                )
                await window.drain(block=False)
                while (
                    window.outstanding() > self.limits.max_outstanding_fetches
                    or window.pages() > self.limits.max_pages_in_flight
                ):
                    await window.drain(block=True)
                if not nxt:
                    break
                if top > anchor:
                    anchor, cursor = top, None  # re-anchor (keyset): nothing can be skipped
                else:
                    cursor = nxt  # a full page within one second: follow the cursor
            while window.pages():
                await window.drain(block=True)
        finally:
            window.cancel()

    async def _new_versions(self, items: list[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Drop hits already seen in this sync or already stored at this version."""
        fresh = []
        for item in items:
            cid, version = str(item["id"]), int(item.get("updated_at", 0))
            if self._seen.get(cid, -1) >= version:
                self.report.duplicates += 1
                continue
            self._seen[cid] = version
            fresh.append(item)
        if not fresh:
            return fresh
        stored = await asyncio.to_thread(self.sink.stored_versions, [str(i["id"]) for i in fresh])
        out = []
        for item in fresh:
            have = _epoch(stored.get(str(item["id"]))) if str(item["id"]) in stored else None
            if have is not None and have >= int(item.get("updated_at", 0)):
                self.report.unchanged += 1
                continue
            out.append(item)
        return out

    async def _fetch(self, item: Mapping[str, Any]) -> ConversationRecord | DeadLetter | str:
        """Detail + contact for one hit: a record, a dead letter, or the id when it is gone (404)."""
        cid = str(item["id"])
        try:
            conv = await self.client.get_conversation(cid)
            if conv is None:
                return cid
            contact, notes = await self._contact_for(conv)
            return mapping.conversation_record(conv, contact, notes)
        except IntercomAuthError:
            raise
        except IntercomError as exc:
            return DeadLetter(
                item=cid,
                error_class=type(exc).__name__,
                error_message=str(exc),
                attempts=exc.attempts,
                stage=DEAD_LETTER_STAGE,
            )
        except (KeyError, TypeError, ValueError) as exc:  # a payload we cannot map: keep the rest going
            return DeadLetter(
                item=cid,
                error_class=type(exc).__name__,
                error_message=f"unmappable payload: {exc}",
                attempts=1,
                stage=DEAD_LETTER_STAGE,
            )

    async def _contact_for(self, conv: Mapping[str, Any]) -> tuple[ContactRecord | None, list[str]]:
        contact_id = mapping.first_contact_id(conv)
        if contact_id is None:
            return None, []
        task = self._contacts.get(contact_id)
        if task is None:  # cached per sync; concurrent callers share one request
            task = asyncio.create_task(self.client.get_contact(contact_id))
            self._contacts[contact_id] = task
        try:
            payload, notes = await asyncio.shield(task)
        except IntercomAuthError:
            raise
        except IntercomError as exc:
            return None, [f"contact {contact_id} not fetched: {type(exc).__name__} ({exc.status})"]
        if payload is None:
            return None, notes
        return mapping.contact_record(payload, mapping.company_name(conv), notes), notes

    async def _commit_results(self, results: list[Any], watermark: int | None) -> None:
        batch: SyncBatch[ConversationRecord] = SyncBatch()
        retry = set(self._state.get("retry_ids") or [])
        for result in results:
            self.report.fetched += 1
            if isinstance(result, ConversationRecord):
                batch.records.append(result)
                retry.discard(result.external_id)
                version = _epoch(result.updated_at)
                if version is not None and version > self._seen.get(result.external_id, -1):
                    self._seen[result.external_id] = version
            elif isinstance(result, DeadLetter):
                batch.dead_letters.append(result)
                retry.add(result.item)
            else:
                self.report.gone += 1
                retry.discard(result)
        state = dict(self._state)
        state["retry_ids"] = sorted(retry)
        if watermark is not None and watermark > int(state.get("watermark") or 0):
            state["watermark"] = watermark
        if not results and state == self._state:
            return
        batch.state = state
        await asyncio.to_thread(self.sink.commit, batch)
        self._state = state
        self.report.written += len(batch.records)
        self.report.dead_lettered += len(batch.dead_letters)
        if batch.dead_letters:
            logger.warning("intercom sync: %d conversations dead-lettered", len(batch.dead_letters))

    # ---- retries and deletions -------------------------------------------------------------
    async def _retry_dead_letters(self) -> None:
        ids = list(self._state.get("retry_ids") or [])
        if not ids:
            return
        logger.info("intercom sync: retrying %d dead-lettered conversations", len(ids))
        window = _PageWindow(self, advance_watermark=False)
        window.add([asyncio.create_task(self._fetch({"id": cid})) for cid in ids], 0)
        try:
            while window.pages():
                await window.drain(block=True)
        finally:
            window.cancel()

    async def _sync_deletions(self) -> None:
        """Deleted ids newer than the deletion watermark (minus overlap), newest first."""
        wm = self._state.get("deleted_watermark")
        threshold = int(wm) - self.overlap if wm is not None else None
        deleted: dict[str, datetime] = {}
        newest = int(wm) if wm is not None else None
        page = 1
        while True:
            body = await self.client.deleted_conversations(page, order="desc")
            items = body.get("conversations") or []
            reached_old = False
            for item in items:
                at = int(item.get("deleted_at") or 0)
                if threshold is not None and at < threshold:
                    reached_old = True
                    break
                deleted[str(item["id"])] = mapping.from_unix(at) or datetime.now(UTC)
                newest = at if newest is None else max(newest, at)
            if reached_old or not items or not (body.get("pages") or {}).get("next"):
                break
            page += 1
        state = dict(self._state)
        if newest is not None:
            state["deleted_watermark"] = newest
        await asyncio.to_thread(self.sink.commit, SyncBatch(deleted=deleted, state=state))
        self._state = state
        self.report.deleted += len(deleted)


class _PageWindow:
    """Detail fetches of the pages in flight, committed as they finish.

    Finished results are committed in chunks of `commit_chunk_size` (so an interruption loses
    little work; a restart skips stored versions); the watermark moves to a page's bound only
    once that page and every page before it are fully committed. A slow straggler therefore
    holds back the watermark, never the fetching of later pages.
    """

    def __init__(self, sync: IntercomSync, advance_watermark: bool) -> None:
        self.sync = sync
        self.advance = advance_watermark
        self._pages: deque[tuple[list[asyncio.Task[Any]], int]] = deque()
        self._collected: set[asyncio.Task[Any]] = set()
        self._buffer: list[Any] = []

    def add(self, tasks: list[asyncio.Task[Any]], watermark: int) -> None:
        self._pages.append((tasks, watermark))

    def pages(self) -> int:
        return len(self._pages)

    def outstanding(self) -> int:
        return sum(1 for tasks, _ in self._pages for t in tasks if not t.done())

    async def drain(self, *, block: bool) -> None:
        """Collect finished fetches; commit a chunk or an advanced watermark when due."""
        unfinished = [t for tasks, _ in self._pages for t in tasks if not t.done()]
        if block and unfinished:
            await asyncio.wait(unfinished, return_when=asyncio.FIRST_COMPLETED)
        for tasks, _ in self._pages:
            for task in tasks:
                if task.done() and task not in self._collected:
                    self._collected.add(task)
                    self._buffer.append(task.result())  # re-raises what must stop the sync (auth)
        watermark = None
        while self._pages and all(t.done() for t in self._pages[0][0]):
            tasks, watermark = self._pages.popleft()
            self._collected.difference_update(tasks)
        if len(self._buffer) >= self.sync.limits.commit_chunk_size or watermark is not None:
            await self.sync._commit_results(self._buffer, watermark if self.advance else None)
            self._buffer = []

    def cancel(self) -> None:
        for tasks, _ in self._pages:
            for task in tasks:
                task.cancel()
