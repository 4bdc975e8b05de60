"""Benchmark: crawl a documentation site of N pages served on loopback (issue 18).

Serves N HTML pages plus a sitemap and robots.txt from a threaded HTTP server on 127.0.0.1,
crawls them with the `site` connector at a configured pace into a counting sink (no database,
no model: this measures the crawler), and reports the achieved request rate as a share of the
configured one, pages lost (listed but not delivered), and the peak of Python allocations
(tracemalloc) for each size, to benchmarks/results/crawl_site.json.

    .venv/bin/python benchmarks/crawl_site.py [--pages 500 2000] [--rps 20] [--trace-memory]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import sys
import threading
import time
import tracemalloc
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from threadline.config import get_settings
from threadline.connectors.base import SyncBatch
from threadline.connectors.knowledge.site import SiteConfig, sync
from threadline.connectors.records import ArticleRecord

RESULTS = Path(__file__).resolve().parent / "results" / "crawl_site.json"
PARAGRAPHS_PER_PAGE = 6  # a typical help article: a title, two sections, a few paragraphs


class CountingSink:
    """A knowledge sink that keeps counts only, so memory reflects the crawler, not the results."""

    def __init__(self) -> None:
        self.records = 0
        self.ids: set[str] = set()  # to count distinct pages delivered (the "lost" check)

    def load_state(self) -> dict[str, Any]:
        return {}

    def stored_versions(self, external_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        return {}

    def active_ids(self) -> set[str]:
        return set()

    def commit(self, batch: SyncBatch[ArticleRecord]) -> None:
        self.records += len(batch.records)
        self.ids.update(r.external_id for r in batch.records)


def serve(pages: int) -> tuple[ThreadingHTTPServer, str]:
    def page(i: int) -> bytes:
        body = "".join(
            f"<p>Paragraph {j} of article {i}: how to configure feature {i % 97} for your team, step by step.</p>"
            for j in range(PARAGRAPHS_PER_PAGE)
        )
        return (
            f"<html><head><title>Article {i}</title></head><body><nav><a href='/'>Home</a></nav>"
            f"<article><h1>Article {i}</h1>{body}<h2>Troubleshooting</h2><p>Check the settings of {i}.</p>"
            "</article></body></html>"
        ).encode()

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
            if self.path == "/robots.txt":
                data, kind = b"User-agent: *\nAllow: /\n", "text/plain"
            elif self.path == "/sitemap.xml":
                urls = "".join(f"<url><loc>{base}/docs/{i}</loc></url>" for i in range(pages))
                data = f'<urlset xmlns="http://www.sitemaps.org/schemas/sitemap/0.9">{urls}</urlset>'.encode()
                kind = "application/xml"
            elif self.path.startswith("/docs/"):
                data, kind = page(int(self.path.rsplit("/", 1)[1])), "text/html; charset=utf-8"
            else:
                self.send_error(404)
                return
            self.send_response(200)
            self.send_header("Content-Type", kind)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def log_message(self, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    base = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, base


def crawl(pages: int, rps: float, trace_memory: bool) -> dict[str, Any]:
    os.environ["THREADLINE_KNOWLEDGE_REQUESTS_PER_SECOND"] = str(rps)
    os.environ["THREADLINE_KNOWLEDGE_MAX_PAGES"] = str(pages)
    get_settings.cache_clear()
    server, base = serve(pages)
    sink = CountingSink()
    if trace_memory:  # slows Python allocations: pace figures come from runs without it
        tracemalloc.start()
    started = time.monotonic()
    report = asyncio.run(sync(SiteConfig(sitemap_url=f"{base}/sitemap.xml"), sink, None))
    elapsed = time.monotonic() - started
    _, peak = tracemalloc.get_traced_memory() if trace_memory else (0, 0)
    tracemalloc.stop()
    server.shutdown()
    server.server_close()
    requests = pages + 2  # robots.txt and the sitemap are paced too
    return {
        "pages": pages,
        "configured_rps": rps,
        "elapsed_s": round(elapsed, 2),
        "achieved_rps": round(requests / elapsed, 2),
        "pace_share": round(requests / elapsed / rps, 3),
        "delivered": len(sink.ids),
        "lost": pages - len(sink.ids),
        "dead_lettered": report.dead_lettered,
        "peak_python_alloc_mb": round(peak / 1e6, 2) if trace_memory else None,
        "load_average_1m": round(os.getloadavg()[0], 1),
    }


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, nargs="+", default=[500, 2000])
    parser.add_argument("--rps", type=float, default=20.0)
    parser.add_argument("--trace-memory", action="store_true", help="peak Python allocations (tracemalloc)")
    args = parser.parse_args(argv)
    runs = [crawl(n, args.rps, args.trace_memory) for n in args.pages]
    result = {"at": datetime.now(UTC).isoformat(), "python": platform.python_version(), "runs": runs}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    json.dump(result, sys.stdout, indent=2)
    sys.stdout.write("\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
