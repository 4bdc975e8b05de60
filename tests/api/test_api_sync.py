"""Source sync over the HTTP API: POST queues a `threadline.sync` job, a real `threadline worker`
runs it against the Intercom stand-in (uvicorn on 127.0.0.1, every exchange validated against
the 2.16 OpenAPI description), and GET shows the job's state, counters or token-free error.

Each test uses its own freshly migrated database (no sample, no pipeline run needed).
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session
from support import worker_process
from threadline_testing.contract import ContractCheckingMiddleware, ContractValidator, load_openapi
from threadline_testing.intercom import StandinConfig, Workspace, WorkspaceSpec, create_app
from threadline_testing.serve import serve

from threadline.config import Settings
from threadline.connectors.store import get_or_create_source
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Source, SourceSync

TOKEN = "standin-token-sync-5d1e"  # made up; asserted never to leak
BAD_TOKEN = "wrong-token-9c7b2f"  # made up; the stand-in refuses it, and it must not leak either
TOKEN_ENV = "THREADLINE_TEST_SYNC_TOKEN"
BAD_TOKEN_ENV = "THREADLINE_TEST_SYNC_BAD_TOKEN"
MISSING_TOKEN_ENV = "THREADLINE_TEST_SYNC_UNSET_TOKEN"  # never set: the worker cannot find a token
JOB_TIMEOUT_S = 90  # a sync of a few dozen conversations takes seconds; generous for a loaded 2-core machine
WORKER_FLAGS = ("--concurrency", "2", "--heartbeat", "1", "--stalled-after", "4", "--nice", "0")


# ---- fixtures -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def contract() -> Iterator[ContractValidator]:
    """One validator for the module: the stand-in's traffic must conform to Intercom's description."""
    validator = ContractValidator(load_openapi())
    yield validator
    assert not validator.violations, "contract violations:\n" + "\n".join(map(str, validator.violations))


@pytest.fixture
def standin(contract: ContractValidator) -> Callable[..., Iterator[tuple[Workspace, str]]]:
    """Factory: a contract-checked stand-in served on loopback; yields (workspace, base URL)."""

    @contextlib.contextmanager
    def start(spec: WorkspaceSpec, **config: Any) -> Iterator[tuple[Workspace, str]]:
        workspace = Workspace(spec)
        app = create_app(StandinConfig(workspace=workspace, tokens=frozenset({TOKEN}), **config))
        before = len(contract.violations)
        with serve(ContractCheckingMiddleware(app, contract)) as base_url:
            yield workspace, base_url
        assert contract.violations[before:] == []

    return start


@pytest.fixture
def api(db_url: str, db_engine: Engine, tmp_path: Path) -> Iterator[TestClient]:
    from threadline.app import create_app as create_api
    from threadline.server.tokens import create_token

    with session_scope(db_engine) as session:
        api_token = create_token(session, "sync-tests")
    app = create_api(Settings(home=tmp_path / "home", database_url=db_url), engine=db_engine)
    with TestClient(app, headers={"Authorization": f"Bearer {api_token}"}, follow_redirects=False) as client:
        yield client


@contextlib.contextmanager
def worker(cli_env: dict[str, str], log: Path, **env: str) -> Iterator[subprocess.Popen]:
    """A real `threadline worker` subprocess on the test database, with `env` added."""
    full_env = {**cli_env, "HF_HUB_OFFLINE": "1", "THREADLINE_LOG_LEVEL": "INFO", **env}
    full_env.pop(MISSING_TOKEN_ENV, None)
    with worker_process(full_env, log, *WORKER_FLAGS) as process:
        yield process


def add_intercom_source(engine: Engine, name: str, base_url: str, token_env: str = TOKEN_ENV) -> int:
    """What `threadline sources add intercom --base-url` stores: the variable's name, never a token."""
    with session_scope(engine) as session:
        source = get_or_create_source(
            session, name, kind="intercom", config={"token_env": token_env, "region": "us", "base_url": base_url}
        )
        return source.id


def add_file_source(engine: Engine, name: str = "files") -> int:
    with session_scope(engine) as session:
        return get_or_create_source(session, name, kind="file").id


def wait_for(predicate: Callable[[], Any], what: str, log: Path | None = None, timeout_s: float = JOB_TIMEOUT_S) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise AssertionError(f"timed out after {timeout_s}s waiting for {what}\n{tail}")


def last_sync(api: TestClient, source_id: int) -> dict[str, Any] | None:
    response = api.get(f"/api/sources/{source_id}/sync")
    assert response.status_code == 200, response.text
    return response.json()["last_sync"]


def ended(api: TestClient, source_id: int) -> dict[str, Any] | None:
    """The last sync once it has ended (procrastinate has recorded the end too), else None."""
    state = last_sync(api, source_id)
    return state if state and state["status"] in ("succeeded", "failed", "cancelled") else None


