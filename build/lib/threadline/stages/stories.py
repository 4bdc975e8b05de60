"""Stage `stories`: one evidence-backed story per theme of the run that is big enough.

Offline stories are templated from the theme (name, key phrases, counts, trend) and its
verbatim evidence; an LLM, when configured, rewrites the text later from the same evidence.
Upsert semantics (by theme): counts, trend, rank and evidence are refreshed by every run;
title and text are refreshed only while nobody has edited them; status is never touched.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, any_, case, cast, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from threadline.ai.llm.client import LLMClient
from threadline.ai.llm.cost import CallUsage, cost_counters
from threadline.ai.llm.facets import STAGE as FACETS_STAGE
from threadline.ai.llm.prompts import STORIES_PROMPT_VERSION
from threadline.ai.llm.runtime import LLMRuntime
from threadline.ai.llm.stories import CitedStatement, Evidence, StoryInput, StoryResult, write_story
from threadline.analysis.conversation_type import TYPE_ANALYSIS
from threadline.config import EVIDENCE_QUOTES_PER_STORY, MIN_EVIDENCE_QUOTES, MIN_STORY_CONVERSATIONS
from threadline.db.analyses import latest_outputs, outputs_of
from threadline.db.models import Conversation, Message, Run, RunConversation, Story, StoryEvidence, Theme, ThemeMember
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stories.evidence import Quote, best_quote

logger = logging.getLogger(__name__)

NAME = "stories"
VERSION = "templated-1"  # offline story text; the LLM's prompt version is added when it writes
FIRST_MESSAGE_BONUS = 1.0  # score points: one keyword's worth of preference for the opening message
EVIDENCE_CANDIDATES = 40  # conversations closest to the theme centre searched for quotes: enough variety, bounded work
TREND_MAX_BUCKETS = 26  # points in a trend series: a half-year of weeks, readable as a sparkline
TREND_RATIO_RISING = 1.5  # later-half rate / earlier-half rate above this reads as rising
TREND_RATIO_FALLING = 1 / 1.5  # ... below this as falling
SEVERITY_HIGH_SHARE = 0.10  # share of the run's conversations: a tenth of all support volume is high severity


@dataclass
class StoriesResult:
    stories: int = 0
    skipped_small: int = 0
    skipped_no_evidence: int = 0


def _period(session: Session, run: Run) -> tuple[datetime, datetime] | None:
    first, last = session.execute(
        select(func.min(Conversation.created_at), func.max(Conversation.created_at))
        .join(RunConversation, RunConversation.conversation_id == Conversation.id)
        .where(RunConversation.run_id == run.id)
    ).one()
    if first is None or last is None:
        return None
    return first, last


def trend_series(times: list[datetime], start: datetime, end: datetime) -> dict[str, Any]:
    """Counts per bucket over [start, end] and a direction (rising / falling / steady / new)."""
    span_days = max((end - start).total_seconds() / 86400, 1.0)
    bucket_days = max(7, math.ceil(span_days / TREND_MAX_BUCKETS))
    buckets = max(1, math.ceil(span_days / bucket_days))
    counts = [0] * buckets
    for t in times:
        index = min(buckets - 1, int((t - start).total_seconds() / 86400 // bucket_days))
        counts[max(index, 0)] += 1
    half = buckets // 2
    earlier, later = sum(counts[:half]), sum(counts[half:])
    if buckets < 2 or not times:
        direction = "steady"
    elif earlier == 0:
        direction = "new" if later else "steady"
    else:
        ratio = (later / max(buckets - half, 1)) / (earlier / max(half, 1))
        direction = "rising" if ratio > TREND_RATIO_RISING else "falling" if ratio < TREND_RATIO_FALLING else "steady"
    return {
        "bucket_days": bucket_days,
        "start": start.date().isoformat(),
        "counts": counts,
        "direction": direction,
    }


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


def _evidence_candidates(
    session: Session, run_id: int, theme_ids: list[int]
) -> dict[int, list[tuple[int, int | None]]]:
    """Per theme, up to EVIDENCE_CANDIDATES (conversation id, contact id), closest to the theme centre first."""
    if not theme_ids:
        return {}
    closeness = (
        func.row_number()
        .over(partition_by=ThemeMember.theme_id, order_by=(ThemeMember.similarity.desc(), ThemeMember.conversation_id))
        .label("closeness")
    )
    ranked = (
        select(ThemeMember.theme_id, ThemeMember.conversation_id, Conversation.contact_id, closeness)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id, ThemeMember.theme_id.in_(theme_ids))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.theme_id, ranked.c.conversation_id, ranked.c.contact_id)
        .where(ranked.c.closeness <= EVIDENCE_CANDIDATES)
        .order_by(ranked.c.theme_id, ranked.c.closeness)
    )
    candidates: dict[int, list[tuple[int, int | None]]] = defaultdict(list)
    for theme_id, conversation_id, contact_id in rows:
        candidates[theme_id].append((conversation_id, contact_id))
    return candidates


def _customer_messages(session: Session, conversation_ids: list[int]) -> dict[int, list[tuple[int, str]]]:
    """Customer messages (id, text) of each conversation, in conversation order."""
    messages: dict[int, list[tuple[int, str]]] = defaultdict(list)
    if not conversation_ids:
        return messages
    rows = session.execute(
        select(Message.id, Message.conversation_id, Message.text)
        .where(
            Message.conversation_id == any_(cast(conversation_ids, ARRAY(BigInteger))),
            Message.author_role == "customer",
        )
        .order_by(Message.conversation_id, Message.position)
    )
    for message_id, conversation_id, body in rows:
        messages[conversation_id].append((message_id, body))
    return messages


def _evidence(
    theme: Theme, members: list[tuple[int, int | None]], messages: dict[int, list[tuple[int, str]]]
) -> list[Quote]:
    """Up to EVIDENCE_QUOTES_PER_STORY quotes from distinct conversations, distinct customers first.

    `members` are the theme's candidate (conversation, contact) pairs, closest first.
    """
    contact_of = dict(members)
    best_by_conversation: dict[int, Quote] = {}
    for conversation_id, _ in members:
        for index, (message_id, body) in enumerate(messages.get(conversation_id, [])):
            quote = best_quote(message_id, conversation_id, body, theme.keywords)
            if quote is not None and index == 0:
                # The opening customer message states the problem; follow-ups add details.
                quote = dataclasses.replace(quote, score=quote.score + FIRST_MESSAGE_BONUS)
            current = best_by_conversation.get(conversation_id)
            if quote and (current is None or quote.score > current.score):
                best_by_conversation[conversation_id] = quote
    order = [cid for cid, _ in members if cid in best_by_conversation]
    chosen: list[Quote] = []
    seen_contacts: set[int] = set()
    for prefer_new_customer in (True, False):
        for cid in order:
            if len(chosen) >= EVIDENCE_QUOTES_PER_STORY:
                break
            quote = best_by_conversation[cid]
            contact = contact_of[cid]
            if quote in chosen or (prefer_new_customer and contact is not None and contact in seen_contacts):
                continue
            if any(q.text.casefold() == quote.text.casefold() for q in chosen):
                continue  # the same sentence twice shows nothing new
            chosen.append(quote)
            if contact is not None:
                seen_contacts.add(contact)
    return chosen


def build_stories(session: Session, run_id: int, *, types: dict[int, str] | None = None) -> StoriesResult:
    """Write stories for the run's themes with at least MIN_STORY_CONVERSATIONS conversations.

    `types` maps conversation id -> conversation type (when the type stage ran); the
    dominant type chooses the story's verb ("Fix ...", "Add ...").
    """
    result = StoriesResult()
    run = session.get(Run, run_id)
    assert run is not None
    period = _period(session, run)
    total = session.execute(select(func.count()).where(RunConversation.run_id == run_id)).scalar_one()
    rows = session.execute(
        select(ThemeMember.theme_id, Conversation.id, Conversation.created_at, Conversation.contact_id)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id)
    ).all()
    by_theme: dict[int, list[tuple[int, datetime | None, int | None]]] = defaultdict(list)
    for theme_id, conversation_id, created_at, contact_id in rows:
        by_theme[theme_id].append((conversation_id, created_at, contact_id))
    big_enough = sorted(theme_id for theme_id, members in by_theme.items() if len(members) >= MIN_STORY_CONVERSATIONS)
    result.skipped_small = len(by_theme) - len(big_enough)
    themes = {theme.id: theme for theme in session.execute(select(Theme).where(Theme.id.in_(big_enough))).scalars()}
    candidates = _evidence_candidates(session, run_id, big_enough)
    messages = _customer_messages(session, sorted({cid for pairs in candidates.values() for cid, _ in pairs}))
    story_rows: list[dict[str, Any]] = []
    story_quotes: list[list[Quote]] = []
    for theme_id in big_enough:
        members = by_theme[theme_id]
        theme = themes[theme_id]
        quotes = _evidence(theme, candidates.get(theme_id, []), messages)
        if len(quotes) < MIN_EVIDENCE_QUOTES:
            result.skipped_no_evidence += 1
            logger.info("theme %d: only %d evidence quotes, no story", theme_id, len(quotes))
            continue
        times = [t for _, t, _ in members if t is not None]
        customers = len({contact if contact is not None else f"c{cid}" for cid, _, contact in members})
        trend = trend_series(times, *period) if period and times else {"counts": [], "direction": "steady"}
        recent_share = _recent_share(times, period)
        score = len(members) * (0.5 + recent_share)
        dominant = Counter((types or {}).get(cid, "other") for cid, _, _ in members).most_common(1)[0][0]
        share = len(members) / max(total, 1)
        story_rows.append(
            _story_row(
                run_id,
                theme,
                quotes,
                count=len(members),
                customers=customers,
                first=min(times, default=None),
                last=max(times, default=None),
                trend=trend,
                score=score,
                dominant_type=dominant,
                share=share,
            )
        )
        story_quotes.append(quotes)
    story_ids = _upsert_stories(session, story_rows)
    result.stories = len(story_ids)
    _replace_evidence(session, dict(zip(story_ids, story_quotes, strict=True)))
    scored = sorted(
        zip((row["score"] for row in story_rows), story_ids, strict=True), key=lambda item: (-item[0], item[1])
    )
    ranked = [story_id for _, story_id in scored]
    if ranked:
        session.execute(
            text(
                "UPDATE stories s SET rank = r.rank FROM unnest(CAST(:ids AS bigint[])) WITH ORDINALITY AS r(id, rank) WHERE s.id = r.id"
            ),
            {"ids": ranked},
        )
    return result


def _replace_evidence(session: Session, evidence: dict[int, list[Quote]]) -> None:
    """Each story's evidence becomes exactly `evidence[story]` (positions 0..n-1), in two statements."""
    if not evidence:
        return
    session.execute(delete(StoryEvidence).where(StoryEvidence.story_id.in_(list(evidence))))
    rows = [
        dict(
            story_id=story_id,
            position=i,
            conversation_id=q.conversation_id,
            message_id=q.message_id,
            quote=q.text,
            start_offset=q.start,
            end_offset=q.end,
        )
        for story_id, quotes in evidence.items()
        for i, q in enumerate(quotes)
    ]
    session.execute(insert(StoryEvidence), rows)  # executemany: one cached statement


