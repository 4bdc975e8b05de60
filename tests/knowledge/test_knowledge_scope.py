"""Knowledge attached to conversation sources: the CLI, and which knowledge a run's coverage uses."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from coverage_fixture import ARTICLES, BASE_URL, write_conversations
from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from threadline.connectors.files.importer import import_file
from threadline.connectors.knowledge.attachments import attach_knowledge, detach_knowledge, knowledge_for_sources
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.connectors.store import get_or_create_source
from threadline.db.engine import session_scope
from threadline.db.models import (
    Conversation,
    KnowledgeSource,
    Passage,
    Run,
    RunConfusingArticle,
    RunDocGap,
    RunKnowledgeSource,
    RunTheme,
    RunThemePassage,
    Source,
    SourceKnowledge,
    ThemeMember,
)
from threadline.engine.runs import create_run, execute_run


def _sources(engine, *names: str) -> dict[str, int]:
    with Session(engine) as session, session.begin():
        return {name: get_or_create_source(session, name).id for name in names}


def test_cli_attach_detach_list_and_add_with_source(db_engine, cli_env, tmp_path: Path):
    from test_cli import threadline

    _sources(db_engine, "alpha", "beta")
    root = tmp_path / "docs"
    root.mkdir()
    added = threadline(
        cli_env, "knowledge", "add", "folder", "--name", "docs", "--path", str(root), "--source", "alpha"
    )
    assert "attached to alpha" in added.stdout
    threadline(cli_env, "knowledge", "add", "folder", "--name", "other", "--path", str(root))
    first = threadline(cli_env, "knowledge", "attach", "other", "--source", "beta", "--source", "alpha")
    assert first.stdout.count("attached to source") == 2 and "already" not in first.stdout
    again = threadline(cli_env, "knowledge", "attach", "other", "--source", "beta")  # idempotent
    assert "already attached to source beta" in again.stdout
    listed = {
        row["name"]: row["sources"] for row in json.loads(threadline(cli_env, "knowledge", "list", "--json").stdout)
    }
    assert listed == {"docs": ["alpha"], "other": ["alpha", "beta"]}
    table = threadline(cli_env, "knowledge", "list").stdout
    assert "beta" in table and "(none)" not in table  # the attached sources column
    detached = threadline(cli_env, "knowledge", "detach", "other", "--source", "alpha")
    assert "detached from source alpha" in detached.stdout
    listed = {
        row["name"]: row["sources"] for row in json.loads(threadline(cli_env, "knowledge", "list", "--json").stdout)
    }
    assert listed == {"docs": ["alpha"], "other": ["beta"]}
    assert json.loads(threadline(cli_env, "sources", "show", "alpha", "--json").stdout)["knowledge"] == ["docs"]
    assert "knowledge: other" in threadline(cli_env, "sources", "show", "beta").stdout

    for args, message in (
        (("attach", "nope", "--source", "alpha"), "no knowledge source named 'nope'"),
        (("attach", "docs", "--source", "gamma", "--source", "delta"), "no source named 'gamma', 'delta'"),
        (("detach", "docs", "--source", "gamma"), "no source named 'gamma'"),
        (("attach", "docs"), "--source"),
    ):
        failed = threadline(cli_env, "knowledge", *args, check=False)
        assert failed.returncode == 2, failed
        lines = failed.stderr.strip().splitlines()
        assert len(lines) == 1 and message in lines[0] and "Traceback" not in failed.stderr, failed.stderr
    unknown = threadline(
        cli_env, "knowledge", "add", "folder", "--name", "third", "--path", str(root), "--source", "gamma", check=False
    )
    assert unknown.returncode == 2 and "no source named 'gamma'" in unknown.stderr
    with Session(db_engine) as session:  # the failed add created nothing
        assert session.execute(select(KnowledgeSource.id).where(KnowledgeSource.name == "third")).first() is None


def test_attachments_cascade_and_select_the_scopes_knowledge(db_engine, tmp_path: Path):
    ids = _sources(db_engine, "alpha", "beta", "gamma")
    with Session(db_engine) as session, session.begin():
        for name in ("help-a", "help-b", "loose"):
            add_knowledge_source(session, "folder", name, {"path": str(tmp_path)})
        assert attach_knowledge(session, "help-a", ["alpha"]) == ["alpha"]
        assert attach_knowledge(session, "help-b", ["beta", "beta"]) == ["beta"]
        assert attach_knowledge(session, "help-b", ["beta"]) == []
    with Session(db_engine) as session:
        assert sorted(knowledge_for_sources(session, [ids["alpha"]]).sources.values()) == ["help-a"]
        both = knowledge_for_sources(session, [ids["alpha"], ids["beta"]])
        assert sorted(both.sources.values()) == ["help-a", "help-b"] and both.attached
        unattached = knowledge_for_sources(session, [ids["gamma"]])  # no attachment in the scope: all knowledge
        assert sorted(unattached.sources.values()) == ["help-a", "help-b", "loose"] and not unattached.attached
        assert sorted(knowledge_for_sources(session, [ids["alpha"], ids["gamma"]]).sources.values()) == ["help-a"]
    with Session(db_engine) as session, session.begin():
        assert detach_knowledge(session, "help-a", ["alpha"]) == ["alpha"]
        session.execute(delete(Source).where(Source.id == ids["beta"]))  # deleting a source deletes its attachments
    with Session(db_engine) as session:
        assert session.execute(select(SourceKnowledge)).all() == []


RECURRING_TITLE = "Set up recurring invoices"
TRELLO_TITLE = "Import projects from Trello"
RECURRING_HEADING = ("feature", "Make an invoice recurring")  # a heading of the recurring article: a gazetteer term


@pytest.fixture()
def two_scopes(db_engine, embedder, tmp_path: Path) -> Path:
    """Conversation sources `a` and `b` (the same three problems each), knowledge `help-a` (recurring invoices) and
    `help-b` (Trello import), synced and not attached."""
    conversations = write_conversations(tmp_path / "conversations.jsonl")
    for name in ("a", "b"):
        assert import_file(db_engine, conversations, source_name=name).ok
    for name, article in (("help-a", "recurring-invoices.md"), ("help-b", "import-from-trello.md")):
        root = tmp_path / name
        root.mkdir()
        (root / article).write_text(ARTICLES[article])
        with Session(db_engine) as session, session.begin():
            add_knowledge_source(session, "folder", name, {"path": str(root), "base_url": BASE_URL})
        assert sync_knowledge(db_engine, name, embedder=embedder).counters["created"] == 1
    return tmp_path


def _attach(engine, knowledge: str, *sources: str, attach: bool = True) -> None:
    with Session(engine) as session, session.begin():
        (attach_knowledge if attach else detach_knowledge)(session, knowledge, list(sources))


def _run_of(engine, embedder, *sources: str) -> Run:
    with session_scope(engine) as session:
        run_id = create_run(session, sources=list(sources)).id
    run = execute_run(engine, run_id, embedder)
    assert run.status == "succeeded", run.counters
    return run


def _theme_of(session: Session, run_id: int, problem: str) -> int:
    """The leaf theme most of the run's conversations of `problem` are in."""
    return session.execute(
        select(ThemeMember.theme_id)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id, Conversation.external_id.like(f"{problem}-%"))
        .group_by(ThemeMember.theme_id)
        .order_by(func.count().desc())
        .limit(1)
    ).scalar_one()


