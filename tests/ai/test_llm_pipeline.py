"""A whole run with an LLM endpoint configured: facets, names and story text through the
durable pipeline, against the OpenAI-compatible stand-in on loopback."""

from __future__ import annotations

import json
import re

from llm_helpers import KEY_ENV
from sqlalchemy import func, select
from support import EXAMPLES

from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Analysis, DeadLetter, RunStory, RunStoryEvidence
from threadline.engine.runs import create_run, execute_run

PRICES = {"gpt-4o-mini": {"input_per_million": 0.15, "output_per_million": 0.6}}


def _configure(monkeypatch, standin, **extra: str) -> None:
    monkeypatch.setenv("THREADLINE_LLM_BASE_URL", standin.base_url)
    monkeypatch.setenv("THREADLINE_LLM_API_KEY_ENV", KEY_ENV)
    monkeypatch.setenv(KEY_ENV, standin.api_key)
    monkeypatch.setenv("THREADLINE_LLM_REQUESTS_PER_MINUTE", "60000")
    monkeypatch.setenv("THREADLINE_LLM_TOKENS_PER_MINUTE", "10000000")
    monkeypatch.setenv("THREADLINE_LLM_PRICES", json.dumps(PRICES))
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()  # the in-process worker reads the settings tree afresh


def _run(engine, embedder):
    with session_scope(engine) as session:
        run_id = create_run(session, source="demo").id
    return execute_run(engine, run_id, embedder)


def test_run_with_llm_writes_facets_and_cited_stories_and_counts_cost(
    db_engine, db_session, embedder, standin, monkeypatch
):
    _configure(monkeypatch, standin)
    import_file(db_engine, EXAMPLES, source_name="demo")
    run = _run(db_engine, embedder)
    assert run.status == "succeeded", run.error
    facets = run.counters["facets"]
    assert facets["done"] + facets["skipped"] + facets["dead"] == run.counters["conversations"]
    assert facets["computed"] > 0 and facets["input_tokens"] > 0 and facets["cost"] > 0
    assert run.counters["stories"]["llm_calls"] > 0
    stored = db_session.execute(select(func.count()).where(Analysis.stage == "facets")).scalar_one()
    assert stored == facets["computed"]
    stories = db_session.execute(select(RunStory).where(RunStory.run_id == run.id)).scalars().all()
    assert stories and all(s.text_origin == "llm" for s in stories)
    for story in stories:
        ids = {
            f"E{e.position + 1}"
            for e in db_session.execute(
                select(RunStoryEvidence).where(RunStoryEvidence.run_story_id == story.id)
            ).scalars()
        }
        cited = set(re.findall(r"E\d+", story.problem + " ".join(story.acceptance_criteria)))
        assert cited and cited <= ids  # every statement cites evidence that exists

    calls = standin.state.counters["requests"]
    second = _run(db_engine, embedder)
    assert second.counters["facets"]["computed"] == 0  # cached by content: no new facet call
    # Unchanged theme and evidence: the story text written last time is reused, not asked for again.
    assert second.counters["stories"]["llm_reused"] == len(stories)
    again = {
        s.story_id: (s.title, s.problem)
        for s in db_session.execute(select(RunStory).where(RunStory.run_id == second.id)).scalars()
    }
    assert again == {s.story_id: (s.title, s.problem) for s in stories}
    assert standin.state.counters["requests"] - calls == second.counters["stories"].get(
        "llm_calls", 0
    ) + second.counters["themes"].get("llm_calls", 0)


def test_budget_stops_the_run_cleanly_with_a_message(db_engine, db_session, embedder, standin, monkeypatch):
    _configure(monkeypatch, standin, THREADLINE_LLM_RUN_BUDGET="0.0005")
    import_file(db_engine, EXAMPLES, source_name="demo")
    run = _run(db_engine, embedder)
    assert run.status == "stopped"
    assert "budget" in run.error and "resume" in run.error
    facets = run.counters["facets"]
    assert 0 < facets["done"] < run.counters["conversations"]
    assert db_session.execute(select(func.count()).select_from(DeadLetter)).scalar_one() == 0
