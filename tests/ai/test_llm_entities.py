"""With an LLM configured, each conversation's facet product area joins its entities (type `product_area`, source llm).

A whole run against the OpenAI-compatible stand-in (its facets name the product area from
cues: "app" -> "mobile app"): the area is stored with the extractor's entities, counted in the
theme's top entities, and found by the conversation list's `entity` filter. The entity cache's
key holds the area, so an unchanged facet reuses the stored entities and a changed one
recomputes them.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

from llm_helpers import KEY_ENV
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from threadline.analysis.theme_entities import ENTITIES_ANALYSIS
from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.analyses import outputs_of, store_analyses
from threadline.db.engine import session_scope
from threadline.db.models import Conversation, Run, RunTheme, ThemeMember
from threadline.engine.runs import create_run, execute_run
from threadline.read.conversations import list_conversations
from threadline.read.themes import theme_detail

IOS = [
    "The iPhone app crashes when I open an invoice.",
    "On my iPad the app closes as soon as I open any invoice.",
    "Invoices crash the iOS app every time I tap one.",
    "Opening an invoice in the iPhone app makes it crash, please help.",
    "Every time I open an invoice on iOS the app quits.",
    "The app on my iPhone crashes when I view an invoice.",
]
SLACK = [
    "How do I get Slack notifications when a task is assigned to me?",
    "How can I connect Slack so our channel is notified about new tasks?",
    "Is there a way to post task updates into a Slack channel?",
    "How do I set up Slack alerts for comments on my tasks?",
    "How can I send task notifications to Slack?",
    "Where do I turn on Slack notifications for task changes?",
]
MOBILE = {"type": "product_area", "value": "mobile app", "source": "llm"}  # the stand-in's area for "app"


def _configure(monkeypatch, standin) -> None:
    monkeypatch.setenv("THREADLINE_LLM_BASE_URL", standin.base_url)
    monkeypatch.setenv("THREADLINE_LLM_API_KEY_ENV", KEY_ENV)
    monkeypatch.setenv(KEY_ENV, standin.api_key)
    monkeypatch.setenv("THREADLINE_LLM_REQUESTS_PER_MINUTE", "60000")
    monkeypatch.setenv("THREADLINE_LLM_TOKENS_PER_MINUTE", "10000000")
    get_settings.cache_clear()  # the in-process worker reads the settings tree afresh


def _import(engine: Engine, path: Path) -> None:
    rows = []
    for index, (problem, question) in enumerate([("ios", q) for q in IOS] + [("slack", q) for q in SLACK]):
        start = datetime(2026, 10, 1, tzinfo=UTC) + timedelta(hours=index)
        reply = {"author": "agent", "text": "Let me check.", "created_at": (start + timedelta(minutes=1)).isoformat()}
        rows.append(
            {
                "id": f"{problem}-{index}",
                "created_at": start.isoformat(),
                "customer": {"id": f"u-{index}"},
                "messages": [{"author": "customer", "text": question, "created_at": start.isoformat()}, reply],
            }
        )
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))
    assert import_file(engine, path, source_name="tiny").ok


def _run(engine: Engine, embedder) -> Run:
    with session_scope(engine) as session:
        run_id = create_run(session).id
    run = execute_run(engine, run_id, embedder)
    assert run.status == "succeeded", run.counters
    return run


def _ios_theme(session: Session, run_id: int) -> RunTheme:
    theme_id = session.execute(
        select(ThemeMember.theme_id)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id, Conversation.external_id.like("ios-%"))
        .group_by(ThemeMember.theme_id)
        .order_by(func.count().desc())
        .limit(1)
    ).scalar_one()
    return session.get(RunTheme, (run_id, theme_id))


def _ids(session: Session, prefix: str) -> list[int]:
    return sorted(
        session.execute(select(Conversation.id).where(Conversation.external_id.like(f"{prefix}-%"))).scalars()
    )


def test_facet_product_area_joins_entities_theme_shares_and_the_filter(
    db_engine, embedder, standin, monkeypatch, tmp_path
):
    _configure(monkeypatch, standin)
    _import(db_engine, tmp_path / "conversations.jsonl")
    run = _run(db_engine, embedder)
    assert run.counters["facets"]["computed"] == len(IOS) + len(SLACK), run.counters
    assert run.counters["coverage"]["entities_computed"] == len(IOS) + len(SLACK)
    with Session(db_engine) as session:
        ios = _ids(session, "ios")
        stored = outputs_of(session, ios, ENTITIES_ANALYSIS)
        assert all(MOBILE in stored[cid]["entities"] for cid in ios), stored
        assert all({"type": "platform", "value": "iOS"} in stored[cid]["entities"] for cid in ios)  # gazetteer's kept
        theme = _ios_theme(session, run.id)
        shares = {(e["type"], e["value"]): e["share"] for e in theme.entities}
        assert shares[("product_area", "mobile app")] == 1.0 and shares[("platform", "iOS")] == 1.0, shares
        assert theme_detail(session, theme.theme_id, run.id)["mostly"] == "mostly iOS, mobile app"
        for entity in ("product_area:mobile app", "Mobile App"):
            listed = list_conversations(session, limit=100, offset=0, entity=entity)
            assert sorted(c["id"] for c in listed) == ios, entity

    again = _run(db_engine, embedder)  # same texts, same facets: the stored entities are reused
    assert again.counters["coverage"]["entities_reused"] == len(IOS) + len(SLACK), again.counters
    assert again.counters["coverage"]["entities_computed"] == 0

    # A newer facet (another model) names another area for one conversation: only its entities are recomputed.
    changed = ios[0]
    with session_scope(db_engine) as session:
        facet = outputs_of(session, [changed], "facets")[changed]
        store_analyses(
            session,
            [
                {
                    "conversation_id": changed,
                    "stage": "facets",
                    "input_hash": "another-model",
                    "model": "another-model",
                    "version": "test",
                    "output": {**facet, "product_area": "invoices"},
                }
            ],
        )
    third = _run(db_engine, embedder)
    assert third.counters["coverage"]["entities_computed"] == 1, third.counters
    assert third.counters["coverage"]["entities_reused"] == len(IOS) + len(SLACK) - 1
    with Session(db_engine) as session:
        assert [c["id"] for c in list_conversations(session, limit=100, offset=0, entity="product_area:invoices")] == [
            changed
        ]
        # Its older entities (area "mobile app") no longer match: only the newest analysis counts.
        still_mobile = list_conversations(session, limit=100, offset=0, entity="product_area:mobile app")
        assert sorted(c["id"] for c in still_mobile) == sorted(set(ios) - {changed})
        shares = {(e["type"], e["value"]): e["share"] for e in _ios_theme(session, third.id).entities}
        assert shares[("product_area", "invoices")] < shares[("product_area", "mobile app")] < 1.0, shares


def test_without_an_llm_the_entities_have_no_product_area(db_engine, embedder, tmp_path):
    _import(db_engine, tmp_path / "conversations.jsonl")
    run = _run(db_engine, embedder)
    with Session(db_engine) as session:
        stored = outputs_of(session, _ids(session, "ios"), ENTITIES_ANALYSIS)
        assert stored and all(e["type"] != "product_area" for o in stored.values() for e in o["entities"])
        assert all(e["type"] != "product_area" for e in _ios_theme(session, run.id).entities)
