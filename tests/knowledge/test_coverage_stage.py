"""The `coverage` stage: passages per theme, documentation gaps and confusing articles, as a run's snapshot."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from coverage_fixture import write_conversations, write_help_center
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.connectors.files.importer import import_file
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.db.engine import session_scope
from threadline.db.models import (
    Conversation,
    Run,
    RunConfusingArticle,
    RunDocGap,
    RunThemePassage,
    ThemeMember,
)
from threadline.engine.runs import create_run, execute_run
from threadline.read.documentation import documentation


def _run(engine, embedder) -> Run:
    with session_scope(engine) as session:
        run_id = create_run(session).id
    run = execute_run(engine, run_id, embedder)
    assert run.status == "succeeded", run.counters
    return run


@pytest.fixture()
def tiny(db_engine, embedder, tmp_path: Path) -> Path:
    """The tiny fixture imported, and its help center added and synced (articles at BASE_URL)."""
    result = import_file(db_engine, write_conversations(tmp_path / "conversations.jsonl"), source_name="tiny")
    assert result.ok, result.report.problems[:3]
    root = write_help_center(tmp_path / "help")
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(
            session, "folder", "help", {"path": str(root), "base_url": "https://help.tallyboard.test/"}
        )
    synced = sync_knowledge(db_engine, "help", embedder=embedder)
    assert synced.counters["created"] == 2, synced.counters
    return root


def _problems(session: Session, run_id: int) -> dict[int, set[str]]:
    """{theme id: the fixture problems (id prefixes) of its members}."""
    rows = session.execute(
        select(ThemeMember.theme_id, Conversation.external_id)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id)
    )
    problems: dict[int, set[str]] = {}
    for theme_id, external_id in rows:
        problems.setdefault(theme_id, set()).add(external_id.split("-")[0])
    return problems


def _snapshot(session: Session, run_id: int) -> list[tuple]:
    rows: list[tuple] = []
    for table in (RunThemePassage, RunDocGap, RunConfusingArticle):
        for row in session.execute(select(table).where(table.run_id == run_id)).scalars():
            rows.append(tuple(sorted((k, repr(v)) for k, v in vars(row).items() if not k.startswith("_"))))
    return sorted(rows)


def test_coverage_finds_the_gap_and_the_confusing_article_on_a_tiny_help_center(db_engine, embedder, tiny):
    run = _run(db_engine, embedder)
    assert run.counters["coverage"]["passages"] >= 4 and run.counters["coverage"]["gaps"] == 1, run.counters
    with Session(db_engine) as session:
        problems = _problems(session, run.id)
        gap = session.execute(select(RunDocGap).where(RunDocGap.run_id == run.id)).scalar_one()
        assert problems[gap.theme_id] == {"slack"}
        assert gap.conversations == 6 and gap.customers == 6 and gap.question_share >= 0.5 and gap.rank == 1
        assert len(gap.example_conversation_ids) == 3
        passages = session.execute(select(RunThemePassage).where(RunThemePassage.run_id == run.id)).scalars().all()
        answered = {problems[p.theme_id].pop() if len(problems[p.theme_id]) == 1 else "mixed": p for p in passages}
        assert {p.article_title for p in passages} == {"Set up recurring invoices", "Import projects from Trello"}
        assert "slack" not in answered
        for passage in passages:
            assert passage.similarity >= 0.5 and len(passage.content_hash) == 64 and passage.article_url
        confusing = session.execute(select(RunConfusingArticle).where(RunConfusingArticle.run_id == run.id)).scalars()
        (article,) = confusing.all()
        assert article.article_title == "Import projects from Trello"
        assert article.linked_conversations == 6 and article.stuck_conversations == 6 and article.customers == 6
        examples = session.execute(
            select(Conversation.external_id).where(Conversation.id.in_(article.example_conversation_ids))
        ).scalars()
        assert {e.split("-")[0] for e in examples} == {"trello"}


def test_a_rerun_with_changed_knowledge_leaves_the_earlier_snapshot_untouched(db_engine, embedder, tiny):
    first = _run(db_engine, embedder)
    with Session(db_engine) as session:
        before = _snapshot(session, first.id)
    assert before
    (tiny / "slack-notifications.md").write_text(
        "# Get Slack notifications for tasks\n\nConnect Slack to get notified about tasks.\n\n"
        "## Send task notifications to a Slack channel\nOpen Settings, Integrations, Slack, and choose the channel "
        "that gets a notification when a task is assigned, commented on or changed.\n"
    )
    (tiny / "import-from-trello.md").unlink()
    sync_knowledge(db_engine, "help", embedder=embedder)
    second = _run(db_engine, embedder)
    with Session(db_engine) as session:
        assert _snapshot(session, first.id) == before  # the first run's snapshot reads the same
        (gap,) = session.execute(select(RunDocGap).where(RunDocGap.run_id == second.id)).scalars().all()
        assert _problems(session, second.id)[gap.theme_id] == {"trello"}  # Slack is answered now, Trello no longer
        titles = set(
            session.execute(select(RunThemePassage.article_title).where(RunThemePassage.run_id == second.id)).scalars()
        )
        assert "Get Slack notifications for tasks" in titles and "Import projects from Trello" not in titles
        assert (
            not session.execute(select(RunConfusingArticle).where(RunConfusingArticle.run_id == second.id))
            .scalars()
            .all()
        )  # the removed article is no longer linked knowledge


def test_a_run_without_knowledge_writes_nothing(db_engine, embedder, tmp_path):
    import_file(db_engine, write_conversations(tmp_path / "conversations.jsonl"), source_name="tiny")
    run = _run(db_engine, embedder)
    counters = run.counters["coverage"]
    assert {
        k: counters[k]
        for k in ("passages", "themes", "covered_themes", "gaps", "linked_articles", "confusing_articles")
    } == {
        "passages": 0,
        "themes": 0,
        "covered_themes": 0,
        "gaps": 0,
        "linked_articles": 0,
        "confusing_articles": 0,
    }
    with Session(db_engine) as session:
        assert _snapshot(session, run.id) == []


RECURRING_DAYS = [0, 9, 18, 31, 33, 36]  # days after 2026-10-01 of the six recurring-invoice conversations
ARTICLE_DATE = "2026-10-31"  # the recurring-invoices article's front-matter date: 3 conversations before, 3 after


def _spread_recurring(path: Path) -> None:
    """Move the recurring-invoice conversations (and their messages) to `RECURRING_DAYS`: volume rises after day 30."""
    rows = [json.loads(line) for line in path.read_text().splitlines()]
    for row in rows:
        if row["id"].startswith("recurring-"):
            shift = timedelta(days=RECURRING_DAYS[int(row["id"].split("-")[1])])
            row["created_at"] = (datetime.fromisoformat(row["created_at"]) + shift).isoformat()
            for message in row["messages"]:
                message["created_at"] = (datetime.fromisoformat(message["created_at"]) + shift).isoformat()
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_an_article_after_whose_date_its_theme_did_not_fall_is_confusing_by_volume(db_engine, embedder, tmp_path):
    conversations = write_conversations(tmp_path / "conversations.jsonl")
    _spread_recurring(conversations)
    assert import_file(db_engine, conversations, source_name="tiny").ok
    root = write_help_center(tmp_path / "help")
    recurring = root / "recurring-invoices.md"
    recurring.write_text(f"---\nupdated: {ARTICLE_DATE}\n---\n" + recurring.read_text())
    with Session(db_engine) as session, session.begin():
        add_knowledge_source(
            session, "folder", "help", {"path": str(root), "base_url": "https://help.tallyboard.test/"}
        )
    sync_knowledge(db_engine, "help", embedder=embedder)
    run = _run(db_engine, embedder)
    assert run.counters["coverage"]["volume_not_falling"] == 1, run.counters["coverage"]
    with Session(db_engine) as session:
        rows = session.execute(
            select(RunConfusingArticle).where(RunConfusingArticle.run_id == run.id).order_by(RunConfusingArticle.rank)
        ).scalars()
        by_kind = {row.kind: row for row in rows}
        assert set(by_kind) == {"still_stuck", "volume_not_falling"}  # Trello is still linked-then-stuck
        volume = by_kind["volume_not_falling"]
        assert volume.article_title == "Set up recurring invoices" and volume.linked_conversations is None
        assert _problems(session, run.id)[volume.theme_id] == {"recurring"}
        assert volume.article_updated_at is not None and volume.article_updated_at.date().isoformat() == ARTICLE_DATE
        assert (volume.conversations_before, volume.conversations_after, volume.window_days) == (3, 3, 30)
        assert volume.share_before is not None and volume.share_after == 1.0  # only this theme after the date
        examples = session.execute(
            select(Conversation.external_id).where(Conversation.id.in_(volume.example_conversation_ids))
        ).scalars()
        assert {e.split("-")[0] for e in examples} == {"recurring"}
        found = documentation(session, run.id)
    (shown,) = [a for a in found["confusing_articles"] if a["kind"] == "volume_not_falling"]
    assert shown["reason"] == (
        f"volume did not fall after it was updated on {ARTICLE_DATE}: 3 conversations in the 30 days before, 3 after"
    )
    assert shown["theme_id"] == volume.theme_id and shown["stuck_share"] is None
