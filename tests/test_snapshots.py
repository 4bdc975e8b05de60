"""Results you can trust over time, on the real database: history, stability, changes, curation, stale evidence.

- History: a run's snapshot never changes after later runs of its own or other scopes, and
  scopes never share themes (`threadline stories --run 1 --json` byte for byte).
- Stability: a rerun over unchanged data gives the same report and themes, byte for byte;
  adding 10% of new conversations keeps the themes (id and name).
- Changes: a theme planted in the second half is new, a theme that stopped is gone.
- Curation: a person's name and a merge survive two later runs.
- Stale evidence: a new run quotes messages as they are now; old snapshots mark quotes
  whose message changed since.
"""

from __future__ import annotations

import json
import subprocess

import pytest
from snapshot_helpers import (
    PLANTED_PREFIX,
    STOPPED_PROBLEM,
    planted_files,
    read_sample,
    run_now,
)
from sqlalchemy import func, select, text
from support import EXAMPLES, SHARED_DATA, threadline_command

from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Message, RunStory, RunTheme, ThemeMember
from threadline.engine.curation import CLI_ACTOR, merge_theme, rename_theme, set_keep_separate
from threadline.read.stories import list_stories, story_view
from threadline.read.themes import theme_tree
from threadline.read.views import run_ref

STAR = SHARED_DATA / "star-support" / "conversations.jsonl"
STAR_SUBSET_EVERY = 4  # every 4th STAR conversation (~680): a second, unrelated source, quicker to embed than all 2,729


def threadline(env: dict[str, str], *args: str, check: bool = True) -> subprocess.CompletedProcess:
    result = subprocess.run([*threadline_command(), *args], env=env, capture_output=True, text=True, timeout=900)
    if check and result.returncode != 0:
        raise AssertionError(f"threadline {' '.join(args)} exited {result.returncode}: {result.stderr[-2000:]}")
    return result


def _members_by_theme(session, run_id: int) -> dict[int, set[str]]:
    found: dict[int, set[str]] = {}
    for theme_id, external_id in session.execute(
        select(ThemeMember.theme_id, Conversation.external_id)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id)
    ):
        found.setdefault(theme_id, set()).add(external_id)
    return found


@pytest.mark.slow
def test_history_survives_later_runs_and_scopes_never_share_themes(cli_env, db_engine, tmp_path):
    if not STAR.exists():
        pytest.skip(f"shared data not found: {STAR} (see ../shared/data/README.md)")
    threadline(cli_env, "import", str(EXAMPLES), "--source", "demo")
    first = json.loads(threadline(cli_env, "run", "--source", "demo", "--json").stdout)["run_id"]
    stories_before = threadline(cli_env, "stories", "--run", str(first), "--json").stdout
    themes_before = threadline(cli_env, "themes", "--run", str(first), "--json").stdout
    assert json.loads(stories_before) and json.loads(themes_before)

    star = tmp_path / "star.jsonl"
    with STAR.open(encoding="utf-8") as source:
        star.write_text("".join(line for i, line in enumerate(source) if i % STAR_SUBSET_EVERY == 0))
    threadline(cli_env, "import", str(star), "--source", "star")
    star_run = json.loads(threadline(cli_env, "run", "--source", "star", "--json").stdout)["run_id"]
    again = json.loads(threadline(cli_env, "run", "--source", "demo", "--json").stdout)["run_id"]

    # Run 1 reads exactly as before, byte for byte.
    assert threadline(cli_env, "stories", "--run", str(first), "--json").stdout == stories_before
    assert threadline(cli_env, "themes", "--run", str(first), "--json").stdout == themes_before
    # The default view is the scope of the latest run (demo again); --source selects a scope.
    assert {s["run_id"] for s in json.loads(threadline(cli_env, "stories", "--json").stdout)} == {again}
    star_stories = json.loads(threadline(cli_env, "stories", "--source", "star", "--json").stdout)
    assert star_stories and {s["run_id"] for s in star_stories} == {star_run}
    refused = threadline(cli_env, "stories", "--run", str(star_run), "--source", "demo", check=False)
    assert refused.returncode == 2 and "not demo" in refused.stderr

    with session_scope(db_engine) as session:
        # No theme or story of a demo run contains a star conversation, and the other way round.
        crossing = session.execute(
            text(
                """SELECT count(*) FROM theme_members tm JOIN runs r ON r.id = tm.run_id
                     JOIN conversations c ON c.id = tm.conversation_id JOIN scopes s ON s.id = r.scope_id
                    WHERE c.source_id <> ALL(s.source_ids)"""
            )
        ).scalar_one()
        assert crossing == 0
        crossing_evidence = session.execute(
            text(
                """SELECT count(*) FROM run_story_evidence e JOIN run_stories rs ON rs.id = e.run_story_id
                     JOIN runs r ON r.id = rs.run_id JOIN conversations c ON c.id = e.conversation_id
                     JOIN scopes s ON s.id = r.scope_id
                    WHERE c.source_id <> ALL(s.source_ids)"""
            )
        ).scalar_one()
        assert crossing_evidence == 0
        lineages = session.execute(
            text("SELECT count(*) FROM themes t JOIN runs r ON r.id = t.first_run_id WHERE t.scope_id <> r.scope_id")
        ).scalar_one()
        assert lineages == 0
        # The demo rerun continued demo's themes; the star run started its own.
        demo_first = set(session.execute(select(RunTheme.theme_id).where(RunTheme.run_id == first)).scalars())
        demo_again = set(session.execute(select(RunTheme.theme_id).where(RunTheme.run_id == again)).scalars())
        star_themes = set(session.execute(select(RunTheme.theme_id).where(RunTheme.run_id == star_run)).scalars())
        assert demo_again == demo_first and not star_themes & demo_first


