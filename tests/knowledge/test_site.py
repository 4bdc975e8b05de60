"""Documentation-site crawler against a site served on loopback by the test: sitemap, robots.txt, failures, removals."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.db.models import Article, DeadLetter


def page(title: str, body: str, links: tuple[str, ...] = ()) -> str:
    anchors = " ".join(f'<a href="{href}">link</a>' for href in links)
    return (
        f"<html><head><title>{title}</title></head><body><nav>{anchors}</nav><article><h1>{title}</h1>"
        f"<p>{body} This paragraph explains the feature step by step for every plan.</p>"
        f"<h2>Details</h2><p>More about {title.lower()}: limits, permissions and what to check first.</p>"
        "</article></body></html>"
    )


@dataclass
class Site:
    """Routes (path -> (status, content type, body, extra headers)) and a log of requested paths."""

    routes: dict[str, tuple[int, str, str, dict[str, str]]] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    base: str = ""

    def html(self, path: str, body: str, status: int = 200) -> None:
        self.routes[path] = (status, "text/html; charset=utf-8", body, {})


@pytest.fixture()
def site() -> Iterator[Site]:
    state = Site()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            state.requests.append(self.path)
            status, content_type, body, headers = state.routes.get(self.path, (404, "text/plain", "not found", {}))
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            for key, value in headers.items():
                self.send_header(key, value)
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    state.base = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


def _build(site: Site) -> None:
    b = site.base
    site.routes["/robots.txt"] = (200, "text/plain", "User-agent: *\nDisallow: /private/\n", {})
    lastmod = {"/docs/invoices": "<lastmod>2026-03-02</lastmod>"}
    urls = "".join(
        f"<url><loc>{b}{p}</loc>{lastmod.get(p, '')}</url>" for p in ("/docs/invoices", "/docs/export", "/docs/flaky")
    )
    sitemap = f'<?xml version="1.0"?><urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'
    site.routes["/sitemap.xml"] = (200, "application/xml", sitemap, {})
    site.html(
        "/docs/invoices",
        page(
            "Recurring invoices",
            "Schedule invoices from the Billing page.",
            ("/docs/taxes#vat", "/private/secret", "https://elsewhere.example/page", "/files/report.pdf", "/docs/loop"),
        ),
    )
    site.html("/docs/export", page("Export data", "Export reports as CSV."))
    site.html("/docs/taxes", page("Taxes", "VAT is added to invoices in the EU."))
    site.routes["/docs/taxes"] = (*site.routes["/docs/taxes"][:3], {"Last-Modified": "Mon, 05 Jan 2026 10:00:00 GMT"})
    site.html("/docs/flaky", "server trouble", status=500)
    site.html("/private/secret", page("Secret", "Never crawled."))
    site.routes["/files/report.pdf"] = (200, "application/pdf", "%PDF-1.4", {})
    site.routes["/docs/loop"] = (302, "text/plain", "", {"Location": "/docs/loop2"})
    site.routes["/docs/loop2"] = (302, "text/plain", "", {"Location": "/docs/loop"})


def test_crawl_obeys_robots_skips_with_reasons_dead_letters_and_retries_then_marks_removed(
    db_engine, embedder, site, monkeypatch
):
    monkeypatch.setenv("THREADLINE_KNOWLEDGE_REQUESTS_PER_SECOND", "200")
    monkeypatch.setenv("THREADLINE_KNOWLEDGE_MAX_ATTEMPTS", "2")
    monkeypatch.setenv("THREADLINE_KNOWLEDGE_BACKOFF_BASE_S", "0.01")
    get_settings.cache_clear()
    _build(site)
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(session, "site", "docs", {"sitemap_url": f"{site.base}/sitemap.xml"})

    first = sync_knowledge(db_engine, "docs", embedder=embedder)
    c = first.counters
    assert c["created"] == 3, c  # invoices, export, taxes (linked from invoices)
    assert c["dead_lettered"] == 1 and c["skipped_robots"] == 1 and c["skipped_off_site"] == 1
    assert c["skipped_not_html"] == 1 and c["skipped_redirect_loop"] == 1
    assert "/private/secret" not in site.requests
    assert site.requests.count("/docs/flaky") == 2  # retried within the sync (max_attempts 2)
    with Session(db_engine) as session:
        urls = set(session.execute(select(Article.url)).scalars())
        assert urls == {f"{site.base}/docs/{p}" for p in ("invoices", "export", "taxes")}
        dates = {u.rsplit("/", 1)[1]: d for u, d in session.execute(select(Article.url, Article.source_updated_at))}
        assert dates["invoices"] is not None and dates["invoices"].date().isoformat() == "2026-03-02"  # <lastmod>
        assert dates["taxes"] is not None and dates["taxes"].isoformat() == "2026-01-05T10:00:00+00:00"  # header
        assert dates["export"] is None  # neither: no date
        letter = session.execute(select(DeadLetter)).scalar_one()
        assert letter.item.endswith("/docs/flaky") and letter.error_message == "HTTP 500" and letter.attempts == 2

    site.html("/docs/flaky", page("Flaky page", "It works now."))
    site.requests.clear()
    second = sync_knowledge(db_engine, "docs", embedder=embedder)
    c = second.counters
    assert c["created"] == 1 and c["unchanged"] == 3 and c["changed"] == 0 and c["dead_lettered"] == 0, c
    with Session(db_engine) as session:
        assert session.execute(select(DeadLetter.retried_at)).scalar_one() is not None

    del site.routes["/docs/export"]  # 404 now; still listed in the sitemap
    third = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert third.counters["removed"] == 1 and third.counters["passages_embedded"] == 0
    with Session(db_engine) as session:
        status = dict(session.execute(select(Article.url, Article.status)).all())
        assert status[f"{site.base}/docs/export"] == "removed"
        assert status[f"{site.base}/docs/invoices"] == "active"


def test_a_crawl_cut_by_max_pages_removes_nothing_and_oversized_pages_are_skipped(
    db_engine, embedder, site, monkeypatch
):
    monkeypatch.setenv("THREADLINE_KNOWLEDGE_REQUESTS_PER_SECOND", "200")
    monkeypatch.setenv("THREADLINE_KNOWLEDGE_MAX_PAGE_BYTES", "1000")
    get_settings.cache_clear()
    _build(site)
    site.html("/docs/flaky", page("Big", "word " * 400))
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(session, "site", "docs", {"sitemap_url": f"{site.base}/sitemap.xml"})
    first = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert first.counters["skipped_too_large"] == 1 and first.counters["created"] == 3

    monkeypatch.setenv("THREADLINE_KNOWLEDGE_MAX_PAGES", "1")
    get_settings.cache_clear()
    cut = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert cut.counters["skipped_max_pages"] == 1 and cut.counters["removed"] == 0
    with Session(db_engine) as session:
        assert set(session.execute(select(Article.status)).scalars()) == {"active"}


def test_robots_txt_answering_5xx_stops_the_sync(db_engine, embedder, site, monkeypatch):
    from threadline.connectors.base import ConnectorError

    monkeypatch.setenv("THREADLINE_KNOWLEDGE_REQUESTS_PER_SECOND", "200")
    get_settings.cache_clear()
    _build(site)
    site.routes["/robots.txt"] = (503, "text/plain", "down", {})
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(session, "site", "docs", {"start_url": f"{site.base}/docs/invoices"})
    with pytest.raises(ConnectorError, match="robots.txt answered HTTP 503"):
        sync_knowledge(db_engine, "docs", embedder=embedder)
    assert site.requests == ["/robots.txt"]
