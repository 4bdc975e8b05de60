"""Zendesk sync: backfill and incremental sync on the cursor-based incremental ticket export.

How a sync works:
- The export is read page by page from the committed cursor (`state["cursor"]`, the
  `after_cursor` of the last page whose tickets are all committed), or from `start_time`
  (`since`, else 0 on the first sync). Zendesk orders the export by `generated_timestamp`,
  which every change moves forward, so a ticket changed while we page is not skipped: it
  comes again later in the stream, and its newer version is fetched then.
- Tickets are deduplicated by (id, updated_at) against this sync and against what the sink
  already stores; the rest have their comments fetched (cursor pagination) concurrently,
  bounded by the client's concurrency and pacer. Authors the export did not side-load are
  fetched once per sync (their role decides customer or agent).
- Deleted tickets (status "deleted") become deletions; tickets closed by a merge are kept
  with state "merged" and marked deleted (see `mapping`).
- Results are committed in chunks; a page's cursor (and the watermark, its highest
  `generated_timestamp`) is committed only in the transaction that commits the last of its
  tickets and every page before it. A sync cancelled or killed at any point restarts from the
  last committed cursor and skips what is already stored.
- A ticket whose comments keep failing becomes a dead letter (stage `ingest.zendesk`) and is
  remembered in the state (`retry_ids`); the next sync fetches it again first.
"""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from threadline.config import ZendeskSettings, get_settings
from threadline.connectors.base import DeadLetter, SyncBatch, SyncSink
from threadline.connectors.records import ConversationRecord
from threadline.connectors.zendesk import mapping
from threadline.connectors.zendesk.client import ZendeskAuthError, ZendeskClient, ZendeskError

logger = logging.getLogger(__name__)

STATE_VERSION = 1  # layout of the JSON sync state
DEAD_LETTER_STAGE = "ingest.zendesk"


@dataclass
class SyncReport:
    """Counters of one sync (they add up: fetched = written + dead_lettered + gone)."""

    export_pages: int = 0
    tickets: int = 0
    duplicates: int = 0
    unchanged: int = 0
    fetched: int = 0
    written: int = 0
    gone: int = 0
    dead_lettered: int = 0
    deleted: int = 0
    merged: int = 0
    watermark: int | None = None

    def counters(self) -> dict[str, int]:
        """Every counter by name (the watermark is not a counter)."""
        return {name: int(value) for name, value in vars(self).items() if name != "watermark"}


@dataclass
class _Gone:
    """A ticket that no longer exists (404 on its comments or on itself)."""

    ticket_id: str


@dataclass
class _Page:
    tasks: list[asyncio.Task[Any]]
    deleted: dict[str, datetime] = field(default_factory=dict)
    cursor: str | None = None
    watermark: int | None = None


