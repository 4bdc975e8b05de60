"""One sync at a time per knowledge source: a second concurrent sync is refused and writes nothing;
a sync whose process died blocks nobody and reads as interrupted."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.orm import Session
from support import close_for_real

from threadline.connectors.knowledge.sources import add_knowledge_source, list_knowledge, sync_knowledge
from threadline.connectors.knowledge.syncs import KNOWLEDGE_LOCK_NAMESPACE, KnowledgeSyncBusy
from threadline.db.models import Article, KnowledgeSync

GATE_TIMEOUT_S = 60  # the first sync waits at most this long for the test to let it go on


class GatedEmbedder:
    """The real embedder, whose first `embed` call waits until the test opens the gate (a sync held mid-way)."""

    def __init__(self, inner: Any) -> None:
        self.inner = inner
        self.entered = threading.Event()
        self.gate = threading.Event()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.inner, name)

    def embed(self, texts: Any) -> Any:
        self.entered.set()
        assert self.gate.wait(GATE_TIMEOUT_S), "the test never opened the gate"
        return self.inner.embed(texts)


def _docs(engine, tmp_path: Path, name: str = "docs") -> Path:
    root = tmp_path / name
    root.mkdir()
    (root / "invoices.md").write_text("# Invoices\n\n## Schedule\nOpen Billing, then Schedule.\n")
    with Session(engine) as session, session.begin():
        add_knowledge_source(session, "folder", name, {"path": str(root)})
    return root


def _syncs(engine) -> list[tuple[str, str | None]]:
    with Session(engine) as session:
        rows = session.execute(select(KnowledgeSync.status, KnowledgeSync.error).order_by(KnowledgeSync.id)).all()
    return [(r.status, r.error) for r in rows]


def test_a_second_concurrent_sync_is_refused_and_writes_nothing(db_engine, embedder, tmp_path):
    root = _docs(db_engine, tmp_path)
    _docs(db_engine, tmp_path, "other")
    gated = GatedEmbedder(embedder)
    outcome: dict[str, Any] = {}

    def first() -> None:
        try:
            outcome["result"] = sync_knowledge(db_engine, "docs", embedder=gated)
        except BaseException as exc:  # reported by the assertion below
            outcome["error"] = exc

    thread = threading.Thread(target=first)
    thread.start()
    try:
        assert gated.entered.wait(GATE_TIMEOUT_S), outcome
        (root / "export.md").write_text("# Export\n\nReports can be exported as CSV.\n")
        with pytest.raises(KnowledgeSyncBusy, match="'docs' is being synced by another process"):
            sync_knowledge(db_engine, "docs", embedder=embedder)
        assert [s for s, _ in _syncs(db_engine)] == ["running"]  # the refused sync opened no row
        # Another knowledge source is not held up by it.
        assert sync_knowledge(db_engine, "other", embedder=embedder).counters["created"] == 1
    finally:
        gated.gate.set()
        thread.join(GATE_TIMEOUT_S)
    assert "error" not in outcome, outcome
    assert [s for s, _ in _syncs(db_engine)] == ["succeeded", "succeeded"]

    # Once the first ended, the next sync runs (and picks up the page added meanwhile).
    again = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert again.counters["created"] == 1
    with Session(db_engine) as session:
        assert session.execute(select(Article.external_id).where(Article.changed_by_sync_id == again.sync_id)).all()


def test_a_sync_left_running_by_a_dead_process_reads_interrupted_and_blocks_nothing(db_engine, embedder, tmp_path):
    _docs(db_engine, tmp_path)
    with Session(db_engine) as session, session.begin():
        source_id = list_knowledge(session)[0]["id"]
        session.add(KnowledgeSync(knowledge_source_id=source_id, status="running"))  # its process was killed

    # A live process holding the lock: the row reads running, and a sync is refused.
    holder = db_engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:ns, :id)"), {"ns": KNOWLEDGE_LOCK_NAMESPACE, "id": source_id})
    holder.commit()
    try:
        with pytest.raises(KnowledgeSyncBusy):
            sync_knowledge(db_engine, "docs", embedder=embedder)
        with Session(db_engine) as session:
            assert list_knowledge(session)[0]["last_sync"]["status"] == "running"  # `knowledge list`
    finally:
        close_for_real(holder, db_engine)  # the process "dies": its connection, and the lock with it, are gone

    with Session(db_engine) as session:
        assert list_knowledge(session)[0]["last_sync"]["status"] == "interrupted"
    result = sync_knowledge(db_engine, "docs", embedder=embedder)
    assert result.counters["created"] == 1
    statuses = _syncs(db_engine)
    assert statuses[0] == ("failed", "interrupted: the process running this sync stopped before it ended")
    assert statuses[1] == ("succeeded", None)


def test_cli_sync_is_refused_in_one_line_while_another_runs(cli_env, db_engine, tmp_path):
    from test_cli import threadline

    _docs(db_engine, tmp_path)
    with Session(db_engine) as session:
        source_id = list_knowledge(session)[0]["id"]
    holder = db_engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:ns, :id)"), {"ns": KNOWLEDGE_LOCK_NAMESPACE, "id": source_id})
    holder.commit()
    try:
        refused = threadline(cli_env, "knowledge", "sync", "docs", check=False)
    finally:
        holder.invalidate()  # closed for real (a pooled connection would keep its session and lock)
    assert refused.returncode == 2
    message = refused.stderr.strip()
    assert "\n" not in message and "'docs' is being synced by another process" in message, refused.stderr
    assert "Traceback" not in refused.stderr + refused.stdout
    assert _syncs(db_engine) == []
