"""Whole-run LLM steps: theme names and story text, grounded in stored facets and evidence.

Both run after the offline stages wrote their results, and only improve them: a theme
keeps its extractive name when naming fails, a story keeps its templated text when
writing fails or cites nothing valid, and text a person edited is never overwritten.
Each function returns the usages of its calls so the caller can add them to the run's
cost counters (never a shared dict).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.ai.llm.client import LLMCallFailed, LLMClient
from threadline.ai.llm.cost import CallUsage
from threadline.ai.llm.facets import STAGE as FACETS_STAGE
from threadline.ai.llm.naming import ThemeMember as NamingMember
from threadline.ai.llm.naming import ThemeNamingInput, name_theme
from threadline.ai.llm.runtime import LLMRuntime
from threadline.ai.llm.stories import Evidence, StoryInput, write_story
from threadline.db.models import Analysis, Story, StoryEvidence, Theme, ThemeMember

logger = logging.getLogger(__name__)

MEMBERS_PER_THEME = 12  # member digests sent to name a theme: enough to see the pattern, cheap to send
CONTRASTS_PER_THEME = 6  # members of the nearest other themes sent as contrast


def _digests(session: Session, conversation_ids: Sequence[int]) -> dict[int, NamingMember]:
    rows = session.execute(
        select(Analysis.conversation_id, Analysis.output)
        .where(Analysis.conversation_id.in_(list(conversation_ids)), Analysis.stage == FACETS_STAGE)
        .order_by(Analysis.conversation_id, Analysis.created_at.desc())
    ).all()
    digests: dict[int, NamingMember] = {}
    for conversation_id, output in rows:
        if conversation_id in digests:
            continue
        digests[conversation_id] = NamingMember(
            conversation_id=str(conversation_id),
            summary=output.get("summary", ""),
            customer_problem=output.get("customer_problem", ""),
            requested_change=output.get("requested_change"),
            product_area=output.get("product_area", ""),
            conversation_type=output.get("conversation_type", "other"),
        )
    return digests


def _top_members(session: Session, run_id: int, theme_id: int, limit: int) -> list[int]:
    return list(
        session.execute(
            select(ThemeMember.conversation_id)
            .where(ThemeMember.run_id == run_id, ThemeMember.theme_id == theme_id)
            .order_by(ThemeMember.similarity.desc(), ThemeMember.conversation_id)
            .limit(limit)
        ).scalars()
    )


def name_themes_with_llm(
    session: Session, run_id: int, theme_ids: Sequence[int], runtime: LLMRuntime
) -> list[CallUsage]:
    """Replace the extractive names of `theme_ids` with LLM names contrasting their nearest themes."""
    themes = {t.id: t for t in session.execute(select(Theme).where(Theme.id.in_(list(theme_ids)))).scalars()}
    if not themes:
        return []
    run_themes = list(
        session.execute(
            select(Theme).where(Theme.id.in_(select(ThemeMember.theme_id).where(ThemeMember.run_id == run_id)))
        ).scalars()
    )
    centroids = {t.id: np.asarray(t.centroid, dtype=np.float32) for t in run_themes if t.centroid is not None}
    members = {tid: _top_members(session, run_id, tid, MEMBERS_PER_THEME) for tid in centroids}
    digests = _digests(session, [cid for ids in members.values() for cid in ids])
    inputs = []
    for theme_id in themes:
        if theme_id not in centroids:
            continue
        others = sorted(
            (t for t in centroids if t != theme_id), key=lambda t: -float(centroids[t] @ centroids[theme_id])
        )
        contrast = [digests[c] for other in others[:3] for c in members[other][:2] if c in digests][
            :CONTRASTS_PER_THEME
        ]
        own = tuple(digests[c] for c in members[theme_id] if c in digests)
        if own:
            inputs.append(ThemeNamingInput(str(theme_id), own, tuple(contrast)))

    async def job(client: LLMClient):
        return await asyncio.gather(*(name_theme(client, inp) for inp in inputs), return_exceptions=True)

    usages: list[CallUsage] = []
    taken = {t.name for t in run_themes if t.id not in themes}
    for result in runtime.run(job):
        if isinstance(result, LLMCallFailed):
            usages.extend(result.usages)
            logger.warning("theme naming failed (%s); keeping the extractive name", result.error_class)
            continue
        if isinstance(result, BaseException):
            logger.warning("theme naming failed (%s); keeping the extractive name", type(result).__name__)
            continue
        usages.extend(result.usages)
        theme = themes[int(result.theme_id)]
        if result.name.name and result.name.name not in taken:
            theme.name = result.name.name
            theme.description = result.name.description
            taken.add(theme.name)
    return usages


def write_stories_with_llm(session: Session, run_id: int, runtime: LLMRuntime) -> list[CallUsage]:
    """Rewrite the run's unedited stories from their evidence; every statement cites evidence ids."""
    stories = list(session.execute(select(Story).where(Story.run_id == run_id, Story.edited.is_(False))).scalars())
    if not stories:
        return []
    evidence = {
        s.id: list(
            session.execute(
                select(StoryEvidence).where(StoryEvidence.story_id == s.id).order_by(StoryEvidence.position)
            ).scalars()
        )
        for s in stories
    }
    digests = _digests(session, [e.conversation_id for items in evidence.values() for e in items])
    inputs = []
    for story in stories:
        theme = session.get(Theme, story.theme_id)
        items = tuple(
            Evidence(
                f"E{e.position + 1}",
                str(e.conversation_id),
                str(e.message_id),
                e.quote,
                digests[e.conversation_id].summary if e.conversation_id in digests else "",
            )
            for e in evidence[story.id]
        )
        # StoryInput's key field carries the story id here, so results map back to their story.
        inputs.append(
            StoryInput(
                str(story.id), theme.name if theme else story.title, (theme.description or "") if theme else "", items
            )
        )

    async def job(client: LLMClient):
        return await asyncio.gather(*(write_story(client, inp) for inp in inputs), return_exceptions=True)

    usages: list[CallUsage] = []
    by_id = {s.id: s for s in stories}
    for result in runtime.run(job):
        if isinstance(result, BaseException):
            usages.extend(getattr(result, "usages", ()))
            logger.warning("story writing failed (%s); keeping the templated story", type(result).__name__)
            continue
        usages.extend(result.usages)
        story, written = by_id[int(result.theme_id)], result.story

        def cited(statement) -> str:
            return f"{statement.text} [{', '.join(statement.evidence_ids)}]"

        story.title = written.title
        story.problem = cited(written.problem)
        story.user_story = cited(written.user_story)
        story.acceptance_criteria = [cited(c) for c in written.acceptance_criteria]
        story.severity = written.severity
        story.severity_reason = cited(written.severity_reason)
    return usages
