"""Folder knowledge source: Markdown and HTML files as articles and embedded passages, incremental by content hash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session

from threadline.config import get_settings
from threadline.connectors.knowledge.sink import PASSAGE_INDEX
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.connectors.sources import SourceError, add_source
from threadline.db.models import Article, DeadLetter, Passage

INVOICES_MD = """# Recurring invoices

Intro to invoices.

## Schedule an invoice
Open Billing, choose Invoices, then Schedule.

## Cancel a schedule
Open the schedule and press Cancel.
"""

EXPORT_HTML = """<html><head><title>Export your data | Acme Help</title></head>
<body><nav><a href="/">Home</a> <a href="/pricing">Pricing</a></nav>
<article><h1>Export your data</h1>
<p>You can export every report as CSV from the Reports page. Exports include all columns you selected.</p>
<h2>Scheduled exports</h2>
<p>Scheduled exports are e-mailed every Monday to the account owner, as a CSV attachment.</p>
</article><footer>Copyright Acme</footer></body></html>"""


def _folder(tmp_path: Path) -> Path:
    root = tmp_path / "docs"
    (root / "billing").mkdir(parents=True)
    (root / "billing" / "invoices.md").write_text(INVOICES_MD)
    (root / "export.html").write_text(EXPORT_HTML)
    (root / "notes.txt").write_text("not an article")
    (root / "broken.md").write_bytes(b"# Broken\n\xff\xfe not utf-8")
    (root / "huge.md").write_text("# Huge\n" + "x" * 5_000)
    return root


def _add(engine, root: Path) -> None:
    with Session(engine) as session, session.begin():
        add_knowledge_source(session, "folder", "docs", {"path": str(root), "base_url": "https://help.acme.test/"})


def test_folder_sync_embeds_passages_then_costs_nothing_when_unchanged(db_engine, embedder, tmp_path, monkeypatch):
    monkeypatch.setenv("THREADLINE_KNOWLEDGE_MAX_PAGE_BYTES", "2000")
    get_settings.cache_clear()  # the engine fixture read the settings before the variable was set
    root = _folder(tmp_path)
    _add(db_engine, root)

    first = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert first.counters["created"] == 2 and first.counters["dead_lettered"] == 1, first.counters
    assert first.counters["skipped_too_large"] == 1 and first.counters["skipped_unsupported_type"] == 1
    assert first.counters["passages_embedded"] >= 4 and first.index_built
    with Session(db_engine) as session:
        articles = {a.external_id: a for a in session.execute(select(Article)).scalars()}
        assert set(articles) == {"billing/invoices.md", "export.html"}
        invoices = articles["billing/invoices.md"]
        assert invoices.title == "Recurring invoices" and invoices.url == "https://help.acme.test/billing/invoices.md"
        assert invoices.created_by_sync_id == first.sync_id == invoices.changed_by_sync_id
        export = articles["export.html"]
        assert export.title.startswith("Export your data") and "Home" not in export.body  # navigation dropped
        passages = session.execute(select(Passage).where(Passage.article_id == invoices.id)).scalars().all()
        paths = [tuple(p.heading_path) for p in passages]
        assert ("Recurring invoices", "Schedule an invoice") in paths
        for passage in passages:
            assert invoices.body[passage.start_offset : passage.end_offset] == passage.text
            assert passage.created_by_sync_id == first.sync_id and len(passage.embedding) == 384
        letter = session.execute(select(DeadLetter)).scalar_one()
        assert letter.stage == "knowledge" and "broken.md" in letter.item and letter.retried_at is None
        assert "not UTF-8" in letter.error_message
        valid = session.execute(
            text("SELECT i.indisvalid FROM pg_class c JOIN pg_index i ON i.indexrelid = c.oid WHERE c.relname = :n"),
            {"n": PASSAGE_INDEX},
        ).scalar_one()
        assert valid is True

    second = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert second.counters["unchanged"] == 2 and second.counters["passages_embedded"] == 0
    assert second.counters["created"] == second.counters["changed"] == 0 and not second.index_built

    (root / "billing" / "invoices.md").write_text(INVOICES_MD + "\n## Pause a schedule\nPress Pause.\n")
    (root / "export.html").unlink()
    (root / "broken.md").write_text("# Fixed\nNow readable.\n")
    third = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert third.counters["changed"] == 1 and third.counters["created"] == 1
    assert third.counters["removed"] == 1 and third.counters["dead_lettered"] == 0
    with Session(db_engine) as session:
        articles = {a.external_id: a for a in session.execute(select(Article)).scalars()}
        invoices = articles["billing/invoices.md"]
        assert invoices.created_by_sync_id == first.sync_id and invoices.changed_by_sync_id == third.sync_id
        assert articles["export.html"].status == "removed" and articles["export.html"].removed_at is not None
        versions = session.execute(
            select(Passage.content_hash).where(Passage.article_id == invoices.id).distinct()
        ).all()
        assert len(versions) == 2  # the old version's passages stay for the snapshots that used them
        letters = session.execute(select(DeadLetter).order_by(DeadLetter.id)).scalars().all()
        assert [letter.attempts for letter in letters] == [1, 2]  # failed in the first and the second sync
        assert all(letter.retried_at is not None for letter in letters)  # read in the third: none open


def test_a_missing_folder_fails_the_sync_and_records_it(db_engine, embedder, tmp_path):
    from threadline.connectors.base import ConnectorError
    from threadline.db.models import KnowledgeSync

    _add(db_engine, tmp_path / "nowhere")
    with pytest.raises(ConnectorError):
        sync_knowledge(db_engine, "docs", embedder=embedder)
    with Session(db_engine) as session:
        sync = session.execute(select(KnowledgeSync)).scalar_one()
        assert sync.status == "failed" and "does not exist" in (sync.error or "")


def test_knowledge_kinds_are_not_conversation_sources(db_session):
    with pytest.raises(SourceError, match="knowledge add folder"):
        add_source(db_session, "folder", "docs", {"path": "/tmp"})


def test_cli_add_sync_list(cli_env, tmp_path):
    from test_cli import threadline

    root = tmp_path / "docs"
    root.mkdir()
    (root / "invoices.md").write_text(INVOICES_MD)
    added = threadline(cli_env, "knowledge", "add", "folder", "--name", "docs", "--path", str(root))
    assert "folder knowledge source docs" in added.stdout
    synced = json.loads(threadline(cli_env, "knowledge", "sync", "docs", "--json").stdout)
    assert synced["created"] == 1 and synced["passages_embedded"] >= 2
    listed = json.loads(threadline(cli_env, "knowledge", "list", "--json").stdout)
    assert (
        listed[0]["name"] == "docs" and listed[0]["articles"] == 1 and listed[0]["last_sync"]["status"] == "succeeded"
    )
    sources_add = threadline(cli_env, "sources", "add", "--help")
    assert "folder" not in sources_add.stdout


FRONT_MATTER_MD = """---
title: "Set up recurring invoices"
updated: 2026-03-02
tags: [billing]
---

