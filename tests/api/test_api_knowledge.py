"""Knowledge sources over the HTTP API: list and detail, and POST sync queueing a `threadline.knowledge_sync`
job that a real `threadline worker` runs (a folder knowledge source: no network needed).

Each test uses its own freshly migrated database.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, select, text
from sqlalchemy.orm import Session
from support import close_for_real, worker_process

from threadline.config import Settings
from threadline.connectors.knowledge.sources import add_knowledge_source, sync_knowledge
from threadline.connectors.knowledge.syncs import KNOWLEDGE_LOCK_NAMESPACE
from threadline.db.engine import session_scope
from threadline.db.models import KnowledgeSource, KnowledgeSync

JOB_TIMEOUT_S = 120  # a worker starts, loads the embedder and syncs two pages: seconds, generous for 2 loaded cores
WORKER_FLAGS = ("--concurrency", "1", "--heartbeat", "1", "--stalled-after", "4", "--nice", "0")
INVOICES_MD = "# Invoices\n\n## Schedule an invoice\nOpen Billing, choose Invoices, then Schedule.\n"
EXPORT_MD = "# Export\n\nEvery report can be exported as CSV from the Reports page.\n"
PLANTED_EMAIL = "jane.doe@example.com"  # made up: a path carrying personal data, never shown as is


@pytest.fixture
def api(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    from threadline.app import create_app
    from threadline.server.tokens import create_token

    with session_scope(db_engine) as session:
        api_token = create_token(session, "knowledge-tests")
    app = create_app(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, headers={"Authorization": f"Bearer {api_token}"}, follow_redirects=False) as client:
        yield client


def add_folder(engine: Engine, tmp_path: Path, name: str = "docs", *, pages: bool = True) -> Path:
    root = tmp_path / name
    if pages:
        root.mkdir(parents=True)
        (root / "invoices.md").write_text(INVOICES_MD)
        (root / "export.md").write_text(EXPORT_MD)
    with Session(engine) as session, session.begin():
        add_knowledge_source(session, "folder", name, {"path": str(root)})
    return root


def knowledge_jobs(engine: Engine) -> list[tuple[int, str, dict]]:
    with session_scope(engine) as session:
        rows = session.execute(
            text("SELECT id, status::text, args FROM procrastinate_jobs WHERE task_name = 'threadline.knowledge_sync'")
        ).all()
    return sorted((int(r[0]), r[1], r[2]) for r in rows)


def wait_for(predicate: Callable[[], Any], what: str, log: Path) -> Any:
    deadline = time.monotonic() + JOB_TIMEOUT_S
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log.exists() else ""
    raise AssertionError(f"timed out after {JOB_TIMEOUT_S}s waiting for {what}\n{tail}")


def test_knowledge_endpoints_need_a_token(api, db_engine, tmp_path):
    add_folder(db_engine, tmp_path)
    anonymous = {"Authorization": ""}
    for method, path in (
        ("get", "/api/knowledge"),
        ("get", "/api/knowledge/docs"),
        ("post", "/api/knowledge/docs/sync"),
    ):
        response = api.request(method.upper(), path, headers=anonymous)
        assert response.status_code == 401, (method, path, response.text)
    assert knowledge_jobs(db_engine) == []


def test_unknown_knowledge_source_is_404(api, db_engine):
    assert api.get("/api/knowledge/nowhere").status_code == 404
    assert api.post("/api/knowledge/nowhere/sync").status_code == 404
    assert api.get("/api/knowledge").json()["items"] == []
    assert knowledge_jobs(db_engine) == []


def test_post_sync_queues_one_job_that_a_worker_runs(api, db_engine, cli_env, tmp_path):
    add_folder(db_engine, tmp_path)
    add_folder(db_engine, tmp_path, "other")
    first = api.post("/api/knowledge/docs/sync")
    assert first.status_code == 202, first.text
    body = first.json()
    assert body["created"] is True and body["status"] == "queued" and body["name"] == "docs"
    second = api.post("/api/knowledge/docs/sync")
    assert second.status_code == 202 and second.json() == {**body, "created": False}  # the same queued job
    source_id = body["knowledge_source_id"]
    assert knowledge_jobs(db_engine) == [(body["job_id"], "todo", {"knowledge_source_id": source_id})]

    listed = api.get("/api/knowledge").json()
    assert [(k["name"], k["kind"], k["articles"], k["last_sync"]) for k in listed["items"]] == [
        ("docs", "folder", 0, None),
        ("other", "folder", 0, None),
    ]
    assert listed["items"][0]["job"] == {"job_id": body["job_id"], "status": "queued"}
    assert listed["items"][1]["job"] is None
    assert api.get("/api/knowledge", params={"limit": 1}).json()["next_offset"] == 1  # a bounded page

    log = tmp_path / "worker.log"
    env = {**cli_env, "HF_HUB_OFFLINE": "1", "THREADLINE_LOG_LEVEL": "INFO"}
    with worker_process(env, log, *WORKER_FLAGS):
        wait_for(lambda: [s for _, s, _ in knowledge_jobs(db_engine)] == ["succeeded"], "the knowledge sync job", log)

    with Session(db_engine) as session:
        rows = session.execute(select(KnowledgeSync)).scalars().all()
    assert [(r.knowledge_source_id, r.job_id, r.status) for r in rows] == [(source_id, body["job_id"], "succeeded")]
    detail = api.get("/api/knowledge/docs").json()
    assert detail["articles"] == 2 and detail["removed_articles"] == 0 and detail["job"] is None
    assert detail["options"]["path"].endswith("/docs")
    assert [(s["job_id"], s["status"], s["counters"]["created"]) for s in detail["syncs"]] == [
        (body["job_id"], "succeeded", 2)
    ]
    assert detail["last_sync"] == detail["syncs"][0]

    # After it ended, a new POST queues a new job.
    again = api.post("/api/knowledge/docs/sync").json()
    assert again["created"] is True and again["job_id"] != body["job_id"]


def test_a_sync_left_running_reads_interrupted_and_errors_are_masked(api, db_engine, embedder, tmp_path):
    add_folder(db_engine, tmp_path / PLANTED_EMAIL, "gone", pages=False)  # its folder does not exist
    with pytest.raises(Exception, match="does not exist"):
        sync_knowledge(db_engine, "gone", embedder=embedder)
    failed = api.get("/api/knowledge/gone").json()
    assert failed["last_sync"]["status"] == "failed" and "does not exist" in failed["last_sync"]["error"]
    assert PLANTED_EMAIL not in str(failed), failed

    with Session(db_engine) as session, session.begin():
        source_id = session.execute(select(KnowledgeSource.id).where(KnowledgeSource.name == "gone")).scalar_one()
        session.add(KnowledgeSync(knowledge_source_id=source_id, status="running"))  # its process was killed
    assert api.get("/api/knowledge/gone").json()["last_sync"]["status"] == "interrupted"

    holder = db_engine.connect()  # a live process syncing it: the same row reads running
    holder.execute(text("SELECT pg_advisory_lock(:ns, :id)"), {"ns": KNOWLEDGE_LOCK_NAMESPACE, "id": source_id})
    holder.commit()
    try:
        assert api.get("/api/knowledge").json()["items"][0]["last_sync"]["status"] == "running"
    finally:
        close_for_real(holder, db_engine)  # a pooled connection would keep its session and lock
    assert api.get("/api/knowledge").json()["items"][0]["last_sync"]["status"] == "interrupted"


def test_a_job_finding_another_sync_running_waits_and_writes_nothing(db_engine, tmp_path):
    from threadline.engine.knowledge_sync import KnowledgeSyncWaiting, run_knowledge_sync_job

    add_folder(db_engine, tmp_path)
    with Session(db_engine) as session:
        source_id = session.execute(select(KnowledgeSource.id)).scalar_one()
    holder = db_engine.connect()
    holder.execute(text("SELECT pg_advisory_lock(:ns, :id)"), {"ns": KNOWLEDGE_LOCK_NAMESPACE, "id": source_id})
    holder.commit()
    try:
        with pytest.raises(KnowledgeSyncWaiting) as waiting:
            run_knowledge_sync_job(db_engine, source_id, job_id=1)
    finally:
        holder.invalidate()  # closed for real (a pooled connection would keep its session and lock)
    assert waiting.value.delay_s > 0
    with Session(db_engine) as session:
        assert session.execute(select(KnowledgeSync)).scalars().all() == []


def test_cli_sync_queue_defers_one_job(cli_env, db_engine, tmp_path):
    import json

    from test_cli import threadline

    add_folder(db_engine, tmp_path)
    first = json.loads(threadline(cli_env, "knowledge", "sync", "docs", "--queue", "--json").stdout)
    assert first["created"] is True and first["status"] == "queued"
    second = json.loads(threadline(cli_env, "knowledge", "sync", "docs", "--queue", "--json").stdout)
    assert second == {**first, "created": False}
    assert [(job, status) for job, status, _ in knowledge_jobs(db_engine)] == [(first["job_id"], "todo")]
    with Session(db_engine) as session:
        assert session.execute(select(KnowledgeSync)).scalars().all() == []  # queued, not run here
    unknown = threadline(cli_env, "knowledge", "sync", "nowhere", "--queue", check=False)
    assert unknown.returncode == 2 and "no knowledge source named 'nowhere'" in unknown.stderr
