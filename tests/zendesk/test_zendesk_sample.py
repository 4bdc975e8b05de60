"""The sample served by the Zendesk stand-in gives the same themes as the file import of the same conversations.

`run --source zendesk-demo --sync` (CLI, real socket) and `import` + `run` of examples/conversations.jsonl:
after mapping ticket ids back to the sample's ids, the same partition into themes and the same theme names.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import defaultdict

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session
from support import EXAMPLES
from threadline_testing.serve import serve
from threadline_testing.zendesk import StandinConfig, create_app
from threadline_testing.zendesk.sample import load_sample

from threadline.db.models import Conversation, Message, RunTheme, ThemeMember

CLI = [sys.executable, "-m", "threadline.cli.main"]
EMAIL_ENV, TOKEN_ENV = "THREADLINE_TEST_ZDDEMO_EMAIL", "THREADLINE_TEST_ZDDEMO_TOKEN"
TOKEN = "standin-token-demo-7c1d"  # made up


def _cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([*CLI, *args], env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return result


def _themes(engine, run_id: int, rename: dict[str, str] | None = None) -> dict[str, frozenset[str]]:
    """Theme name -> the sample ids of its members, for one run."""
    with Session(engine) as session:
        rows = session.execute(
            select(RunTheme.name, Conversation.external_id)
            .join(ThemeMember, (ThemeMember.run_id == RunTheme.run_id) & (ThemeMember.theme_id == RunTheme.theme_id))
            .join(Conversation, Conversation.id == ThemeMember.conversation_id)
            .where(RunTheme.run_id == run_id)
        ).all()
    members: dict[str, set[str]] = defaultdict(set)
    for name, external_id in rows:
        members[name].add((rename or {}).get(external_id, external_id))
    return {name: frozenset(ids) for name, ids in members.items()}


def test_sample_account_round_trips_customer_texts(db_engine, cli_env):
    """The loader keeps every message: texts, roles and order come back as the file import stores them."""
    records = [json.loads(line) for line in EXAMPLES.read_text(encoding="utf-8").splitlines() if line.strip()]
    notes = sum(m.get("author") == "note" for r in records for m in r["messages"])
    sample = load_sample(EXAMPLES)
    assert len(sample.ticket_ids) == len(records) and len(set(sample.ticket_ids.values())) == len(records)
    comments = [c for t in sample.account.tickets.values() for c in t.comments]
    assert all(c.plain_body and c.html_body.startswith("<div") for c in comments if c.plain_body)
    assert notes > 0 and sum(not c.public for c in comments) == notes  # the sample's internal notes are private


@pytest.mark.slow
def test_zendesk_demo_gives_the_same_themes_as_the_file_import(db_engine, cli_env):
    sample = load_sample(EXAMPLES)
    app = create_app(
        StandinConfig(
            account=sample.account,
            api_tokens=frozenset({TOKEN}),
            window_seconds=1,
            requests_per_window=10_000,
            export_requests_per_window=1_000,
        )
    )
    env = {**cli_env, EMAIL_ENV: "admin@example.com", TOKEN_ENV: TOKEN}
    _cli(env, "import", str(EXAMPLES), "--source", "demo")
    from_file = json.loads(_cli(env, "run", "--source", "demo", "--json").stdout)
    with serve(app) as base_url:
        _cli(
            env, "sources", "add", "zendesk", "--name", "zendesk-demo", "--subdomain", "acme",
            "--email-env", EMAIL_ENV, "--token-env", TOKEN_ENV, "--base-url", base_url,
        )  # fmt: skip
        from_zendesk = json.loads(_cli(env, "run", "--source", "zendesk-demo", "--sync", "--json").stdout)
    assert from_file["status"] == from_zendesk["status"] == "succeeded"

    with Session(db_engine) as session:  # the customer side, what themes are computed from, is identical
        texts = defaultdict(list)
        for source, external_id, text in session.execute(
            select(Conversation.source_id, Conversation.external_id, Message.text)
            .join(Message, Message.conversation_id == Conversation.id)
            .where(Message.author_role == "customer")
            .order_by(Conversation.id, Message.position)
        ):
            texts[source, sample.ticket_ids.get(external_id, external_id)].append(text)
    by_source = defaultdict(dict)
    for (source, external_id), parts in texts.items():
        by_source[source][external_id] = parts
    file_texts, zendesk_texts = by_source.values()
    assert file_texts == zendesk_texts

    file_themes = _themes(db_engine, from_file["run_id"])
    zendesk_themes = _themes(db_engine, from_zendesk["run_id"], sample.ticket_ids)
    assert len(file_themes) >= 5
    assert set(zendesk_themes.values()) == set(file_themes.values())  # the same partition
    assert zendesk_themes == file_themes  # and the same names
