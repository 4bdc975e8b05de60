"""A documentation site as a knowledge source, crawled from its sitemap and/or a start URL.

Rules of the crawl (every limit a `knowledge.*` setting):
- robots.txt is read first (`urllib.robotparser`) and obeyed for our User-Agent; its
  `Crawl-delay` slows the pace further; an unreachable robots.txt (5xx, network) stops the
  sync, since we cannot know what is allowed (RFC 9309: assume complete disallow).
- Requests are paced (`requests_per_second`, one request at a time) through one httpx client
  per sync with connect/read timeouts and a total time per page.
- Seeds: the sitemap's URLs (sitemap indexes followed; robots.txt's `Sitemap:` lines when no
  sitemap is configured), the start URL, and the pages that failed last sync (retried).
  Links are followed up to `max_depth` from a seed, `max_pages` pages at most.
- Skipped with a reason (counted, never stored): off-site URLs (another scheme or host),
  robots-disallowed, non-HTML, oversized (`max_page_bytes`, by header or while reading),
  redirect loops or chains longer than `max_redirects`, pages with no main text.
- A 404/410 page is gone; a page missing from a complete crawl (not cut by `max_pages`) is
  marked removed. Other failures (5xx, 429, network, other 4xx) are retried with backoff up
  to `max_attempts`, then dead-lettered with their error and retried by the next sync.
An article's date is its sitemap `<lastmod>`, else the page's `Last-Modified` header, else none.
Nothing from a page executes: HTML and XML are parsed (lxml, entities and network off).
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from urllib.parse import urldefrag, urljoin, urlsplit
from urllib.robotparser import RobotFileParser

import httpx
from lxml import etree
from lxml import html as lxml_html
from pydantic import BaseModel, ConfigDict, Field, model_validator

from threadline.config import KnowledgeSettings, get_settings
from threadline.connectors.base import Connector, ConnectorError, DeadLetter, SyncBatch, SyncSink
from threadline.connectors.knowledge.common import (
    FAILED_KEY,
    KNOWLEDGE_STAGE,
    KnowledgeReport,
    KnowledgeSyncSink,
    knowledge_sink,
    parse_date,
)
from threadline.connectors.knowledge.html import html_to_markdown
from threadline.connectors.records import ArticleRecord
from threadline.net.retry import Jitter, backoff_s

logger = logging.getLogger(__name__)

HTML_TYPES = frozenset({"text/html", "application/xhtml+xml"})
GONE = frozenset({404, 410})
REDIRECTS = frozenset({301, 302, 303, 307, 308})
RETRYABLE = frozenset({408, 425, 429})  # plus every 5xx
MAX_SITEMAPS = 50  # sitemap files read per sync (index included): a site's sitemaps are a handful
READ_CHUNK_BYTES = 65_536  # bytes read at a time while enforcing the page size limit
_XML_PARSER = etree.XMLParser(resolve_entities=False, no_network=True, huge_tree=False, recover=True)
_SITEMAP_NS = "{http://www.sitemaps.org/schemas/sitemap/0.9}"


class SiteConfig(BaseModel):
    """Where the crawl starts: a sitemap, a start URL, or both (same site)."""

    model_config = ConfigDict(extra="forbid")

    sitemap_url: str | None = Field(default=None, description="URL of the site's sitemap.xml (or sitemap index).")
    start_url: str | None = Field(default=None, description="URL the crawl starts from, following links.")

    @model_validator(mode="after")
    def _one_seed(self) -> SiteConfig:
        if not self.sitemap_url and not self.start_url:
            raise ValueError("give --sitemap-url or --start-url")
        for url in (self.sitemap_url, self.start_url):
            if url and urlsplit(url).scheme not in ("http", "https"):
                raise ValueError(f"{url!r} is not an http(s) URL")
        return self


class Skip(Exception):
    """A page skipped for good, with the reason's slug (`KnowledgeReport.skip`)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class Gone(Exception):
    """The page answered 404 or 410: it no longer exists."""


class PageError(Exception):
    """A page failed (status or transport); `retryable` says whether another attempt may help."""

    def __init__(self, message: str, *, status: int | None, retryable: bool) -> None:
        super().__init__(message)
        self.status = status
        self.retryable = retryable


def _origin(url: str) -> tuple[str, str]:
    parts = urlsplit(url)
    return parts.scheme, parts.netloc.lower()