def test_rerun_on_unchanged_data_gives_the_same_report_and_themes(cli_env, db_engine, embedder, tmp_path):
    import_file(db_engine, EXAMPLES, source_name="demo")
    run_now(db_engine, embedder, source="demo")
    report_a, report_b = tmp_path / "a.md", tmp_path / "b.md"
    threadline(cli_env, "report", "--format", "md", "-o", str(report_a))
    themes_a = threadline(cli_env, "themes", "--json").stdout
    csv_a = tmp_path / "a.csv"
    threadline(cli_env, "report", "--format", "csv", "-o", str(csv_a))
    second = run_now(db_engine, embedder, source="demo")
    threadline(cli_env, "report", "--format", "md", "-o", str(report_b))
    themes_b = threadline(cli_env, "themes", "--json").stdout
    csv_b = tmp_path / "b.csv"
    threadline(cli_env, "report", "--format", "csv", "-o", str(csv_b))
    assert report_a.read_bytes() == report_b.read_bytes()
    assert csv_a.read_bytes() == csv_b.read_bytes()
    assert themes_a == themes_b  # ids, names, sizes, key phrases, dates
    text_a = report_a.read_text()
    assert text_a.startswith("# Threadline report: demo (")
    assert "message msg_" in text_a  # the source's own message ids, never row ids (the run ids differ: bytes equal)
    with session_scope(db_engine) as session:
        counters = session.execute(text("SELECT counters FROM runs WHERE id = :id"), {"id": second}).scalar_one()
    assert counters["themes"]["new_themes"] == 0 and counters["themes"]["carried"] == counters["conversations"]


def test_adding_ten_percent_of_conversations_keeps_the_themes(db_engine, embedder, tmp_path):
    records = read_sample()
    later = {r["id"] for i, r in enumerate(sorted(records, key=lambda r: r["id"])) if i % 10 == 9}
    base, extra = tmp_path / "base.jsonl", tmp_path / "extra.jsonl"
    base.write_text("".join(json.dumps(r) + "\n" for r in records if r["id"] not in later))
    extra.write_text("".join(json.dumps(r) + "\n" for r in records if r["id"] in later))
    import_file(db_engine, base, source_name="demo")
    first = run_now(db_engine, embedder, source="demo")
    import_file(db_engine, extra, source_name="demo")
    second = run_now(db_engine, embedder, source="demo")
    with session_scope(db_engine) as session:
        before = {
            t.theme_id: t.name
            for t in session.execute(select(RunTheme).where(RunTheme.run_id == first, RunTheme.level == 1)).scalars()
            if t.size >= 10
        }
        after = {
            t.theme_id: t.name
            for t in session.execute(select(RunTheme).where(RunTheme.run_id == second, RunTheme.level == 1)).scalars()
        }
        joined = session.execute(text("SELECT counters FROM runs WHERE id = :id"), {"id": second}).scalar_one()
    kept = sum(1 for theme_id, name in before.items() if after.get(theme_id) == name)
    assert before and kept / len(before) >= 0.9, (kept, len(before))
    assert joined["themes"]["joined_existing"] > 0  # the new conversations joined existing themes


