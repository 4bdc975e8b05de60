"""Theme naming with contrasts, story writing with validated evidence citations."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest
from llm_helpers import RunningStandin, client_for

from threadline.ai.llm import (
    Evidence,
    LLMCallFailed,
    StoryInput,
    ThemeMember,
    ThemeNamingInput,
    name_theme,
    write_story,
)
from threadline.ai.llm.schemas import CitedText, StoryOut
from threadline.ai.llm.stories import citation_problem, finalize_story


def _member(cid: str, summary: str, area: str) -> ThemeMember:
    return ThemeMember(cid, summary, summary, None, area, "bug")


NAMING = ThemeNamingInput(
    "t1",
    members=(
        _member("c1", "card declined abroad in a shop", "cards"),
        _member("c2", "card declined abroad at an atm", "cards"),
    ),
    nearest_non_members=(_member("c3", "card arrived late by post", "cards"),),
)
EVIDENCE = tuple(Evidence(f"E{i}", f"c{i}", f"m{i}", f"My card was declined abroad ({i}).") for i in range(1, 4))


def test_theme_name_contrasts_members_with_non_members(standin: RunningStandin) -> None:
    async def run() -> None:
        async with client_for(standin) as client:
            result = await name_theme(client, NAMING)
        assert "abroad" in result.name.name.lower()
        assert "late" in result.name.contrast or "arrived" in result.name.contrast
        assert result.usages and result.usages[0].stage == "naming"

    asyncio.run(run())


def test_story_citations_are_validated_and_unknown_ids_dropped(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = standin_factory(bad_citation_rate=1.0)  # the model invents ids
    story_input = StoryInput("t1", "Card declined abroad", "Cards fail abroad.", EVIDENCE)

    async def run() -> None:
        async with client_for(server) as client:
            result = await write_story(client, story_input)
        story = result.story
        valid = {e.evidence_id for e in EVIDENCE}
        cited = [story.problem, story.user_story, story.severity_reason, *story.acceptance_criteria]
        assert all(s.evidence_ids and set(s.evidence_ids) <= valid for s in cited)
        assert story.citations_dropped == 2  # "nonexistent" and "E999999"
        assert story.criteria_dropped == 1  # the criterion citing only E999999

    asyncio.run(run())


def test_story_without_valid_citation_for_problem_needs_repair() -> None:
    out = StoryOut(
        title="t",
        problem=CitedText(text="p", evidence_ids=["E404"]),
        user_story=CitedText(text="u", evidence_ids=["E1"]),
        acceptance_criteria=[CitedText(text="a", evidence_ids=["E1"])],
        severity="low",
        severity_reason=CitedText(text="r", evidence_ids=["E1"]),
    )
    assert citation_problem(out, {"E1"}) == "problem cites no evidence id from the data"
    fixed = out.model_copy(update={"problem": CitedText(text="p", evidence_ids=["E1", "E404"])})
    assert citation_problem(fixed, {"E1"}) is None
    assert finalize_story(fixed, {"E1"}).citations_dropped == 1


def test_story_citing_nothing_fails_after_one_repair(
    standin_factory: Callable[..., RunningStandin],
) -> None:
    server = standin_factory()
    # With no evidence there is no id the model could cite, so no answer is acceptable.
    story_input = StoryInput("t2", "Empty", "No evidence.", ())

    async def run() -> None:
        async with client_for(server) as client:
            with pytest.raises(LLMCallFailed) as failure:
                await write_story(client, story_input)
        assert failure.value.error_class == "InvalidModelOutput"
        assert failure.value.attempts == 2  # the call and its one repair

    asyncio.run(run())
    assert server.state.counters["requests"] == 2