def _normal(url: str) -> str:
    """`url` without its fragment (one page, whatever the anchor)."""
    return urldefrag(url)[0]


class Pacer:
    """At most one request per `interval_s`, awaited before each request (requests go one at a time)."""

    def __init__(self, interval_s: float) -> None:
        self.interval_s = interval_s
        self._next = 0.0

    async def wait(self) -> None:
        now = time.monotonic()
        if self._next > now:
            await asyncio.sleep(self._next - now)
        self._next = max(now, self._next) + self.interval_s


@dataclass
class Fetched:
    """A page as fetched: the final URL after redirects, its HTML, its `Last-Modified` time if it sent one."""

    url: str
    html: str
    last_modified: datetime | None = None


def http_date(value: str | None) -> datetime | None:
    """An HTTP date header (`Wed, 02 Mar 2026 10:00:00 GMT`) as an aware datetime; None when absent or malformed."""
    if not value:
        return None
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@dataclass
class Crawl:
    """One sync's crawl of one site: client, pacing, robots rules and the frontier."""

    config: SiteConfig
    client: httpx.AsyncClient
    sink: KnowledgeSyncSink
    settings: KnowledgeSettings
    origin: tuple[str, str] = ("", "")
    robots: RobotFileParser = field(default_factory=RobotFileParser)
    pacer: Pacer = field(default_factory=lambda: Pacer(0.0))
    report: KnowledgeReport = field(default_factory=KnowledgeReport)
    rng: random.Random = field(default_factory=random.Random)
    lastmod: dict[str, datetime] = field(default_factory=dict)  # sitemap `<lastmod>` of each page URL that had one

    async def request(self, url: str) -> httpx.Response:
        """One paced GET (no redirects followed, body not yet read); the caller closes the response."""
        await self.pacer.wait()
        request = self.client.build_request("GET", url)
        return await self.client.send(request, stream=True, follow_redirects=False)

    async def fetch(self, url: str) -> Fetched:
        """GET `url` following redirects on-site, checking type and size; raises Skip, Gone or PageError."""
        chain = {url}
        for _ in range(self.settings.max_redirects + 1):
            if _origin(url) != self.origin:
                raise Skip("off_site")
            if not self.robots.can_fetch(self.settings.user_agent, url):
                raise Skip("robots")
            try:
                async with asyncio.timeout(self.settings.page_timeout_s):
                    response = await self.request(url)
                    try:
                        if response.status_code in REDIRECTS and "location" in response.headers:
                            url = _normal(urljoin(url, response.headers["location"]))
                            if url in chain:
                                raise Skip("redirect_loop")
                            chain.add(url)
                            continue
                        modified = http_date(response.headers.get("last-modified"))
                        return Fetched(url, await self._body(response), modified)
                    finally:
                        await response.aclose()
            except TimeoutError:
                raise PageError("the page did not arrive in time", status=None, retryable=True) from None
            except httpx.TransportError as exc:
                raise PageError(f"transport error: {type(exc).__name__}", status=None, retryable=True) from None
        raise Skip("redirect_loop")  # more redirects than allowed: a loop in all but name

    async def _body(self, response: httpx.Response) -> str:
        status = response.status_code
        if status in GONE:
            raise Gone()
        if status >= 400 or status < 200 or status >= 300:
            retryable = status >= 500 or status in RETRYABLE
            raise PageError(f"HTTP {status}", status=status, retryable=retryable)
        media_type = response.headers.get("content-type", "").split(";")[0].strip().lower()
        if media_type not in HTML_TYPES:
            raise Skip("not_html")
        limit = self.settings.max_page_bytes
        declared = response.headers.get("content-length", "")
        if declared.isdigit() and int(declared) > limit:
            raise Skip("too_large")
        body = bytearray()
        async for chunk in response.aiter_bytes(READ_CHUNK_BYTES):
            body.extend(chunk)
            if len(body) > limit:
                raise Skip("too_large")
        return body.decode(response.encoding or "utf-8", errors="replace")

    async def fetch_with_retries(self, url: str) -> Fetched:
        """`fetch` with up to `max_attempts` attempts for retryable failures (backoff with full jitter)."""
        attempt = 1
        while True:
            try:
                return await self.fetch(url)
            except PageError as exc:
                if not exc.retryable or attempt >= self.settings.max_attempts:
                    exc.attempts = attempt  # type: ignore[attr-defined]
                    raise
                base, cap = self.settings.backoff_base_s, self.settings.backoff_cap_s
                await asyncio.sleep(backoff_s(attempt, base_s=base, cap_s=cap, jitter=Jitter.FULL, rng=self.rng))
                attempt += 1

    async def read_robots(self, base: str) -> None:
        robots_url = urljoin(base, "/robots.txt")
        try:
            response = await self.request(robots_url)
            try:
                status = response.status_code
                text = (await response.aread()).decode("utf-8", errors="replace") if status < 300 else ""
            finally:
                await response.aclose()
        except httpx.TransportError as exc:
            message = f"robots.txt unreachable ({type(exc).__name__}): not crawling"
            raise ConnectorError(message, path="/robots.txt") from None
        if status >= 500 or status == 429:
            raise ConnectorError(f"robots.txt answered HTTP {status}: not crawling", status=status, path="/robots.txt")
        self.robots.parse(text.splitlines() if status < 300 else [])  # 4xx: no rules, everything allowed
        delay = self.robots.crawl_delay(self.settings.user_agent)
        self.pacer.interval_s = max(1.0 / self.settings.requests_per_second, float(delay or 0))

    async def sitemap_urls(self, sitemap_url: str) -> list[str]:
        """Page URLs of the sitemap (indexes followed, at most `MAX_SITEMAPS` files, `max_pages` URLs)."""
        pending, read, urls = deque([sitemap_url]), 0, list[str]()
        while pending and read < MAX_SITEMAPS and len(urls) < self.settings.max_pages:
            current = pending.popleft()
            read += 1
            if _origin(current) != self.origin:
                self.report.skip("off_site")
                continue
            response = await self.request(current)
            try:
                if response.status_code >= 300:
                    raise ConnectorError(f"sitemap answered HTTP {response.status_code}", status=response.status_code)
                data = await response.aread()
            finally:
                await response.aclose()
            if len(data) > self.settings.max_page_bytes:
                raise ConnectorError("the sitemap is larger than knowledge.max_page_bytes")
            root = etree.fromstring(data, _XML_PARSER)
            if root is None:
                raise ConnectorError("the sitemap is not XML")
            nested = root.tag == f"{_SITEMAP_NS}sitemapindex"
            for loc in root.iter(f"{_SITEMAP_NS}loc"):
                if loc.text and loc.text.strip():
                    url = _normal(loc.text.strip())
                    (pending if nested else urls).append(url)
                    lastmod = None if nested else loc.getparent().find(f"{_SITEMAP_NS}lastmod")
                    updated = parse_date(lastmod.text) if lastmod is not None and lastmod.text else None
                    if updated is not None:
                        self.lastmod[url] = updated
        return urls[: self.settings.max_pages]

    def links(self, page: Fetched) -> list[str]:
        """On-page links as absolute URLs without fragments (http and https only)."""
        try:
            document = lxml_html.document_fromstring(page.html)
        except (etree.ParserError, ValueError):
            return []
        out = []
        for href in document.xpath("//a/@href"):
            absolute = _normal(urljoin(page.url, str(href).strip()))
            if urlsplit(absolute).scheme in ("http", "https"):
                out.append(absolute)
        return out


