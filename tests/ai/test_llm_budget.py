"""The run's LLM budget holds under concurrency, in every LLM phase, and refuses unpriced models.

Every call reserves its largest possible cost on the run's row before it is sent and settles
its actual cost after (`threadline.engine.budget.RunSpendGuard`), so four workers sharing one
run cannot together spend more than the budget plus one call. Against the OpenAI-compatible
stand-in on loopback and the real embedded PostgreSQL.
"""

from __future__ import annotations

import json

import pytest
from llm_helpers import KEY_ENV
from sqlalchemy import func, select
from support import EXAMPLES

from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import Run, RunStory
from threadline.engine.errors import RunError
from threadline.engine.runs import create_run, execute_run

PRICE_PER_MILLION = 100.0  # same for input and output: the stand-in's token total prices every call
PRICES = {"gpt-4o-mini": {"input_per_million": PRICE_PER_MILLION, "output_per_million": PRICE_PER_MILLION}}
BUDGET = 1.0  # ~15 facet calls at these prices, out of 220 conversations: the budget is what stops the run
ONE_CALL_TOKENS = 3_000  # tokens: more than any single call of the example data (prompt + its output cap)
WORKERS = 4  # concurrent jobs in one worker, each with a batch of its own
BATCH = 10  # conversations per batch: enough batches for all four workers at once


def _configure(monkeypatch: pytest.MonkeyPatch, base_url: str, api_key: str, **extra: str) -> None:
    monkeypatch.setenv("THREADLINE_LLM_BASE_URL", base_url)
    monkeypatch.setenv("THREADLINE_LLM_API_KEY_ENV", KEY_ENV)
    monkeypatch.setenv(KEY_ENV, api_key)
    monkeypatch.setenv("THREADLINE_LLM_REQUESTS_PER_MINUTE", "60000")
    monkeypatch.setenv("THREADLINE_LLM_TOKENS_PER_MINUTE", "10000000")
    monkeypatch.setenv("THREADLINE_LLM_PRICES", json.dumps(PRICES))
    for key, value in extra.items():
        monkeypatch.setenv(key, value)
    get_settings.cache_clear()  # the in-process worker reads the settings tree afresh


def _run(engine, embedder) -> Run:
    with session_scope(engine) as session:
        run_id = create_run(session, source="demo").id
    return execute_run(engine, run_id, embedder)


def _cost(tokens: int) -> float:
    return tokens * PRICE_PER_MILLION / 1_000_000


def test_four_concurrent_workers_spend_at_most_the_budget_plus_one_call(
    db_engine, db_session, embedder, standin_factory, monkeypatch
):
    # Every answer takes a while, so the four jobs' calls are in flight together.
    standin = standin_factory(
        requests_per_minute=60_000, tokens_per_minute=10_000_000, latency_min_seconds=0.05, latency_max_seconds=0.15
    )
    _configure(monkeypatch, standin.base_url, standin.api_key, THREADLINE_LLM_RUN_BUDGET=str(BUDGET))
    import_file(db_engine, EXAMPLES, source_name="demo")
    with session_scope(db_engine) as session:
        run_id = create_run(session, source="demo", batch_size=BATCH).id
    run = execute_run(db_engine, run_id, embedder, concurrency=WORKERS)

    spent = _cost(standin.state.counters["tokens"])  # what the provider counted, every call of every phase
    assert spent <= BUDGET + _cost(ONE_CALL_TOKENS), (spent, BUDGET)
    assert run.status == "stopped" and "budget" in (run.error or "")
    assert run.llm_reserved == pytest.approx(0.0, abs=1e-9)  # every reservation settled
    assert run.llm_spent == pytest.approx(spent, rel=1e-6)  # the row counts what the provider counted
    facets = run.counters["facets"]
    assert 0 < facets["done"] < run.counters["conversations"] and facets["dead"] == 0  # stopped, nothing dead


def test_naming_and_stories_check_the_budget_too(db_engine, db_session, embedder, standin, monkeypatch):
    _configure(monkeypatch, standin.base_url, standin.api_key)
    import_file(db_engine, EXAMPLES, source_name="demo")
    first = _run(db_engine, embedder)
    assert first.status == "succeeded", first.error
    # Facets are cached (cost 0); a new story model means new story text: only the budget stops it.
    _configure(
        monkeypatch,
        standin.base_url,
        standin.api_key,
        THREADLINE_LLM_RUN_BUDGET="0.000001",
        THREADLINE_LLM_MODELS__STORIES="gpt-4o-mini-2",
        THREADLINE_LLM_PRICES=json.dumps({**PRICES, "gpt-4o-mini-2": PRICES["gpt-4o-mini"]}),
    )
    calls = standin.state.counters["requests"]
    second = _run(db_engine, embedder)
    assert second.status == "succeeded", second.error
    assert standin.state.counters["requests"] == calls  # no call sent once the budget could not hold it
    stories = db_session.execute(select(RunStory).where(RunStory.run_id == second.id)).scalars().all()
    assert stories and all(s.text_origin != "llm" for s in stories)  # the templated stories stay
    assert second.counters["stories"]["llm_budget_refused"] == len(stories)


def test_a_budget_with_an_unpriced_model_is_refused_at_run_start(db_engine, db_session, standin, monkeypatch):
    _configure(
        monkeypatch,
        standin.base_url,
        standin.api_key,
        THREADLINE_LLM_RUN_BUDGET="1",
        THREADLINE_LLM_MODELS__NAMING="x9",
    )
    import_file(db_engine, EXAMPLES, source_name="demo")
    with session_scope(db_engine) as session, pytest.raises(RunError, match="no price for model 'x9'"):
        create_run(session, source="demo")
    assert db_session.execute(select(func.count()).select_from(Run)).scalar_one() == 0
    # Without a budget the same model is fine: nothing to hold.
    monkeypatch.delenv("THREADLINE_LLM_RUN_BUDGET")
    get_settings.cache_clear()
    with session_scope(db_engine) as session:
        assert create_run(session, source="demo").id