def _documentation(session: Session, run_id: int) -> dict[str, object]:
    """What the run's snapshot says: titles of passages, problems of gaps, confusing titles, knowledge used, entities."""
    problems = {p: _theme_of(session, run_id, p) for p in ("recurring", "slack", "trello")}
    by_theme = {theme: problem for problem, theme in problems.items()}
    recurring = session.get(RunTheme, (run_id, problems["recurring"]))
    return {
        "passages": sorted(
            set(
                session.execute(select(RunThemePassage.article_title).where(RunThemePassage.run_id == run_id)).scalars()
            )
        ),
        "gaps": sorted(
            by_theme[t] for t in session.execute(select(RunDocGap.theme_id).where(RunDocGap.run_id == run_id)).scalars()
        ),
        "confusing": sorted(
            session.execute(
                select(RunConfusingArticle.article_title).where(RunConfusingArticle.run_id == run_id)
            ).scalars()
        ),
        "knowledge": sorted(
            (row.name, row.attached)
            for row in session.execute(select(RunKnowledgeSource).where(RunKnowledgeSource.run_id == run_id)).scalars()
        ),
        "recurring_entities": sorted((e["type"], e["value"]) for e in (recurring.entities or [])),
    }


def test_a_run_uses_only_the_knowledge_attached_to_its_sources(db_engine, embedder, two_scopes):
    _attach(db_engine, "help-a", "a")
    _attach(db_engine, "help-b", "b")
    only_a = _run_of(db_engine, embedder, "a")
    assert only_a.counters["coverage"]["knowledge_sources"] == 1, only_a.counters
    only_b = _run_of(db_engine, embedder, "b")
    both = _run_of(db_engine, embedder, "a", "b")
    with Session(db_engine) as session:
        a, b, ab = (_documentation(session, run.id) for run in (only_a, only_b, both))
    # a: only help-a answers; Trello is a gap against a's knowledge, and its article (help-b) is not a's to confuse
    assert a["passages"] == [RECURRING_TITLE] and a["gaps"] == ["slack", "trello"] and a["confusing"] == [], a
    assert a["knowledge"] == [("help-a", True)] and RECURRING_HEADING in a["recurring_entities"], a
    # b: only help-b; the gazetteer has none of help-a's headings
    assert b["passages"] == [TRELLO_TITLE] and b["gaps"] == ["recurring", "slack"], b
    assert b["confusing"] == [TRELLO_TITLE] and b["knowledge"] == [("help-b", True)], b
    assert RECURRING_HEADING not in b["recurring_entities"], b
    # a and b: both
    assert ab["passages"] == sorted([RECURRING_TITLE, TRELLO_TITLE]), ab
    assert ab["gaps"] == ["slack"] and ab["confusing"] == [TRELLO_TITLE], ab
    assert ab["knowledge"] == [("help-a", True), ("help-b", True)], ab