def _recent_share(times: list[datetime], period: tuple[datetime, datetime] | None) -> float:
    """Share of the theme's conversations in the last quarter of the run's period."""
    if not times or period is None:
        return 0.0
    start, end = period
    cutoff = end - (end - start) / 4 if end > start else end - timedelta(days=1)
    return sum(1 for t in times if t >= cutoff) / len(times)


def _severity(share: float, direction: str) -> tuple[str, str]:
    if share >= SEVERITY_HIGH_SHARE:
        return "high", f"{share:.0%} of the run's conversations"
    if direction in ("rising", "new"):
        return "medium", f"{share:.0%} of the run's conversations and {direction}"
    return "low", f"{share:.0%} of the run's conversations, {direction}"


_TEXT_FIELDS = ("title", "problem", "user_story", "acceptance_criteria")  # follow the data until a person edits them
_REFRESHED_FIELDS = (
    "run_id",
    "conversation_count",
    "customer_count",
    "first_seen",
    "last_seen",
    "trend",
    "score",
    "severity",
    "severity_reason",
)


def _story_row(
    run_id: int,
    theme: Theme,
    quotes: list[Quote],
    *,
    count: int,
    customers: int,
    first: datetime | None,
    last: datetime | None,
    trend: dict[str, Any],
    score: float,
    dominant_type: str,
    share: float,
) -> dict[str, Any]:
    """The story of `theme` as a `stories` row: templated text plus the figures every run refreshes."""
    verb = _TITLE_VERBS.get(dominant_type, "Resolve")
    name = theme.name
    when = f" between {first:%d %b %Y} and {last:%d %b %Y}" if first and last else ""
    keywords = ", ".join(theme.keywords[:5])
    severity, severity_reason = _severity(share, trend.get("direction", "steady"))
    return dict(
        theme_id=theme.id,
        status="candidate",
        title=f"{verb}: {name}",
        problem=(
            f"{count} conversations from {customers} customers{when} are about {name}"
            + (f" ({keywords})" if keywords else "")
            + f". Typical report: \u201c{quotes[0].text}\u201d"
        ),
        user_story=f"As a customer affected by {name}, I want it resolved so that I do not need to contact support about it.",
        acceptance_criteria=[
            f"The situation in the {len(quotes)} evidence conversations no longer leads to a support request.",
            f"Support volume about {name} falls below its current {trend.get('direction', 'steady')} level in the following weeks.",
            "Customers who reported it can be told it is resolved.",
        ],
        run_id=run_id,
        conversation_count=count,
        customer_count=customers,
        first_seen=first,
        last_seen=last,
        trend=trend,
        score=score,
        severity=severity,
        severity_reason=severity_reason,
    )