class ZendeskSync:
    """One sync of one Zendesk account into one sink."""

    def __init__(
        self, client: ZendeskClient, sink: SyncSink[ConversationRecord], *, limits: ZendeskSettings | None = None
    ) -> None:
        self.client = client
        self.sink = sink
        self.limits = limits or get_settings().zendesk
        self.report = SyncReport()
        self._state: dict[str, Any] = {}
        self._seen: dict[str, int] = {}
        self._users: dict[str, dict[str, Any]] = {}
        self._orgs: dict[str, dict[str, Any]] = {}
        self._user_tasks: dict[str, asyncio.Task[dict[str, Any] | None]] = {}

    # ---- entry point ---------------------------------------------------------------------
    async def run(self, since: int | None = None) -> SyncReport:
        """Sync everything changed since the committed cursor (or since `since`, Unix seconds)."""
        self._state = {"version": STATE_VERSION, **(await asyncio.to_thread(self.sink.load_state))}
        try:
            await self._retry_dead_letters()
            cursor = None if since is not None else self._state.get("cursor")
            await self._export(start_time=int(since or 0), cursor=cursor)
        finally:
            for task in self._user_tasks.values():
                task.cancel()
        wm = self._state.get("watermark")
        self.report.watermark = int(wm) if wm is not None else None
        return self.report

    async def _export(self, *, start_time: int, cursor: str | None) -> None:
        window = _PageWindow(self)
        try:
            while True:
                page = await self.client.export_tickets(
                    start_time=start_time, cursor=cursor, per_page=self.limits.export_page_size
                )
                self.report.export_pages += 1
                self._users.update(mapping.index_by_id(page.get("users")))
                self._orgs.update(mapping.index_by_id(page.get("organizations")))
                tickets = [t for t in page.get("tickets") or [] if isinstance(t, dict) and t.get("id") is not None]
                self.report.tickets += len(tickets)
                entry = _Page(tasks=[], cursor=page.get("after_cursor") or cursor)
                entry.watermark = max((mapping.generated_timestamp(t) for t in tickets), default=None)
                live: list[dict[str, Any]] = []
                for ticket in tickets:
                    if mapping.is_deleted(ticket):
                        entry.deleted[str(ticket["id"])] = mapping.parse_time(ticket.get("updated_at")) or datetime.now(
                            UTC
                        )
                    else:
                        live.append(ticket)
                entry.tasks = [asyncio.create_task(self._fetch(t)) for t in await self._new_versions(live)]
                window.add(entry)
                await window.drain(block=False)
                while (
                    window.outstanding() > self.limits.max_outstanding_fetches
                    or window.pages() > self.limits.max_pages_in_flight
                ):
                    await window.drain(block=True)
                if page.get("end_of_stream") or not page.get("after_cursor"):
                    break
                cursor = page["after_cursor"]
            while window.pages():
                await window.drain(block=True)
        finally:
            window.cancel()

    async def _new_versions(self, tickets: Sequence[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
        """Drop tickets already seen in this sync or already stored at this version."""
        fresh = []
        for ticket in tickets:
            tid, version = str(ticket["id"]), mapping.version_of(ticket)
            if self._seen.get(tid, -1) >= version:
                self.report.duplicates += 1
                continue
            self._seen[tid] = version
            fresh.append(ticket)
        if not fresh:
            return fresh
        stored = await asyncio.to_thread(self.sink.stored_versions, [str(t["id"]) for t in fresh])
        out = []
        for ticket in fresh:
            have = stored.get(str(ticket["id"]))
            if have is not None and int(have.timestamp()) >= mapping.version_of(ticket):
                self.report.unchanged += 1
                continue
            out.append(ticket)
        return out

    async def _fetch(self, ticket: Mapping[str, Any]) -> ConversationRecord | DeadLetter | _Gone:
        """Comments (and unknown authors) of one ticket: a record, a dead letter, or gone (404)."""
        tid = str(ticket["id"])
        try:
            comments = await self.client.ticket_comments(tid)
            if comments is None:
                return _Gone(tid)
            await self._load_authors(comments)
            return mapping.conversation_record(ticket, comments, self._users, self._orgs)
        except ZendeskAuthError:
            raise
        except ZendeskError as exc:
            return DeadLetter(
                item=tid,
                error_class=type(exc).__name__,
                error_message=str(exc),
                attempts=exc.attempts,
                stage=DEAD_LETTER_STAGE,
            )
        except (KeyError, TypeError, ValueError) as exc:  # a payload we cannot map: keep the rest going
            return DeadLetter(
                item=tid,
                error_class=type(exc).__name__,
                error_message=f"unmappable payload: {type(exc).__name__}",
                attempts=1,
                stage=DEAD_LETTER_STAGE,
            )

    async def _load_authors(self, comments: list[dict[str, Any]]) -> None:
        """Fetch (once per sync, shared by concurrent callers) public comments' authors not side-loaded."""
        wanted = {
            str(c["author_id"])
            for c in comments
            if c.get("public") is not False and isinstance(c.get("author_id"), int) and c["author_id"] > 0
        } - set(self._users)
        for uid in wanted:
            task = self._user_tasks.get(uid)
            if task is None:
                task = asyncio.create_task(self.client.show_user(uid))
                self._user_tasks[uid] = task
            try:
                user = await asyncio.shield(task)
            except ZendeskAuthError:
                raise
            except ZendeskError:
                continue  # the role falls back to "requester or not" (see mapping.author_role)
            if user is not None:
                self._users[uid] = user

    # ---- commits ---------------------------------------------------------------------------
    async def _commit(self, results: list[Any], page: _Page | None) -> None:
        """Commit finished results; with `page`, also its deletions, cursor and watermark."""
        batch: SyncBatch[ConversationRecord] = SyncBatch()
        retry = set(self._state.get("retry_ids") or [])
        for result in results:
            self.report.fetched += 1
            if isinstance(result, ConversationRecord):
                batch.records.append(result)
                retry.discard(result.external_id)
                if result.state == mapping.MERGED_STATE:
                    batch.deleted[result.external_id] = result.updated_at or datetime.now(UTC)
                    self.report.merged += 1
            elif isinstance(result, DeadLetter):
                batch.dead_letters.append(result)
                retry.add(result.item)
            else:
                self.report.gone += 1
                retry.discard(result.ticket_id)
        state = dict(self._state)
        if page is not None:
            batch.deleted.update(page.deleted)
            retry.difference_update(page.deleted)
            if page.cursor:
                state["cursor"] = page.cursor
            if page.watermark is not None and page.watermark > int(state.get("watermark") or 0):
                state["watermark"] = page.watermark
        state["retry_ids"] = sorted(retry, key=lambda x: (len(x), x))
        if not results and not batch.deleted and state == self._state:
            return
        batch.state = state
        await asyncio.to_thread(self.sink.commit, batch)
        self._state = state
        self.report.written += len(batch.records)
        self.report.dead_lettered += len(batch.dead_letters)
        self.report.deleted += len(batch.deleted) - sum(1 for r in batch.records if r.state == mapping.MERGED_STATE)
        if batch.dead_letters:
            logger.warning("zendesk sync: %d tickets dead-lettered", len(batch.dead_letters))

    async def _retry_dead_letters(self) -> None:
        ids = list(self._state.get("retry_ids") or [])
        if not ids:
            return
        logger.info("zendesk sync: retrying %d dead-lettered tickets", len(ids))

        async def again(tid: str) -> ConversationRecord | DeadLetter | _Gone:
            try:
                shown = await self.client.show_ticket(tid)
            except ZendeskAuthError:
                raise
            except ZendeskError as exc:
                return DeadLetter(tid, type(exc).__name__, str(exc), exc.attempts, DEAD_LETTER_STAGE)
            if shown is None or not isinstance(shown.get("ticket"), dict):
                return _Gone(tid)
            self._users.update(mapping.index_by_id(shown.get("users")))
            self._orgs.update(mapping.index_by_id(shown.get("organizations")))
            ticket = shown["ticket"]
            self._seen[tid] = mapping.version_of(ticket)
            return await self._fetch(ticket)

        window = _PageWindow(self)
        window.add(_Page(tasks=[asyncio.create_task(again(tid)) for tid in ids]))
        try:
            while window.pages():
                await window.drain(block=True)
        finally:
            window.cancel()


class _PageWindow:
    """Comment fetches of the export pages in flight, committed as they finish.

    Finished results are committed in chunks of `commit_chunk_size`; a page's cursor is
    committed only once that page and every page before it are fully committed, so the
    cursor never covers a ticket that is not stored (or dead-lettered).
    """

    def __init__(self, sync: ZendeskSync) -> None:
        self.sync = sync
        self._pages: deque[_Page] = deque()
        # Finished tasks arrive through done-callbacks, so each drain costs the tasks that finished,
        # not every task in flight (a scan of 3 pages x 1,000 tickets per completion ate the CPU).
        self._done: deque[asyncio.Task[Any]] = deque()
        self._any_done = asyncio.Event()
        self._pending: dict[int, int] = {}  # id(page) -> its tasks not yet collected
        self._page_of: dict[asyncio.Task[Any], _Page] = {}
        self._unfinished = 0
        self._buffer: list[Any] = []

    def add(self, page: _Page) -> None:
        self._pages.append(page)
        self._pending[id(page)] = len(page.tasks)
        self._unfinished += len(page.tasks)
        for task in page.tasks:
            self._page_of[task] = page
            task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[Any]) -> None:
        self._unfinished -= 1
        self._done.append(task)
        self._any_done.set()

    def pages(self) -> int:
        return len(self._pages)

    def outstanding(self) -> int:
        return self._unfinished

    async def drain(self, *, block: bool) -> None:
        if block and self._unfinished and not self._done:
            self._any_done.clear()
            await self._any_done.wait()
        while self._done:
            task = self._done.popleft()
            page = self._page_of.pop(task)
            self._pending[id(page)] -= 1
            self._buffer.append(task.result())  # re-raises what must stop the sync (auth)
        finished: list[_Page] = []  # no await until the buffer is committed: a task finishing meanwhile stays for later
        while self._pages and self._pending[id(self._pages[0])] == 0:
            page = self._pages.popleft()
            del self._pending[id(page)]
            finished.append(page)
        if finished:
            deleted: dict[str, datetime] = {}
            for page in finished:
                deleted.update(page.deleted)
            marks = [p.watermark for p in finished if p.watermark is not None]
            covered = _Page(tasks=[], deleted=deleted, cursor=finished[-1].cursor, watermark=max(marks, default=None))
            buffer, self._buffer = self._buffer, []
            await self.sync._commit(buffer, covered)
        elif len(self._buffer) >= self.sync.limits.commit_chunk_size:
            buffer, self._buffer = self._buffer, []
            await self.sync._commit(buffer, None)

    def cancel(self) -> None:
        for page in self._pages:
            for task in page.tasks:
                task.cancel()
