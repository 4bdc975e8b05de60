"""Intercom Help Center articles -> knowledge articles, against the stand-in (every exchange validated against 2.16)."""

from __future__ import annotations

import asyncio

from sqlalchemy import select
from sqlalchemy.orm import Session
from threadline_testing.intercom import WorkspaceSpec

from threadline.connectors.knowledge import intercom_articles
from threadline.connectors.knowledge.html import fragment_to_markdown
from threadline.connectors.knowledge.sink import KnowledgeSink
from threadline.db.models import Article, KnowledgeSource, Passage


def _source(engine) -> int:
    with Session(engine) as session, session.begin():
        source = KnowledgeSource(name="help", kind="intercom-articles", options={}, sync_state={})
        session.add(source)
        session.flush()
        return source.id


def _sync(standin, engine, source_id: int, embedder) -> tuple[dict[str, int], dict[str, int]]:
    sink = KnowledgeSink(engine, source_id, None, embedder)

    async def run():
        async with standin.client() as client:
            return await intercom_articles.sync_articles(client, sink)

    report = asyncio.run(run())
    return report.counters(), sink.stats.counters()


def test_articles_sync_pages_skips_drafts_and_marks_removed(make_standin, db_engine, embedder, monkeypatch):
    monkeypatch.setattr(intercom_articles, "ARTICLES_PER_PAGE", 4)
    standin = make_standin(WorkspaceSpec(conversations=1, articles=10))
    source_id = _source(db_engine)

    seen, stored = _sync(standin, db_engine, source_id, embedder)
    assert seen["seen"] == 10 and seen["skipped_draft"] == 1 and stored["created"] == 9
    assert standin.stats.by_route["articles"] == 3  # 10 articles, 4 per page
    with Session(db_engine) as session:
        article = session.execute(select(Article).where(Article.external_id == "5000")).scalar_one()
        assert article.title == "How to manage your invoice"
        assert article.url == "https://help.example.test/standin-app/en/articles/5000"
        assert article.body.startswith("## Set up invoice\n\nOpen Settings and choose invoice.")
        paths = session.execute(select(Passage.heading_path).where(Passage.article_id == article.id)).scalars()
        assert sorted(tuple(p) for p in paths) == [("Set up invoice",), ("Troubleshooting",)]

    ws = standin.workspace
    ws.put_article("5001", title="How to manage your export", body="<h2>New</h2><p>Rewritten.</p>", at=1_800_000_000)
    del ws.articles["5002"]
    seen, stored = _sync(standin, db_engine, source_id, embedder)
    assert stored["changed"] == 1 and stored["unchanged"] == 7 and stored["created"] == 0
    assert seen["removed"] == 1 and stored["removed_articles"] == 1
    with Session(db_engine) as session:
        status = dict(session.execute(select(Article.external_id, Article.status)).all())
        assert status["5002"] == "removed" and status["5001"] == "active"


def test_fragment_to_markdown_keeps_headings_and_blocks():
    html = "<h2>Set up</h2><p>Open <b>Settings</b>.</p><ul><li>One</li><li>Two</li></ul><h3>Notes</h3><p>Done</p>"
    assert fragment_to_markdown(html) == "## Set up\n\nOpen Settings.\n\n- One\n\n- Two\n\n### Notes\n\nDone\n"
    assert fragment_to_markdown("plain text only") == "plain text only"