# Recurring invoices

Schedule them from the Billing page.

---

A thematic break further down is text, not front matter.
"""


def test_front_matter_date_and_title_are_read_and_stripped():
    from threadline.connectors.knowledge.folder import front_matter

    matter = front_matter(FRONT_MATTER_MD)
    assert matter.updated_at is not None and matter.updated_at.isoformat() == "2026-03-02T00:00:00+00:00"
    assert matter.fields["title"] == '"Set up recurring invoices"'
    assert matter.body.startswith("# Recurring invoices") and "updated:" not in matter.body
    assert "thematic break" in matter.body  # the closing fence is the first one, not the last
    assert front_matter("---\npublished: 2026-01-05T10:30:00Z\n---\nText").updated_at.isoformat() == (  # type: ignore[union-attr]
        "2026-01-05T10:30:00+00:00"
    )
    assert front_matter("---\nupdated: last week\n---\nText").updated_at is None  # not a date: no date
    unclosed = "---\nupdated: 2026-03-02\nno closing fence"
    assert front_matter(unclosed).body == unclosed and front_matter(unclosed).updated_at is None
    assert front_matter("# Title\n---\nupdated: 2026-03-02\n---\n").fields == {}  # not at the top: not front matter


def test_folder_article_date_is_its_front_matter_date_never_the_file_time(db_engine, embedder, tmp_path):
    root = tmp_path / "docs"
    root.mkdir()
    (root / "dated.md").write_text(FRONT_MATTER_MD)
    (root / "undated.md").write_text(INVOICES_MD)
    _add(db_engine, root)
    sync_knowledge(db_engine, "docs", embedder=embedder)
    with Session(db_engine) as session:
        articles = {a.external_id: a for a in session.execute(select(Article)).scalars()}
        dated = articles["dated.md"]
        assert dated.source_updated_at is not None and dated.source_updated_at.date().isoformat() == "2026-03-02"
        assert dated.title == "Recurring invoices" and not dated.body.startswith("---") and "updated:" not in dated.body
        assert articles["undated.md"].source_updated_at is None  # no front matter: no date (not the mtime)

    (root / "dated.md").write_text(FRONT_MATTER_MD.replace("2026-03-02", "2026-04-10"))  # only the date changes
    again = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert again.counters["unchanged"] == 2 and again.counters["passages_embedded"] == 0
    with Session(db_engine) as session:
        updated = session.execute(select(Article.source_updated_at).where(Article.external_id == "dated.md")).scalar()
        assert updated is not None and updated.date().isoformat() == "2026-04-10"
