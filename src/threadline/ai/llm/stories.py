"""Backlog story text grounded only in given evidence, every statement citing evidence ids.

The model sees numbered evidence items (verbatim quotes + scrubbed summaries) and must
cite their ids. Citations are validated against the ids we sent: unknown ids are
removed, acceptance criteria left without a valid citation are dropped, and a story
whose problem, user story or severity reason cites nothing valid gets ONE repair call;
if that still fails the story fails (the caller keeps the templated offline story).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Collection
from dataclasses import asdict, dataclass

from pydantic import BaseModel

from threadline.ai.llm.client import LLMClient
from threadline.ai.llm.cost import CallUsage
from threadline.ai.llm.prompts import STORIES_PROMPT_VERSION, STORIES_SYSTEM, chat_messages
from threadline.ai.llm.schemas import CitedText, Severity, StoryOut
from threadline.config import LLMSettings, get_settings
from threadline.text.pii import PII_VERSION, mask_for_display, masking_enabled

STAGE = "stories"
# Prompt and output sizes are settings (`LLMSettings.stories_*`); the output-token sizes belong to the prompt version.
MAX_OUTPUT_TOKENS = 900  # tokens: title, problem, story, 5 criteria with citations
EXPECTED_OUTPUT_TOKENS = 350  # tokens: initial estimate before real usage is observed
MIN_CRITERIA = 1  # acceptance criteria that must survive citation checks: the definition of a grounded story


@dataclass(frozen=True)
class Evidence:
    """One evidence item: a verbatim quote and where it came from."""

    evidence_id: str
    conversation_id: str
    message_id: str
    quote: str
    summary: str = ""


@dataclass(frozen=True)
class StoryInput:
    """A theme and its evidence, as the story writer sees it."""

    theme_id: str
    theme_name: str
    theme_description: str
    evidence: tuple[Evidence, ...]


class CitedStatement(BaseModel):
    """A statement with only valid evidence ids."""

    text: str
    evidence_ids: list[str]


class Story(BaseModel):
    """Validated story text (stored on `stories`; citations map to `story_evidence`)."""

    title: str
    problem: CitedStatement
    user_story: CitedStatement
    acceptance_criteria: list[CitedStatement]
    severity: Severity
    severity_reason: CitedStatement
    citations_dropped: int = 0
    criteria_dropped: int = 0


@dataclass(frozen=True)
class StoryResult:
    """A written story plus its cache key and cost."""

    theme_id: str
    input_hash: str
    model: str
    prompt_version: str
    story: Story
    usages: tuple[CallUsage, ...]
    attempts: int


def story_payload(inp: StoryInput, limits: LLMSettings | None = None) -> dict[str, object]:
    """What the model sees: the theme and evidence items with their ids, bounded by `limits` (default: the process's).

    Personal data is masked in everything sent (`threadline.text.pii.mask_for_display`).
    """
    limits = limits or get_settings().llm
    return {
        "theme": {"name": mask_for_display(inp.theme_name), "description": mask_for_display(inp.theme_description)},
        "evidence": [
            {
                "id": e.evidence_id,
                "quote": mask_for_display(e.quote)[: limits.stories_quote_chars],
                "summary": mask_for_display(e.summary),
            }
            for e in inp.evidence[: limits.stories_evidence]
        ],
    }


def story_input_hash(inp: StoryInput, model: str, prompt_version: str = STORIES_PROMPT_VERSION) -> str:
    """Content-addressed key over theme, evidence, model and prompt version."""
    material = {
        "prompt_version": prompt_version,
        "model": model,
        "theme": [inp.theme_name, inp.theme_description],
        "evidence": [asdict(e) for e in inp.evidence],
        "masking": PII_VERSION if masking_enabled() else None,  # what is sent changes with the masking
    }
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode("utf-8")).hexdigest()


def _valid(statement: CitedText, ids: Collection[str]) -> tuple[CitedStatement, int]:
    kept = list(dict.fromkeys(i for i in statement.evidence_ids if i in ids))
    return (
        CitedStatement(text=statement.text.strip(), evidence_ids=kept),
        len(statement.evidence_ids) - len(kept),
    )


def citation_problem(out: StoryOut, ids: Collection[str]) -> str | None:
    """Why a story cannot be accepted (no untrusted text), or None if it can."""
    for name in ("problem", "user_story", "severity_reason"):
        if not _valid(getattr(out, name), ids)[0].evidence_ids:
            return f"{name} cites no evidence id from the data"
    supported = sum(1 for c in out.acceptance_criteria if _valid(c, ids)[0].evidence_ids)
    if supported < MIN_CRITERIA:
        return "no acceptance criterion cites an evidence id from the data"
    return None


def finalize_story(out: StoryOut, ids: Collection[str], limits: LLMSettings | None = None) -> Story:
    """Remove unknown ids, drop uncited criteria, count what was removed; clip to `limits` (default: the process's)."""
    limits = limits or get_settings().llm
    dropped = 0
    statements = {}
    for name in ("problem", "user_story", "severity_reason"):
        statements[name], removed = _valid(getattr(out, name), ids)
        dropped += removed
    criteria: list[CitedStatement] = []
    criteria_dropped = 0
    for item in out.acceptance_criteria:
        statement, removed = _valid(item, ids)
        dropped += removed
        if statement.evidence_ids and statement.text and len(criteria) < limits.stories_max_criteria:
            criteria.append(statement)
        else:
            criteria_dropped += 1
    return Story(
        title=out.title.strip()[: limits.stories_title_chars],
        acceptance_criteria=criteria,
        severity=out.severity,
        citations_dropped=dropped,
        criteria_dropped=criteria_dropped,
        **statements,
    )


async def write_story(client: LLMClient, inp: StoryInput) -> StoryResult:
    """One call writing one story. Raises `LLMCallFailed` after bounded attempts."""
    model = client.settings.models.stories
    ids = {e.evidence_id for e in inp.evidence[: client.settings.stories_evidence]}
    result = await client.structured(
        stage=STAGE,
        model=model,
        messages=chat_messages(STORIES_SYSTEM, "evidence_data", story_payload(inp, client.settings)),
        output=StoryOut,
        max_output_tokens=MAX_OUTPUT_TOKENS,
        expected_output_tokens=EXPECTED_OUTPUT_TOKENS,
        check=lambda out: citation_problem(out, ids),
    )
    return StoryResult(
        theme_id=inp.theme_id,
        input_hash=story_input_hash(inp, model),
        model=model,
        prompt_version=STORIES_PROMPT_VERSION,
        story=finalize_story(result.value, ids, client.settings),
        usages=result.usages,
        attempts=result.attempts,
    )