def test_changes_list_a_planted_theme_as_new_and_a_stopped_one_as_gone(cli_env, db_engine, embedder, tmp_path):
    first_half, second_half, middle = planted_files(tmp_path)
    import_file(db_engine, first_half, source_name="support")
    import_file(db_engine, second_half, source_name="support")
    from datetime import datetime

    split = datetime.fromisoformat(middle)
    first = run_now(db_engine, embedder, source="support", until=split)
    second = run_now(db_engine, embedder, source="support", since=split)
    changes = json.loads(threadline(cli_env, "changes", "--json").stdout)
    assert changes["run"]["id"] == second and changes["previous_run"]["id"] == first
    stopped = {r["id"] for r in read_sample() if r["labels"]["problem"] == STOPPED_PROBLEM}
    with session_scope(db_engine) as session:
        members_then = _members_by_theme(session, first)
        members_now = _members_by_theme(session, second)
    planted_theme = max(members_now, key=lambda t: sum(m.startswith(PLANTED_PREFIX) for m in members_now[t]))
    stopped_theme = max(members_then, key=lambda t: len(members_then[t] & stopped))
    assert sum(m.startswith(PLANTED_PREFIX) for m in members_now[planted_theme]) >= 10
    assert len(members_then[stopped_theme] & stopped) >= 5
    assert planted_theme in {t["id"] for t in changes["new_themes"]}
    gone = {t["id"]: t for t in changes["gone_themes"]}
    assert stopped_theme in gone and gone[stopped_theme]["size_before"] == len(members_then[stopped_theme])
    new = next(t for t in changes["new_themes"] if t["id"] == planted_theme)
    assert new["size"] == len(members_now[planted_theme]) and new["rate_per_week"] > 0
    # Themes present in both runs are either steady or listed with both rates.
    for entry in changes["growing"] + changes["shrinking"]:
        assert entry["rate_per_week_before"] is not None and entry["rate_per_week"] is not None
    # The same answer through `--run` (the snapshot never changes).
    assert json.loads(threadline(cli_env, "changes", "--run", str(second), "--json").stdout) == changes


def test_rename_and_merge_survive_two_later_runs(db_engine, embedder, tmp_path):
    records = read_sample()
    held = {r["id"] for i, r in enumerate(sorted(records, key=lambda r: r["id"])) if i % 10 == 4}
    base, extra = tmp_path / "base.jsonl", tmp_path / "extra.jsonl"
    base.write_text("".join(json.dumps(r) + "\n" for r in records if r["id"] not in held))
    extra.write_text("".join(json.dumps(r) + "\n" for r in records if r["id"] in held))
    import_file(db_engine, base, source_name="demo")
    first = run_now(db_engine, embedder, source="demo")
    with session_scope(db_engine) as session:
        themes = [t for g in theme_tree(session, run_id=first) for t in g["themes"]]
        renamed, absorbed, host, separate = themes[0]["id"], themes[1]["id"], themes[2]["id"], themes[3]["id"]
        rename_theme(session, renamed, "Exports time out (named by a person)", CLI_ACTOR)
        merge_theme(session, absorbed, host, CLI_ACTOR)
        set_keep_separate(session, separate, True, CLI_ACTOR)
        absorbed_members = _members_by_theme(session, first)[absorbed]
    second = run_now(db_engine, embedder, source="demo")
    import_file(db_engine, extra, source_name="demo")  # the third run also sees new conversations
    third = run_now(db_engine, embedder, source="demo")
    with session_scope(db_engine) as session:
        for run_id in (second, third):
            tree = {t["id"]: t for g in theme_tree(session, run_id=run_id) for t in g["themes"]}
            assert tree[renamed]["name"] == "Exports time out (named by a person)"
            assert absorbed not in tree and host in tree
            assert absorbed_members <= _members_by_theme(session, run_id)[host]  # merged stays merged
            assert tree[separate]["keep_separate"]
            story = next(
                s for s in list_stories(session, run_id=run_id, limit=100, offset=0) if s["theme_id"] == renamed
            )
            assert "Exports time out (named by a person)" in story["title"]  # later stories use the person's name
        # Run 1 still shows the merged theme as it was, marked as merged from the next run on.
        then = {t["id"]: t for g in theme_tree(session, run_id=first) for t in g["themes"]}
        assert then[absorbed]["merged_into"] == host and then[renamed]["name"].startswith("Exports time out")
        events = session.execute(text("SELECT action, actor FROM audit_events ORDER BY id")).all()
        assert [e.action for e in events] == ["theme.rename", "theme.merge", "theme.merge", "theme.keep_separate"]
        assert {e.actor for e in events} == {CLI_ACTOR}


