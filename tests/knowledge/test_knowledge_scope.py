"""Knowledge attached to conversation sources: the CLI, and which knowledge a run's coverage uses."""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from threadline.connectors.knowledge.attachments import attach_knowledge, detach_knowledge, knowledge_for_sources
from threadline.connectors.knowledge.sources import add_knowledge_source
from threadline.connectors.store import get_or_create_source
from threadline.db.models import KnowledgeSource, Source, SourceKnowledge


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