def _upsert_stories(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert or refresh one story per theme (see the module docstring); returns ids in `rows` order."""
    if not rows:
        return []
    statement = insert(Story)
    upsert = statement.on_conflict_do_update(
        index_elements=["theme_id"],
        set_={
            **{k: statement.excluded[k] for k in _REFRESHED_FIELDS},
            # Text follows the data until a person edits it; then it is theirs.
            **{k: case((Story.edited.is_(True), getattr(Story, k)), else_=statement.excluded[k]) for k in _TEXT_FIELDS},
            "updated_at": func.now(),
        },
    ).returning(Story.id, sort_by_parameter_order=True)
    return list(session.execute(upsert, rows).scalars())  # executemany with RETURNING, in parameter order


def write_stories_with_llm(session: Session, run_id: int, runtime: LLMRuntime) -> list[CallUsage]:
    """Rewrite the run's unedited stories from their evidence; every statement cites evidence ids.

    A story keeps its templated text when writing fails or cites nothing valid; returns the
    usages of the calls.
    """
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
    summaries = {
        cid: str(output.get("summary", ""))
        for cid, output in outputs_of(
            session, [e.conversation_id for items in evidence.values() for e in items], FACETS_STAGE
        ).items()
    }
    inputs = []
    for story in stories:
        theme = session.get(Theme, story.theme_id)
        items = tuple(
            Evidence(
                f"E{e.position + 1}",
                str(e.conversation_id),
                str(e.message_id),
                e.quote,
                summaries.get(e.conversation_id, ""),
            )
            for e in evidence[story.id]
        )
        # StoryInput's key field carries the story id here, so results map back to their story.
        name = theme.name if theme else story.title
        description = (theme.description or "") if theme else ""
        inputs.append(StoryInput(str(story.id), name, description, items))

    async def job(client: LLMClient) -> list[StoryResult | BaseException]:
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
        story.title = written.title
        story.problem = _cited(written.problem)
        story.user_story = _cited(written.user_story)
        story.acceptance_criteria = [_cited(c) for c in written.acceptance_criteria]
        story.severity = written.severity
        story.severity_reason = _cited(written.severity_reason)
    return usages


def _cited(statement: CitedStatement) -> str:
    return f"{statement.text} [{', '.join(statement.evidence_ids)}]"


def run(context: StageContext) -> dict[str, Any]:
    """Write the run's stories; with an LLM configured, let it rewrite their text from the evidence."""
    session = context.session
    types = latest_outputs(session, context.run_id, TYPE_ANALYSIS, "type")
    result: dict[str, Any] = asdict(build_stories(session, context.run_id, types=types))
    runtime = llm_runtime(session.get_bind())  # type: ignore[arg-type]
    if runtime is not None and result["stories"]:
        result.update(cost_counters(write_stories_with_llm(session, context.run_id, runtime), runtime.settings.prices))
    return result


STAGE = WholeRunStage(name=NAME, version=f"{VERSION}+{STORIES_PROMPT_VERSION}", position=40, run=run)