def test_new_runs_quote_messages_as_they_are_and_old_snapshots_mark_changed_quotes(db_engine, embedder, tmp_path):
    import_file(db_engine, EXAMPLES, source_name="demo")
    first = run_now(db_engine, embedder, source="demo")
    with session_scope(db_engine) as session:
        stories = list_stories(session, run_id=first, limit=100, offset=0)
    quoted = stories[0]["evidence"][0]
    moved = stories[1]["evidence"][0]
    records = {r["id"]: r for r in read_sample()}
    changed = []
    # Conversation 1: the quoted sentence is rewritten. Conversation 2: an agent message now
    # sits where the quoted customer message was.
    first_record = records[quoted["conversation_external_id"]]
    position = quoted["message_position"]
    first_record["messages"][position]["text"] = "I rewrote this message entirely, nothing of it remains."
    changed.append(first_record)
    second_record = records[moved["conversation_external_id"]]
    second_record["messages"].insert(
        moved["message_position"], {"author": "agent", "text": "An agent's reply inserted before the quote."}
    )
    changed.append(second_record)
    path = tmp_path / "changed.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in changed))
    import_file(db_engine, path, source_name="demo")
    second = run_now(db_engine, embedder, source="demo")
    with session_scope(db_engine) as session:
        # The old snapshot keeps its quotes, marked where the message changed since.
        old = story_view(session, stories[0]["id"], first)
        flags = {(e["conversation_external_id"], e["quote"]): e["changed_since"] for e in old["evidence"]}
        assert flags[(quoted["conversation_external_id"], quoted["quote"])] is True
        old_moved = story_view(session, stories[1]["id"], first)
        assert next(e for e in old_moved["evidence"] if e["quote"] == moved["quote"])["changed_since"] is True
        unchanged = [
            e
            for s in (old, old_moved)
            for e in s["evidence"]
            if e["conversation_external_id"]
            not in {quoted["conversation_external_id"], moved["conversation_external_id"]}
        ]
        assert unchanged and not any(e["changed_since"] for e in unchanged)
        # Every quote of the new run is an exact substring of a customer message as it is now.
        rows = session.execute(
            text(
                """SELECT e.quote, e.start_offset, e.end_offset, m.text, m.author_role
                     FROM run_story_evidence e JOIN run_stories rs ON rs.id = e.run_story_id
                     JOIN messages m ON m.conversation_id = e.conversation_id AND m.position = e.message_position
                    WHERE rs.run_id = :run"""
            ),
            {"run": second},
        ).all()
        assert rows and all(
            r.author_role == "customer" and r.text[r.start_offset : r.end_offset] == r.quote for r in rows
        )
        assert session.execute(select(func.count()).select_from(RunStory).where(RunStory.run_id == second)).scalar_one()
        assert run_ref(session, first).snapshot
        assert session.execute(select(Message.text).where(Message.text.like("I rewrote%"))).scalar()
