"""Intercom Help Center articles as a knowledge source (`threadline knowledge add intercom-articles`).

Each sync pages through `GET /articles` (page-numbered, newest update first) with the same
client as the conversation sync (token from the named variable, pacing by Intercom's
rate-limit headers, retries), keeps published articles and converts their HTML body to
Markdown (`body_markdown` when Intercom sends it). Drafts are skipped with a reason; articles
no longer listed (or back to draft) are marked removed, but only when the listing was
complete: Intercom's pages are not a snapshot, so an article updated while we page can move
to a page we already read; when fewer distinct articles were read than `total_count` says,
nothing is removed this time.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from threadline.config import get_settings
from threadline.connectors.base import Connector, SyncBatch, SyncSink
from threadline.connectors.intercom.client import DEFAULT_TOKEN_ENV, IntercomClient, resolve_token
from threadline.connectors.knowledge.common import KnowledgeReport, KnowledgeSyncSink, knowledge_sink
from threadline.connectors.knowledge.html import fragment_to_markdown
from threadline.connectors.records import ArticleRecord

ARTICLES_PER_PAGE = 50  # articles per `GET /articles` page: Intercom's bodies are long; 50 keeps a page < ~1 MB


class IntercomArticlesConfig(BaseModel):
    """How to reach one Intercom workspace's Help Center (the token stays in the environment)."""

    model_config = ConfigDict(extra="forbid")

    token_env: str = Field(default=DEFAULT_TOKEN_ENV, description="Environment variable holding the access token.")
    region: str = Field(default="us", pattern="^(us|eu|au)$", description="Intercom region: us, eu or au.")
    base_url: str | None = Field(default=None, description="Override the API URL (a proxy or a local stand-in).")


def _record(item: dict[str, Any]) -> ArticleRecord:
    markdown = item.get("body_markdown")
    text = markdown if isinstance(markdown, str) and markdown.strip() else fragment_to_markdown(item.get("body") or "")
    updated = item.get("updated_at")
    return ArticleRecord(
        external_id=str(item["id"]),
        title=str(item.get("title") or f"Article {item['id']}"),
        text=text,
        url=item.get("url") if isinstance(item.get("url"), str) else None,
        updated_at=datetime.fromtimestamp(updated, tz=UTC) if isinstance(updated, int) else None,
    )


async def sync_articles(client: IntercomClient, sink: KnowledgeSyncSink) -> KnowledgeReport:
    """Page through the Help Center's articles and commit them page by page."""
    report = KnowledgeReport()
    listed: set[str] = set()
    published: set[str] = set()
    total = 0
    page, pages = 1, 1
    max_pages = get_settings().knowledge.max_pages
    while page <= pages:
        body = await client.list_articles(page, ARTICLES_PER_PAGE)
        pages = int((body.get("pages") or {}).get("total_pages") or 1)
        total = int(body.get("total_count") or 0)
        batch: SyncBatch[ArticleRecord] = SyncBatch()
        for item in body.get("data") or []:
            if not isinstance(item, dict) or "id" not in item:
                report.skip("malformed")
                continue
            external_id = str(item["id"])
            listed.add(external_id)
            report.seen += 1
            if item.get("state") != "published":
                report.skip("draft")
                continue
            if len(published) >= max_pages:
                report.skip("max_pages")
                continue
            published.add(external_id)
            batch.records.append(_record(item))
        sink.commit(batch)
        page += 1
    final: SyncBatch[ArticleRecord] = SyncBatch()
    if len(listed) >= total and len(published) < max_pages:
        gone = sink.active_ids() - published
        final.deleted = {external_id: datetime.now(UTC) for external_id in sorted(gone)}
        report.removed = len(gone)
    sink.commit(final)
    return report


async def sync(config: IntercomArticlesConfig, sink: SyncSink[ArticleRecord], since: int | None) -> KnowledgeReport:
    """One sync: one client (one httpx client, closed at the end), token read from the named variable."""
    del since  # the articles list has no "changed since" filter: unchanged articles cost a hash
    token = resolve_token(token_env=config.token_env)
    async with IntercomClient(token, region=config.region, base_url=config.base_url) as client:
        return await sync_articles(client, knowledge_sink(sink))


CONNECTOR: Connector[ArticleRecord] = Connector(
    kind="intercom-articles",
    label="Intercom Help Center",
    description="an Intercom Help Center's articles",
    record_type=ArticleRecord,
    config_model=IntercomArticlesConfig,
    sync=sync,
)