def test_without_attachments_in_the_scope_a_run_uses_all_knowledge(db_engine, embedder, two_scopes):
    _attach(db_engine, "help-b", "b")  # only the other source has an attachment: a's scope has none
    run = _run_of(db_engine, embedder, "a")
    with Session(db_engine) as session:
        documentation = _documentation(session, run.id)
    assert documentation["passages"] == sorted([RECURRING_TITLE, TRELLO_TITLE]) and documentation["gaps"] == ["slack"]
    assert documentation["knowledge"] == [("help-a", False), ("help-b", False)], documentation


def test_detaching_after_a_run_leaves_its_snapshot_and_recorded_knowledge_unchanged(db_engine, embedder, two_scopes):
    _attach(db_engine, "help-a", "a")
    first = _run_of(db_engine, embedder, "a")
    with Session(db_engine) as session:
        before = _documentation(session, first.id)
    assert before["knowledge"] == [("help-a", True)] and before["passages"] == [RECURRING_TITLE], before
    _attach(db_engine, "help-a", "a", attach=False)
    _attach(db_engine, "help-b", "a")
    second = _run_of(db_engine, embedder, "a")
    with Session(db_engine) as session:
        assert _documentation(session, first.id) == before
        after = _documentation(session, second.id)
        # the passages the first run showed are the versions (content hash) it read
        for row in session.execute(select(RunThemePassage).where(RunThemePassage.run_id == first.id)).scalars():
            passage = session.get(Passage, row.passage_id)
            assert passage is not None and passage.content_hash == row.content_hash
    assert after["knowledge"] == [("help-b", True)] and after["passages"] == [TRELLO_TITLE], after