def job_rows(engine: Engine) -> list[tuple[int, str, dict]]:
    with session_scope(engine) as session:
        rows = session.execute(
            text(
                "SELECT id, status::text, args FROM procrastinate_jobs WHERE task_name = 'threadline.sync' ORDER BY id"
            )
        ).all()
    return [(int(r[0]), r[1], r[2]) for r in rows]


def wait_job_finished(engine: Engine, job_id: int, log: Path) -> str:
    """procrastinate's own status of the job once it left todo/doing."""

    def status() -> str | None:
        found = {job: state for job, state, _ in job_rows(engine)}.get(job_id)
        return found if found not in (None, "todo", "doing") else None

    return wait_for(status, f"job {job_id} to finish", log)


def live_external_ids(engine: Engine, source_id: int) -> set[str]:
    with Session(engine) as session:
        return set(
            session.execute(
                select(Conversation.external_id).where(
                    Conversation.source_id == source_id, Conversation.deleted_at.is_(None)
                )
            ).scalars()
        )


# ---- tests ----------------------------------------------------------------------------------------


def test_post_sync_runs_a_job_and_conversations_appear(api, db_engine, cli_env, standin, tmp_path):
    log = tmp_path / "worker.log"
    with standin(WorkspaceSpec(conversations=40, seed=41, deleted=2)) as (workspace, base_url):
        source_id = add_intercom_source(db_engine, "acme", base_url)
        queued = api.post(f"/api/sources/{source_id}/sync")
        assert queued.status_code == 202, queued.text
        body = queued.json()
        assert body["created"] is True and body["status"] == "queued" and isinstance(body["job_id"], int)
        assert job_rows(db_engine) == [(body["job_id"], "todo", {"source_id": source_id})]
        assert live_external_ids(db_engine, source_id) == set()  # the API only queued; a worker syncs

        with worker(cli_env, log, **{TOKEN_ENV: TOKEN}):
            done = wait_for(lambda: ended(api, source_id), "the sync job", log)
            assert done["status"] == "succeeded", done
            assert wait_job_finished(db_engine, body["job_id"], log) == "succeeded"
            assert live_external_ids(db_engine, source_id) == set(workspace.conversations)
            assert done["job_id"] == body["job_id"] and done["error"] is None
            assert done["counters"]["written"] == len(workspace.conversations) == 38
            assert done["counters"]["deleted"] == 2 and done["watermark"] is not None
            times = [datetime.fromisoformat(done[key]) for key in ("queued_at", "started_at", "finished_at")]
            assert times == sorted(times)

            # After it ended, a new POST queues a new (incremental) sync: nothing changed, nothing written.
            again = api.post(f"/api/sources/{source_id}/sync").json()
            assert again["created"] is True and again["job_id"] != body["job_id"]
            second = wait_for(
                lambda: (s := ended(api, source_id)) and s["job_id"] == again["job_id"] and s, "resync", log
            )
            assert second["status"] == "succeeded" and second["counters"]["written"] == 0

    # Traceability: every conversation names the job's sync as the one that brought it; the resync changed nothing.
    with Session(db_engine) as session:
        syncs = session.execute(
            select(SourceSync.id, SourceSync.job_id, SourceSync.created, SourceSync.status).order_by(SourceSync.id)
        ).all()
        some_id = session.execute(select(Conversation.id).where(Conversation.deleted_at.is_(None))).scalars().first()
    assert [(j, c, st) for _, j, c, st in syncs] == [
        (body["job_id"], 38, "succeeded"),
        (again["job_id"], 0, "succeeded"),
    ]
    detail = api.get(f"/api/conversations/{some_id}").json()
    assert detail["created_by_sync"]["id"] == detail["changed_by_sync"]["id"] == syncs[0].id
    assert detail["created_by_sync"]["kind"] == "sync" and detail["created_by_sync"]["status"] == "succeeded"

    listed = api.get("/api/sources").json()["items"]
    assert [(s["id"], s["conversations"], s["last_sync"]["status"]) for s in listed] == [(source_id, 38, "succeeded")]
    assert listed[0]["last_sync"]["job_id"] == again["job_id"]
    with Session(db_engine) as session:
        state = session.execute(select(Source.sync_state).where(Source.id == source_id)).scalar_one()
    assert state["watermark"] > 0 and state["last_sync"]["status"] == "succeeded"  # the sink kept the job's key
    assert TOKEN not in log.read_text(errors="replace") + json.dumps(listed) + json.dumps(state)


