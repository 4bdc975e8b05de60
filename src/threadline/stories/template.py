"""Offline story text: title and problem statement from plain facts, and nothing that is not known.

Pure (plain data in, text out), so better writing can replace it without touching how
stories are stored: the stories stage gathers the facts, calls `story_text`, and copies the
result into the run's snapshot verbatim. The title is the clearest customer statement of
the problem (`threadline.stories.titles`), the problem statement says only what is known
(`threadline.stories.text`). Offline there is no user story and no acceptance criteria:
they cannot be written honestly without reading the evidence; the LLM path writes them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from threadline.stories.text import TEXT_VERSION, problem_text
from threadline.stories.titles import TITLES_VERSION, story_title

__all__ = ["StoryFacts", "StoryText", "TEMPLATE_VERSION", "story_text"]

TEMPLATE_VERSION = f"{TITLES_VERSION}+{TEXT_VERSION}"  # part of the stage version: a wording change re-writes


@dataclass(frozen=True)
class StoryFacts:
    """What a story is written from: the theme as the run saw it, what is known of its customers, its evidence."""

    theme_name: str
    keywords: Sequence[str]
    conversations: int
    customers_known: int  # distinct customers with an id
    customers_unknown_conversations: int  # conversations whose customer is unknown
    first_seen: datetime | None
    last_seen: datetime | None
    trend: Mapping[str, Any]
    companies: Mapping[str, int] = field(default_factory=dict)
    plans: Mapping[str, int] = field(default_factory=dict)
    quotes: Sequence[str] = field(default_factory=tuple)  # verbatim, best first
    title_quotes: Sequence[str] = field(default_factory=tuple)  # the same quotes with personal data masked
    evidence_notes: Sequence[str] = field(default_factory=tuple)  # why the evidence is thin or repetitive
    named_by_person: bool = False  # `theme_name` is a person's name for the theme: it is the title


@dataclass(frozen=True)
class StoryText:
    title: str
    problem: str
    user_story: str | None
    acceptance_criteria: list[str]


def story_text(facts: StoryFacts) -> StoryText:
    """The offline story of a theme: a title stating the problem and a problem statement of known facts.

    A person's name for the theme is the title (their words win over extraction); otherwise
    the title is the clearest customer statement among the evidence, else the theme's name.
    """
    return StoryText(
        title=facts.theme_name if facts.named_by_person else story_title(facts.title_quotes, facts.theme_name),
        problem=problem_text(
            name=facts.theme_name,
            keywords=facts.keywords,
            typical_quote=facts.quotes[0] if facts.quotes else None,
            conversations=facts.conversations,
            customers_known=facts.customers_known,
            customers_unknown_conversations=facts.customers_unknown_conversations,
            companies=facts.companies,
            plans=facts.plans,
            first_seen=facts.first_seen,
            last_seen=facts.last_seen,
            trend=facts.trend,
            evidence_notes=facts.evidence_notes,
        ),
        user_story=None,
        acceptance_criteria=[],
    )
