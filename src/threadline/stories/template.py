"""Offline story text: title, problem, user story and acceptance criteria from plain facts.

Pure (plain data in, text out), so better writing can replace it without touching how
stories are stored: the stories stage gathers the facts, calls `story_text`, and copies the
result into the run's snapshot verbatim.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

__all__ = ["StoryFacts", "StoryText", "TEMPLATE_VERSION", "story_text"]

TEMPLATE_VERSION = "templated-1"  # bump when the wording changes: part of the stage version

_TITLE_VERBS = {
    "bug": "Fix",
    "feature_request": "Add",
    "how_to": "Clarify",
    "billing": "Correct",
    "account_access": "Unblock",
    "complaint": "Address",
    "praise": "Keep",
    "other": "Resolve",
}


@dataclass(frozen=True)
class StoryFacts:
    """What a story is written from: the theme as the run saw it and its evidence quotes (verbatim)."""

    theme_name: str
    keywords: Sequence[str]
    conversations: int
    customers: int
    first_seen: datetime | None
    last_seen: datetime | None
    direction: str  # trend direction: rising | falling | steady | new
    dominant_type: str  # most common conversation type among the members
    quotes: Sequence[str] = field(default_factory=tuple)


@dataclass(frozen=True)
class StoryText:
    title: str
    problem: str
    user_story: str | None
    acceptance_criteria: list[str]


def story_text(facts: StoryFacts) -> StoryText:
    """The templated story of a theme: specific (counts, dates, key phrases) and quoting the first piece of evidence."""
    verb = _TITLE_VERBS.get(facts.dominant_type, "Resolve")
    name = facts.theme_name
    when = (
        f" between {facts.first_seen:%d %b %Y} and {facts.last_seen:%d %b %Y}"
        if facts.first_seen and facts.last_seen
        else ""
    )
    keywords = ", ".join(list(facts.keywords)[:5])
    typical = f". Typical report: \u201c{facts.quotes[0]}\u201d" if facts.quotes else "."
    return StoryText(
        title=f"{verb}: {name}",
        problem=(
            f"{facts.conversations} conversations from {facts.customers} customers{when} are about {name}"
            + (f" ({keywords})" if keywords else "")
            + typical
        ),
        user_story=(
            f"As a customer affected by {name}, I want it resolved so that I do not need to contact support about it."
        ),
        acceptance_criteria=[
            f"The situation in the {len(facts.quotes)} evidence conversations no longer leads to a support request.",
            f"Support volume about {name} falls below its current {facts.direction} level in the following weeks.",
            "Customers who reported it can be told it is resolved.",
        ],
    )