def test_second_post_answers_with_the_queued_or_running_job(api, db_engine, cli_env, standin, tmp_path):
    log = tmp_path / "worker.log"
    # Every stand-in response takes 1 s, so the sync stays running for several seconds.
    with standin(WorkspaceSpec(conversations=10, seed=42), slow_share=1.0, slow_seconds=1.0) as (workspace, base_url):
        source_id = add_intercom_source(db_engine, "slow", base_url)
        first = api.post(f"/api/sources/{source_id}/sync").json()
        second = api.post(f"/api/sources/{source_id}/sync")
        assert second.status_code == 202
        assert second.json() == {**first, "created": False}  # same job, still queued
        assert len(job_rows(db_engine)) == 1

        # Concurrent POSTs serialize on the source row: still exactly one job.
        answers: list[dict] = []
        threads = [
            threading.Thread(target=lambda: answers.append(api.post(f"/api/sources/{source_id}/sync").json()))
            for _ in range(4)
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert {a["job_id"] for a in answers} == {first["job_id"]} and not any(a["created"] for a in answers)
        assert len(job_rows(db_engine)) == 1

        with worker(cli_env, log, **{TOKEN_ENV: TOKEN}):
            wait_for(lambda: (last_sync(api, source_id) or {}).get("status") == "running", "the job to run", log)
            during = api.post(f"/api/sources/{source_id}/sync").json()
            assert during == {**first, "created": False, "status": "running"}
            assert len(job_rows(db_engine)) == 1  # no duplicate queued behind the running one
            done = wait_for(lambda: ended(api, source_id), "the sync job", log)
            assert done["status"] == "succeeded" and done["job_id"] == first["job_id"]
            assert live_external_ids(db_engine, source_id) == set(workspace.conversations)
    assert [status for _, status, _ in job_rows(db_engine)] == ["succeeded"]


def test_sync_refusals_and_never_synced_sources(api, db_engine, standin):
    file_id = add_file_source(db_engine)
    with standin(WorkspaceSpec(conversations=1, seed=43)) as (_, base_url):
        intercom_id = add_intercom_source(db_engine, "acme", base_url)
        refused = api.post(f"/api/sources/{file_id}/sync")
        assert refused.status_code == 409 and "threadline import" in refused.json()["detail"]
        assert api.post("/api/sources/999999999/sync").status_code == 404
        assert api.get("/api/sources/999999999/sync").status_code == 404
        assert last_sync(api, file_id) is None and last_sync(api, intercom_id) is None
        assert job_rows(db_engine) == []  # refusals queue nothing

        accepted = api.post(f"/api/sources/{intercom_id}/sync")
        assert accepted.status_code == 202 and accepted.json()["created"] is True
    listed = {s["name"]: s["last_sync"] for s in api.get("/api/sources").json()["items"]}
    assert listed["files"] is None
    assert listed["acme"]["status"] == "queued" and listed["acme"]["job_id"] == accepted.json()["job_id"]
    assert listed["acme"]["queued_at"] and listed["acme"]["started_at"] is None and listed["acme"]["error"] is None


def test_failed_syncs_end_the_job_with_a_clear_token_free_error(api, db_engine, cli_env, standin, tmp_path):
    log = tmp_path / "worker.log"
    with socket.socket() as probe:  # a loopback port nobody listens on: connections are refused
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    with standin(WorkspaceSpec(conversations=5, seed=44)) as (_, base_url):
        refused = add_intercom_source(db_engine, "refused", base_url, token_env=BAD_TOKEN_ENV)
        unset = add_intercom_source(db_engine, "unset", base_url, token_env=MISSING_TOKEN_ENV)
        down = add_intercom_source(db_engine, "down", f"http://127.0.0.1:{closed_port}")
        jobs = {sid: api.post(f"/api/sources/{sid}/sync").json()["job_id"] for sid in (refused, unset, down)}
        with worker(cli_env, log, **{TOKEN_ENV: TOKEN, BAD_TOKEN_ENV: BAD_TOKEN}):
            results = {sid: wait_for(lambda sid=sid: ended(api, sid), f"sync of {sid}", log) for sid in jobs}
            for job_id in jobs.values():
                assert wait_job_finished(db_engine, job_id, log) == "failed"

    assert all(r["status"] == "failed" and r["finished_at"] and r["counters"] is None for r in results.values())
    assert "401" in results[refused]["error"] and BAD_TOKEN_ENV in results[refused]["error"]
    assert MISSING_TOKEN_ENV in results[unset]["error"]
    assert "Intercom sync failed" in results[down]["error"] and "ConnectError" in results[down]["error"]
    assert live_external_ids(db_engine, refused) == set()
    listed = api.get("/api/sources").json()["items"]
    assert {s["id"]: s["last_sync"]["error"] for s in listed} == {sid: r["error"] for sid, r in results.items()}
    with Session(db_engine) as session:
        states = session.execute(select(func.jsonb_agg(Source.sync_state))).scalar_one()
    exposed = log.read_text(errors="replace") + json.dumps(listed) + json.dumps(states)
    assert BAD_TOKEN not in exposed and TOKEN not in exposed
