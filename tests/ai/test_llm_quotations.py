"""Quotations inside model-written text must be verbatim evidence (issue 15, finding 6).

A span in double quotation marks (straight or typographic) of at least four words is a
quotation; it must be an exact substring of the evidence as the model saw it (masked), or the
story is rejected after one repair and the templated story stays. Against the OpenAI-compatible
stand-in on loopback; the pipeline test on the real embedded PostgreSQL.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable

import pytest
from llm_helpers import KEY_ENV, RunningStandin, client_for
from sqlalchemy import select
from support import EXAMPLES
from threadline_testing.openai.config import INVENTED_QUOTATION

from threadline.ai.llm import Evidence, LLMCallFailed, StoryInput, write_story
from threadline.ai.llm.quotes import quotation_problem, quotations, unverified_quotations
from threadline.config import get_settings
from threadline.connectors.files.importer import import_file
from threadline.db.engine import session_scope
from threadline.db.models import RunStory
from threadline.engine.runs import create_run, execute_run

QUOTES = ("My card was declined abroad at the airport shop.", "The export to CSV fails every single time.")
EVIDENCE = tuple(Evidence(f"E{i}", f"c{i}", f"m{i}", q) for i, q in enumerate(QUOTES, 1))
STORY = StoryInput("t1", "Card declined abroad", "Cards fail abroad.", EVIDENCE)


@pytest.mark.parametrize(
    ("text", "found"),
    [
        ('He said "card was declined abroad" today', ["card was declined abroad"]),
        ("\u201ccard was declined abroad\u201d", ["card was declined abroad"]),
        ("\u201ecard was declined abroad\u201c", ["card was declined abroad"]),
        ("\u00abcard was declined abroad\u00bb", ["card was declined abroad"]),
        ('the "Export" button and "the new plan"', []),  # under four words: a name, not a quotation
        ("the customer's card isn't 'declined at all' here", []),  # single quotes are apostrophes too
    ],
)
def test_quotation_spans(text: str, found: list[str]) -> None:
    assert quotations(text) == found


def test_only_exact_evidence_passes_and_the_problem_names_no_text() -> None:
    assert unverified_quotations(['A customer wrote: "card was   declined\nabroad at"'], QUOTES) == 0
    assert unverified_quotations(['A customer wrote: "Card was declined abroad at"'], QUOTES) == 1  # case
    problem = quotation_problem([f'A customer wrote: "{INVENTED_QUOTATION}"'], QUOTES)
    assert problem is not None and "$50,000" not in problem and "cancel" not in problem


def test_an_unclosed_mark_is_scanned_in_linear_time() -> None:
    hostile = "\u201c" + "word " * 40_000 + '"' * 20_000
    start = time.perf_counter()
    unverified_quotations([hostile], QUOTES)
    assert time.perf_counter() - start < 2.0  # seconds: quadratic scanning takes minutes here


def test_a_story_quoting_its_evidence_verbatim_is_kept(standin_factory: Callable[..., RunningStandin]) -> None:
    server = standin_factory(story_quotation="verbatim")

    async def run() -> None:
        async with client_for(server) as client:
            result = await write_story(client, STORY)
        assert f'"{QUOTES[0]}"' in result.story.problem.text
        assert result.attempts == 1

    asyncio.run(run())


def test_a_story_with_an_invented_quotation_is_rejected_after_one_repair(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = standin_factory(story_quotation="invented")

    async def run() -> None:
        async with client_for(server) as client:
            with pytest.raises(LLMCallFailed) as failure:
                await write_story(client, STORY)
        assert failure.value.error_class == "InvalidModelOutput" and failure.value.attempts == 2

    asyncio.run(run())


def test_the_pipeline_keeps_the_templated_story_instead_of_an_invented_quotation(
    db_engine, db_session, embedder, standin_factory, monkeypatch
):
    server = standin_factory(requests_per_minute=60_000, tokens_per_minute=10_000_000, story_quotation="invented")
    monkeypatch.setenv("THREADLINE_LLM_BASE_URL", server.base_url)
    monkeypatch.setenv("THREADLINE_LLM_API_KEY_ENV", KEY_ENV)
    monkeypatch.setenv(KEY_ENV, server.api_key)
    monkeypatch.setenv("THREADLINE_LLM_REQUESTS_PER_MINUTE", "60000")
    monkeypatch.setenv("THREADLINE_LLM_TOKENS_PER_MINUTE", "10000000")
    monkeypatch.setenv("THREADLINE_LLM_PRICES", json.dumps({}))
    get_settings.cache_clear()
    import_file(db_engine, EXAMPLES, source_name="demo")
    with session_scope(db_engine) as session:
        run_id = create_run(session, source="demo").id
    run = execute_run(db_engine, run_id, embedder)
    assert run.status == "succeeded", run.error
    stories = db_session.execute(select(RunStory).where(RunStory.run_id == run_id)).scalars().all()
    assert stories and all(s.text_origin != "llm" for s in stories)
    assert not any("$50,000" in (s.problem or "") for s in stories)