class Committer:
    """Commits batches on a worker thread while the crawl goes on, one batch in flight at most.

    A commit embeds its passages (seconds of model time); done inline it would stall the
    pacer. With one commit in flight memory stays at two batches, and batches commit in order
    (`submit` waits for the previous one), so the sync state never runs ahead of the data.
    """

    def __init__(self, sink: KnowledgeSyncSink) -> None:
        self.sink = sink
        self._pending: asyncio.Task[None] | None = None

    async def submit(self, batch: SyncBatch[ArticleRecord]) -> None:
        await self.drain()
        self._pending = asyncio.create_task(asyncio.to_thread(self.sink.commit, batch))

    async def drain(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            await pending


async def _crawl(crawl: Crawl) -> KnowledgeReport:
    config, settings, report, store = crawl.config, crawl.settings, crawl.report, crawl.sink
    seed = config.sitemap_url or config.start_url
    assert seed is not None
    crawl.origin = _origin(seed)
    await crawl.read_robots(seed)
    failed: dict[str, int] = dict(store.load_state().get(FAILED_KEY, {}))
    seeds: list[str] = []
    if config.sitemap_url:
        seeds += await crawl.sitemap_urls(config.sitemap_url)
    elif crawl.robots.site_maps():
        for sitemap in crawl.robots.site_maps() or []:
            seeds += await crawl.sitemap_urls(sitemap)
    if config.start_url:
        seeds.append(_normal(config.start_url))
    frontier: deque[tuple[str, int]] = deque()
    queued: set[str] = set()
    for url in [*seeds, *failed]:
        if url not in queued:
            queued.add(url)
            frontier.append((url, 0))
    present: set[str] = set()  # pages that exist (stored, unchanged, or failing): not removed
    still_failed: dict[str, int] = {}
    complete = True
    fetched_pages = 0
    batch: SyncBatch[ArticleRecord] = SyncBatch()
    committer = Committer(store)
    while frontier:
        url, depth = frontier.popleft()
        if fetched_pages >= settings.max_pages:
            complete = False
            report.skip("max_pages")
            break
        try:
            if _origin(url) != crawl.origin:
                raise Skip("off_site")
            if not crawl.robots.can_fetch(settings.user_agent, url):
                raise Skip("robots")
            fetched_pages += 1
            report.seen += 1
            page = await crawl.fetch_with_retries(url)
        except Skip as skip:
            report.skip(skip.reason)
            continue
        except Gone:
            continue
        except PageError as exc:
            attempts = failed.get(url, 0) + getattr(exc, "attempts", 1)
            still_failed[url] = attempts
            present.add(url)
            batch.dead_letters.append(DeadLetter(url, "PageError", str(exc), attempts, KNOWLEDGE_STAGE))
            report.dead_lettered += 1
            continue
        queued.add(page.url)
        title, text = html_to_markdown(page.html)
        if depth < settings.max_depth:
            for link in crawl.links(page):
                if link not in queued:
                    queued.add(link)
                    if _origin(link) != crawl.origin:
                        report.skip("off_site")
                    else:
                        frontier.append((link, depth + 1))
        if not text.strip():
            report.skip("no_main_text")
            continue
        present.add(page.url)
        updated = crawl.lastmod.get(page.url) or crawl.lastmod.get(url) or page.last_modified
        batch.records.append(
            ArticleRecord(external_id=page.url, title=title or page.url, text=text, url=page.url, updated_at=updated)
        )
        if len(batch.records) >= settings.articles_per_commit:
            batch.state = {FAILED_KEY: {**failed, **still_failed}}
            await committer.submit(batch)
            batch = SyncBatch()
    await committer.drain()
    if complete:
        gone = store.active_ids() - present
        batch.deleted = {external_id: datetime.now(UTC) for external_id in sorted(gone)}
        report.removed = len(gone)
    batch.state = {FAILED_KEY: still_failed if complete else {**failed, **still_failed}}
    store.commit(batch)
    return report


def client_timeout(settings: KnowledgeSettings) -> httpx.Timeout:
    """Connect and read timeouts per request; the whole page is bounded separately (`page_timeout_s`)."""
    return httpx.Timeout(
        connect=settings.connect_timeout_s,
        read=settings.read_timeout_s,
        write=settings.read_timeout_s,
        pool=settings.page_timeout_s,
    )


async def sync(config: SiteConfig, sink: SyncSink[ArticleRecord], since: int | None) -> KnowledgeReport:
    """One crawl of the site through one httpx client (closed at the end)."""
    del since  # a site is crawled whole each time: unchanged pages cost a fetch and a hash, nothing more
    settings = get_settings().knowledge
    headers = {"User-Agent": settings.user_agent, "Accept": "text/html,application/xhtml+xml"}
    async with httpx.AsyncClient(timeout=client_timeout(settings), headers=headers) as client:
        crawl = Crawl(config, client, knowledge_sink(sink), settings)
        crawl.pacer.interval_s = 1.0 / settings.requests_per_second
        return await _crawl(crawl)


CONNECTOR: Connector[ArticleRecord] = Connector(
    kind="site",
    label="Documentation site",
    description="a documentation site crawled from its sitemap or a start URL",
    record_type=ArticleRecord,
    config_model=SiteConfig,
    sync=sync,
)
