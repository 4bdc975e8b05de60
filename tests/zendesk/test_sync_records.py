"""Traceability: every conversation names the sync (or import) that brought it and the one that last changed it;
`threadline sources show` lists recent syncs with their counts, duration and status; a killed sync reads
`interrupted`. Zendesk over a real socket, Intercom through the API's job (tests/api/test_api_sync.py), imports.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session
from threadline_testing.serve import serve
from threadline_testing.zendesk import AccountSpec

from threadline.connectors.files.importer import import_file
from threadline.connectors.sources import add_source, sync_source
from threadline.connectors.syncs import SyncRecord
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Source, SourceSync
from threadline.read.conversations import get_conversation
from threadline.read.sources import recent_syncs

CLI = [sys.executable, "-m", "threadline.cli.main"]
EMAIL_ENV, TOKEN_ENV = "THREADLINE_TEST_ZDTRACE_EMAIL", "THREADLINE_TEST_ZDTRACE_TOKEN"
FAST_ENV = {
    "THREADLINE_ZENDESK_EXPORT_WINDOW_S": "1",
    "THREADLINE_ZENDESK_EXPORT_REQUESTS_PER_MINUTE": "100",
    "THREADLINE_ZENDESK_BACKOFF_BASE_S": "0.02",
    "THREADLINE_ZENDESK_BACKOFF_CAP_S": "0.1",
    "THREADLINE_ZENDESK_EXPORT_PAGE_SIZE": "10",
    "THREADLINE_ZENDESK_COMMIT_CHUNK_SIZE": "5",
}


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _origins(engine, source_id: int) -> dict[str, tuple[int | None, int | None]]:
    with Session(engine) as session:
        rows = session.execute(
            select(Conversation.external_id, Conversation.created_by_sync_id, Conversation.changed_by_sync_id).where(
                Conversation.source_id == source_id
            )
        ).all()
    return {r.external_id: (r.created_by_sync_id, r.changed_by_sync_id) for r in rows}


def test_zendesk_syncs_are_recorded_and_conversations_name_them(make_standin, db_engine, cli_env, monkeypatch):
    standin = make_standin(AccountSpec(tickets=30, seed=51))
    monkeypatch.setenv(EMAIL_ENV, standin.email)
    monkeypatch.setenv(TOKEN_ENV, standin.token)
    for key, value in FAST_ENV.items():
        monkeypatch.setenv(key, value)
    with serve(standin.app) as base_url:
        with session_scope(db_engine) as session:
            source_id = add_source(
                session,
                "zendesk",
                "helpdesk",
                {"subdomain": "acme", "email_env": EMAIL_ENV, "token_env": TOKEN_ENV, "base_url": base_url},
            ).id
        first = sync_source(db_engine, source_id)
        account = standin.account
        last = max(t.updated_at for t in account.tickets.values())
        account.add_comment(3, last + 10, text="Still broken after the update")
        account.delete(7, last + 20)
        second = sync_source(db_engine, source_id)
        third = sync_source(db_engine, source_id)  # nothing changed
    assert third.counters()["written"] == 0
    assert first.counters()["written"] == 30 and second.counters()["written"] == 1

    syncs = {s["id"]: s for s in recent_syncs(Session(db_engine), source_id, limit=10)}
    one, two, three = sorted(syncs)
    assert [syncs[i]["status"] for i in (one, two, three)] == ["succeeded"] * 3
    assert {k: syncs[one][k] for k in ("kind", "created", "changed", "deleted", "dead_letters")} == {
        "kind": "sync",
        "created": 30,
        "changed": 0,
        "deleted": 0,
        "dead_letters": 0,
    }
    assert (syncs[two]["created"], syncs[two]["changed"], syncs[two]["deleted"]) == (0, 1, 1)
    assert (syncs[three]["created"], syncs[three]["changed"], syncs[three]["deleted"]) == (0, 0, 0)
    assert all(syncs[i]["duration_s"] > 0 and syncs[i]["finished_at"] for i in syncs)

    origins = _origins(db_engine, source_id)
    assert origins["3"] == (one, two)  # brought by the first sync, changed by the second
    assert origins["7"] == (one, two)  # its deletion is a change
    assert {origin for tid, origin in origins.items() if tid not in ("3", "7")} == {(one, one)}

    with Session(db_engine) as session:
        detail = get_conversation(session, session.execute(
            select(Conversation.id).where(Conversation.source_id == source_id, Conversation.external_id == "3")
        ).scalar_one())  # fmt: skip
    assert detail["created_by_sync"]["id"] == one and detail["changed_by_sync"]["id"] == two
    assert detail["changed_by_sync"]["kind"] == "sync" and detail["changed_by_sync"]["status"] == "succeeded"

    shown = json.loads(_cli(cli_env, "sources", "show", "helpdesk", "--json").stdout)
    assert shown["name"] == "helpdesk" and shown["kind"] == "zendesk" and shown["conversations"] == 29
    assert [s["id"] for s in shown["syncs"]] == [three, two, one]  # newest first
    assert [(s["created"], s["changed"], s["unchanged"], s["dead_letters"]) for s in shown["syncs"]][1:] == [
        (0, 1, 0, 0),
        (30, 0, 0, 0),
    ]
    table = _cli({**cli_env, "COLUMNS": "200"}, "sources", "show", "helpdesk").stdout
    assert "succeeded" in table and "dead letters" in table and standin.token not in table
    missing = subprocess.run([*CLI, "sources", "show", "nope"], env=cli_env, capture_output=True, text=True)
    assert missing.returncode == 2 and len(missing.stderr.strip().splitlines()) == 1


def test_imports_are_recorded_like_syncs(db_engine, tmp_path: Path):
    path = tmp_path / "conversations.jsonl"
    rows = [
        {"id": f"c{i}", "messages": [{"author": "customer", "text": f"The export to CSV fails on report {i}"}]}
        for i in range(4)
    ]
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(db_engine, path, source_name="files")
    rows[1]["messages"][0]["text"] = "The export to CSV now times out"
    rows.append({"id": "c9", "messages": [{"author": "customer", "text": "Login loops back to the start page"}]})
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    import_file(db_engine, path, source_name="files")

    with Session(db_engine) as session:
        source_id = session.execute(select(Source.id).where(Source.name == "files")).scalar_one()
        syncs = recent_syncs(session, source_id, limit=5)
    second, first = syncs
    assert (first["kind"], first["status"], first["created"], first["changed"]) == ("import", "succeeded", 4, 0)
    assert (second["created"], second["changed"], second["unchanged"]) == (1, 1, 3)
    origins = _origins(db_engine, source_id)
    assert origins["c1"] == (first["id"], second["id"]) and origins["c9"] == (second["id"], second["id"])
    assert origins["c0"] == (first["id"], first["id"])


def test_a_sync_whose_process_died_reads_interrupted(db_engine):
    with session_scope(db_engine) as session:
        source_id = session.execute(
            Source.__table__.insert().values(name="gone", kind="zendesk", config={}, sync_state={})
        ).inserted_primary_key[0]
    finished = SyncRecord(db_engine, source_id, kind="sync")
    with finished:
        finished.finish("succeeded")
    alive = SyncRecord(db_engine, source_id, kind="sync").__enter__()
    dead = SyncRecord(db_engine, source_id, kind="sync").__enter__()
    with Session(db_engine) as session:
        assert [s["status"] for s in recent_syncs(session, source_id, limit=5)] == ["running", "running", "succeeded"]
    assert dead._lock is not None
    dead._lock.invalidate()  # the connection dies with its process: the server drops the lock
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        with Session(db_engine) as session:
            statuses = [s["status"] for s in recent_syncs(session, source_id, limit=5)]
        if statuses[0] == "interrupted":
            break
        time.sleep(0.05)
    assert statuses == ["interrupted", "running", "succeeded"]
    alive.__exit__(None, None, None)
    with Session(db_engine) as session:
        row = session.get(SourceSync, alive.id)
        assert row is not None and row.status == "failed" and row.error == "interrupted"


def test_sigkilled_cli_sync_reads_interrupted_and_its_conversations_name_it(make_standin, cli_env, db_engine):
    standin = make_standin(AccountSpec(tickets=200, seed=52), slow_share=1.0, slow_seconds=0.05)
    env = {**cli_env, **FAST_ENV, EMAIL_ENV: standin.email, TOKEN_ENV: standin.token}
    with serve(standin.app) as base_url:
        _cli(
            env, "sources", "add", "zendesk", "--name", "zd", "--subdomain", "acme",
            "--email-env", EMAIL_ENV, "--token-env", TOKEN_ENV, "--base-url", base_url,
        )  # fmt: skip
        proc = subprocess.Popen([*CLI, "sync", "zd"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline and proc.poll() is None:
            with Session(db_engine) as session:
                if session.execute(select(SourceSync.created).where(SourceSync.created > 0)).first():
                    break
            time.sleep(0.05)
        assert proc.poll() is None, "the sync ended before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
    shown = json.loads(_cli(cli_env, "sources", "show", "zd", "--json").stdout)
    [killed] = shown["syncs"]
    assert killed["status"] == "interrupted" and killed["finished_at"] is None
    source_id = shown["id"]
    origins = _origins(db_engine, source_id)
    assert len(origins) == killed["created"] > 0  # counters committed with the data they count
    assert set(origins.values()) == {(killed["id"], killed["id"])}
