"""`threadline forget` (erasure, snapshots included) and `threadline db backup` / `db restore` (a round trip)."""

from __future__ import annotations

import json

from snapshot_helpers import run_now
from sqlalchemy import func, select, text
from support import EXAMPLES
from test_cli import threadline

from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Analysis, Embedding, Message, RunStory


def test_forget_a_conversation_erases_its_text_everywhere(cli_env, db_engine, embedder):
    import_file(db_engine, EXAMPLES, source_name="demo")
    run_now(db_engine, embedder, source="demo")
    stories = json.loads(threadline(cli_env, "stories", "--json").stdout)
    evidence = stories[0]["evidence"][0]
    target = evidence["conversation_external_id"]
    refused = threadline(cli_env, "forget", "--conversation", "demo", "--yes", check=False)
    assert refused.returncode == 2 and "SOURCE:EXTERNAL_ID" in refused.stderr
    assert threadline(cli_env, "forget", "--conversation", "demo:nope", "--yes", check=False).returncode == 1
    result = json.loads(threadline(cli_env, "forget", "--conversation", f"demo:{target}", "--yes", "--json").stdout)
    assert result["conversations"] == 1 and result["messages"] >= 1 and result["quotes"] >= 1
    with session_scope(db_engine) as session:
        cid = session.execute(text("SELECT id FROM conversations WHERE external_id = :x"), {"x": target}).scalar_one()
        assert set(session.execute(select(Message.text).where(Message.conversation_id == cid)).scalars()) == {
            "[erased on request]"
        }
        assert session.execute(select(func.count()).where(Embedding.conversation_id == cid)).scalar_one() == 0
        assert session.execute(select(func.count()).where(Analysis.conversation_id == cid)).scalar_one() == 0
        problems = session.execute(select(RunStory.problem)).scalars().all()
        assert not any(evidence["quote"] in p for p in problems)
        actor = session.execute(text("SELECT actor FROM audit_events WHERE action = 'forget'")).scalar_one()
        assert actor == "cli"
    after = json.loads(threadline(cli_env, "stories", "--json").stdout)
    erased = [e for s in after for e in s["evidence"] if e["conversation_external_id"] == target]
    assert erased and all(e["quote"] == "[erased on request]" for e in erased)
    report = threadline(cli_env, "report", "--format", "md", "-o", "/dev/stdout").stdout
    assert evidence["quote"] not in report


def test_backup_and_restore_round_trip(cli_env, db_engine, embedder, tmp_path):
    import_file(db_engine, EXAMPLES, source_name="demo")
    run_now(db_engine, embedder, source="demo")
    before = threadline(cli_env, "stories", "--json").stdout
    backup = tmp_path / "threadline.backup"
    threadline(cli_env, "db", "backup", str(backup))
    assert backup.stat().st_size > 0
    # Change things after the backup: a status, a new source and its conversations.
    story_id = json.loads(before)[0]["id"]
    threadline(cli_env, "stories", "status", str(story_id), "accepted")
    threadline(cli_env, "import", str(EXAMPLES), "--source", "copy")
    assert json.loads(threadline(cli_env, "stories", "--json").stdout)[0]["status"] == "accepted"
    db_engine.dispose()  # restore refuses while other sessions are connected
    threadline(cli_env, "db", "restore", str(backup), "--yes")
    assert threadline(cli_env, "stories", "--json").stdout == before
    status = json.loads(threadline(cli_env, "status", "--json").stdout)
    assert [s["name"] for s in status["sources"]] == ["demo"]
    damaged = tmp_path / "damaged.backup"
    damaged.write_bytes(b"not a backup")
    failed = threadline(cli_env, "db", "restore", str(damaged), "--yes", check=False)
    assert failed.returncode == 1 and "reading the backup failed" in failed.stderr
    assert threadline(cli_env, "stories", "--json").stdout == before  # a bad file changes nothing
