"""Stage `stories`: one evidence-backed story per theme of the run that is big enough, as a snapshot.

For each theme of the run's snapshot with at least `pipeline.min_story_conversations` members:
counts, distinct customers, first/last seen, a trend series sized to the run's period and
measured back from its end (never `now()`), severity, a rank, and at least
`pipeline.min_evidence_quotes` quotes that are exact substrings of customer messages *as they are
now*. The text comes from `threadline.stories.template.story_text` (offline) or, with an LLM
configured, is written from the same evidence; LLM text is reused from the story's previous
snapshot when what it was written from is unchanged (same theme, evidence, model, prompt).

Everything is written once, as the run's snapshot: `run_stories` and `run_story_evidence`
(evidence copied as quoted: quote, offsets, message position and role, the SHA-256 of the
message text). The story identity (`stories`, one per theme lineage) only carries human
state; it is created here when the lineage gets its first story.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import BigInteger, any_, cast, delete, func, select, text
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from threadline.ai.llm.client import LLMClient
from threadline.ai.llm.cost import BudgetExceeded, CallUsage, cost_counters
from threadline.ai.llm.facets import STAGE as FACETS_STAGE
from threadline.ai.llm.prompts import STORIES_PROMPT_VERSION
from threadline.ai.llm.runtime import LLMRuntime
from threadline.ai.llm.stories import (
    CitedStatement,
    Evidence,
    StoryInput,
    StoryResult,
    story_input_hash,
    write_story,
)
from threadline.analysis.conversation_type import TYPE_ANALYSIS
from threadline.config import PipelineSettings, get_settings
from threadline.db.analyses import latest_outputs, outputs_of
from threadline.db.models import (
    Conversation,
    Message,
    Run,
    RunConversation,
    RunStory,
    RunStoryEvidence,
    RunTheme,
    Story,
    Theme,
    ThemeMember,
)
from threadline.engine.budget import spend_guard
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stories.evidence import Quote, best_quote
from threadline.stories.template import TEMPLATE_VERSION, StoryFacts, StoryText, story_text
from threadline.stories.trend import trend_series

logger = logging.getLogger(__name__)

NAME = "stories"
VERSION = TEMPLATE_VERSION  # offline story text; the LLM's prompt version is added when it writes
FIRST_MESSAGE_BONUS = 1.0  # score points: one keyword's worth of preference for the opening message
SEVERITY_HIGH_SHARE = 0.10  # share of the run's conversations: a tenth of all support volume is high severity


@dataclass
class StoriesResult:
    stories: int = 0
    skipped_small: int = 0
    skipped_no_evidence: int = 0
    llm_reused: int = 0
    llm_budget_refused: int = 0  # stories whose text the LLM budget could not pay for: templated text kept


def message_sha256(body: str) -> str:
    """SHA-256 (hex) of a message's text: how a snapshot notices that the quoted message changed since."""
    return hashlib.sha256(body.encode("utf-8")).hexdigest()


@dataclass
class _Member:
    conversation_id: int
    external_id: str
    created_at: datetime | None
    contact_id: int | None


@dataclass
class _Message:
    id: int
    position: int
    external_id: str | None
    text: str


def _evidence_candidates(session: Session, run_id: int, theme_ids: list[int], limit: int) -> dict[int, list[int]]:
    """Per theme, up to `limit` conversation ids, closest to the theme centre first.

    Ties are broken by (source, external id), never by serial ids.
    """
    if not theme_ids:
        return {}
    closeness = (
        func.row_number()
        .over(
            partition_by=ThemeMember.theme_id,
            order_by=(ThemeMember.similarity.desc(), Conversation.source_id, Conversation.external_id),
        )
        .label("closeness")
    )
    ranked = (
        select(ThemeMember.theme_id, ThemeMember.conversation_id, closeness)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id, ThemeMember.theme_id.in_(theme_ids))
        .subquery()
    )
    rows = session.execute(
        select(ranked.c.theme_id, ranked.c.conversation_id)
        .where(ranked.c.closeness <= limit)
        .order_by(ranked.c.theme_id, ranked.c.closeness)
    )
    candidates: dict[int, list[int]] = defaultdict(list)
    for theme_id, conversation_id in rows:
        candidates[theme_id].append(conversation_id)
    return candidates


def _customer_messages(session: Session, conversation_ids: list[int]) -> dict[int, list[_Message]]:
    """Customer messages of each conversation as they are now, in conversation order."""
    messages: dict[int, list[_Message]] = defaultdict(list)
    if not conversation_ids:
        return messages
    rows = session.execute(
        select(Message.id, Message.conversation_id, Message.position, Message.external_id, Message.text)
        .where(
            Message.conversation_id == any_(cast(conversation_ids, ARRAY(BigInteger))),
            Message.author_role == "customer",
        )
        .order_by(Message.conversation_id, Message.position)
    )
    for message_id, conversation_id, position, external_id, body in rows:
        messages[conversation_id].append(_Message(message_id, position, external_id, body))
    return messages


def select_evidence(
    keywords: list[str],
    candidates: list[tuple[int, int | None]],
    messages: dict[int, list[tuple[int, str]]],
    limits: PipelineSettings,
) -> list[Quote]:
    """Up to `limits.evidence_quotes_per_story` quotes from distinct conversations, distinct customers first.

    `candidates` are the theme's (conversation, contact) pairs, closest first; `messages`
    the customer messages (id, text) of each conversation in order. Pure: the quotes are
    exact substrings of the given texts (`threadline.stories.evidence.best_quote`).
    """
    contact_of = dict(candidates)
    best_by_conversation: dict[int, Quote] = {}
    for conversation_id, _ in candidates:
        for index, (message_id, body) in enumerate(messages.get(conversation_id, [])):
            quote = best_quote(message_id, conversation_id, body, keywords, max_chars=limits.max_quote_chars)
            if quote is not None and index == 0:
                # The opening customer message states the problem; follow-ups add details.
                quote = dataclasses.replace(quote, score=quote.score + FIRST_MESSAGE_BONUS)
            current = best_by_conversation.get(conversation_id)
            if quote and (current is None or quote.score > current.score):
                best_by_conversation[conversation_id] = quote
    order = [cid for cid, _ in candidates if cid in best_by_conversation]
    chosen: list[Quote] = []
    seen_contacts: set[int] = set()
    for prefer_new_customer in (True, False):
        for cid in order:
            if len(chosen) >= limits.evidence_quotes_per_story:
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


def _recent_share(times: list[datetime], start: datetime, end: datetime) -> float:
    """Share of the theme's conversations in the last quarter of the run's period (measured back from its end)."""
    if not times:
        return 0.0
    cutoff = end - (end - start) / 4 if end > start else end - timedelta(days=1)
    return sum(1 for t in times if t >= cutoff) / len(times)


def _severity(share: float, direction: str) -> tuple[str, str]:
    if share >= SEVERITY_HIGH_SHARE:
        return "high", f"{share:.0%} of the run's conversations"
    if direction in ("rising", "new"):
        return "medium", f"{share:.0%} of the run's conversations and {direction}"
    return "low", f"{share:.0%} of the run's conversations, {direction}"


@dataclass
class _Draft:
    """One story of this run before it is written: figures, evidence and text."""

    theme_id: int
    theme_name: str
    description: str
    quotes: list[Quote]
    members: list[_Member]
    row: dict[str, Any]
    story_id: int = 0


def _ensure_identities(session: Session, theme_ids: list[int]) -> dict[int, int]:
    """The story identity of each lineage, created when new (two statements for any number)."""
    if not theme_ids:
        return {}
    session.execute(
        insert(Story).values([{"theme_id": t, "status": "candidate"} for t in theme_ids]).on_conflict_do_nothing()
    )
    return dict(session.execute(select(Story.theme_id, Story.id).where(Story.theme_id.in_(theme_ids))).all())


def build_stories(
    session: Session, run_id: int, *, types: dict[int, str] | None = None, runtime: LLMRuntime | None = None
) -> tuple[StoriesResult, list[CallUsage]]:
    """Write the run's story snapshot (see the module docstring); returns counters and LLM usages.

    `types` maps conversation id -> conversation type (when the type stage ran); the
    dominant type chooses the story's verb ("Fix ...", "Add ...").
    """
    limits = get_settings().pipeline
    result = StoriesResult()
    run = session.get(Run, run_id)
    assert run is not None
    session.execute(delete(RunStory).where(RunStory.run_id == run_id))  # a reopened run replaces its snapshot
    total = session.execute(select(func.count()).where(RunConversation.run_id == run_id)).scalar_one()
    members_by_theme: dict[int, list[_Member]] = defaultdict(list)
    for theme_id, conversation_id, external_id, created_at, contact_id in session.execute(
        select(
            ThemeMember.theme_id,
            Conversation.id,
            Conversation.external_id,
            Conversation.created_at,
            Conversation.contact_id,
        )
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id)
        .order_by(Conversation.source_id, Conversation.external_id)
    ):
        members_by_theme[theme_id].append(_Member(conversation_id, external_id, created_at, contact_id))
    big_enough = sorted(t for t, members in members_by_theme.items() if len(members) >= limits.min_story_conversations)
    result.skipped_small = len(members_by_theme) - len(big_enough)
    themes = {
        row.theme_id: row
        for row in session.execute(
            select(RunTheme.theme_id, RunTheme.name, RunTheme.description, RunTheme.keywords, Theme.human_name)
            .join(Theme, Theme.id == RunTheme.theme_id)
            .where(RunTheme.run_id == run_id, RunTheme.theme_id.in_(big_enough))
        )
    }
    candidates = _evidence_candidates(session, run_id, big_enough, limits.evidence_candidates)
    messages = _customer_messages(session, sorted({cid for cids in candidates.values() for cid in cids}))
    by_message = {m.id: (cid, m) for cid, items in messages.items() for m in items}
    external = {m.conversation_id: m.external_id for members in members_by_theme.values() for m in members}
    times_all = [m.created_at for members in members_by_theme.values() for m in members if m.created_at]
    start = run.period_start or min(times_all, default=None)
    end = run.period_end or max(times_all, default=None)
    drafts: list[_Draft] = []
    for theme_id in big_enough:
        members = members_by_theme[theme_id]
        theme = themes[theme_id]
        name = theme.human_name or theme.name or f"theme {theme_id}"
        keywords = list(theme.keywords or [])
        contact_of = {m.conversation_id: m.contact_id for m in members}
        quotes = select_evidence(
            keywords,
            [(cid, contact_of.get(cid)) for cid in candidates.get(theme_id, [])],
            {cid: [(m.id, m.text) for m in messages.get(cid, [])] for cid in candidates.get(theme_id, [])},
            limits,
        )
        if len(quotes) < limits.min_evidence_quotes:
            result.skipped_no_evidence += 1
            logger.info("theme %d: only %d evidence quotes, no story", theme_id, len(quotes))
            continue
        times = [m.created_at for m in members if m.created_at is not None]
        customers = len({m.contact_id if m.contact_id is not None else f"c{m.conversation_id}" for m in members})
        trend: dict[str, Any] = (
            trend_series(times, start, end, max_buckets=limits.trend_max_buckets)
            if start and end and times
            else {"counts": [], "direction": "steady"}
        )
        recent = _recent_share(times, start, end) if start and end else 0.0
        dominant = Counter((types or {}).get(m.conversation_id, "other") for m in members).most_common(1)[0][0]
        share = len(members) / max(total, 1)
        severity, severity_reason = _severity(share, trend.get("direction", "steady"))
        first, last = min(times, default=None), max(times, default=None)
        written = story_text(
            StoryFacts(
                theme_name=name,
                keywords=keywords,
                conversations=len(members),
                customers=customers,
                first_seen=first,
                last_seen=last,
                direction=trend.get("direction", "steady"),
                dominant_type=dominant,
                quotes=[q.text for q in quotes],
            )
        )
        drafts.append(
            _Draft(
                theme_id=theme_id,
                theme_name=name,
                description=theme.description or "",
                quotes=quotes,
                members=members,
                row={
                    **_text_fields(written),
                    "severity": severity,
                    "severity_reason": severity_reason,
                    "conversation_count": len(members),
                    "customer_count": customers,
                    "first_seen": first,
                    "last_seen": last,
                    "trend": trend,
                    "score": len(members) * (0.5 + recent),
                    "text_origin": "templated",
                    "text_key": None,
                },
            )
        )
    identities = _ensure_identities(session, [d.theme_id for d in drafts])
    for draft in drafts:
        draft.story_id = identities[draft.theme_id]
    usages: list[CallUsage] = []
    if runtime is not None and drafts:
        usages = _write_with_llm(session, run_id, drafts, runtime, result)
    # Rank: score, then size, then the lineage id (stable across the runs of a scope).
    drafts.sort(key=lambda d: (-d.row["score"], -d.row["conversation_count"], d.theme_id))
    rows = [
        {"run_id": run_id, "story_id": d.story_id, "theme_id": d.theme_id, "rank": rank, **d.row}
        for rank, d in enumerate(drafts, start=1)
    ]
    if not rows:
        return result, usages
    ids = session.execute(sa_insert(RunStory).returning(RunStory.id, sort_by_parameter_order=True), rows).scalars()
    evidence = []
    for run_story_id, draft in zip(ids, drafts, strict=True):
        for position, quote in enumerate(draft.quotes):
            conversation_id, message = by_message[quote.message_id]
            evidence.append(
                {
                    "run_story_id": run_story_id,
                    "position": position,
                    "conversation_id": conversation_id,
                    "conversation_external_id": external[conversation_id],
                    "message_id": message.id,
                    "message_position": message.position,
                    "message_external_id": message.external_id,
                    "author_role": "customer",
                    "message_sha256": message_sha256(message.text),
                    "quote": quote.text,
                    "start_offset": quote.start,
                    "end_offset": quote.end,
                }
            )
    session.execute(sa_insert(RunStoryEvidence), evidence)  # executemany: one cached statement
    result.stories = len(rows)
    return result, usages


def _text_fields(written: StoryText) -> dict[str, Any]:
    return {
        "title": written.title,
        "problem": written.problem,
        "user_story": written.user_story,
        "acceptance_criteria": list(written.acceptance_criteria),
    }


_PREVIOUS_LLM_TEXT_SQL = text(
    """
    SELECT DISTINCT ON (rs.story_id) rs.story_id, rs.text_key, rs.title, rs.problem, rs.user_story,
           rs.acceptance_criteria, rs.severity, rs.severity_reason
      FROM run_stories rs
     WHERE rs.story_id = ANY(CAST(:ids AS bigint[])) AND rs.run_id < :run_id AND rs.text_origin = 'llm'
     ORDER BY rs.story_id, rs.run_id DESC
    """
)


def _write_with_llm(
    session: Session, run_id: int, drafts: list[_Draft], runtime: LLMRuntime, result: StoriesResult
) -> list[CallUsage]:
    """Let the LLM write each story from its evidence; every statement cites evidence ids.

    Text whose inputs (theme, evidence, model, prompt) are unchanged since the story's last
    LLM-written snapshot is reused instead of asked for again. A story keeps its templated
    text when writing fails or cites nothing valid; returns the usages of the calls made.
    """
    summaries = {
        cid: str(output.get("summary", ""))
        for cid, output in outputs_of(
            session, [q.conversation_id for d in drafts for q in d.quotes], FACETS_STAGE
        ).items()
    }
    model = runtime.settings.models.stories
    inputs: dict[int, StoryInput] = {}
    for index, draft in enumerate(drafts):
        items = tuple(
            Evidence(
                f"E{position + 1}",
                str(q.conversation_id),
                str(q.message_id),
                q.text,
                summaries.get(q.conversation_id, ""),
            )
            for position, q in enumerate(draft.quotes)
        )
        inputs[index] = StoryInput(str(index), draft.theme_name, draft.description, items)
    keys = {index: story_input_hash(inp, model) for index, inp in inputs.items()}
    previous = {
        row.story_id: row
        for row in session.execute(_PREVIOUS_LLM_TEXT_SQL, {"ids": [d.story_id for d in drafts], "run_id": run_id})
    }
    to_write: list[StoryInput] = []
    for index, draft in enumerate(drafts):
        earlier = previous.get(draft.story_id)
        if earlier is not None and earlier.text_key == keys[index]:
            draft.row.update(
                title=earlier.title,
                problem=earlier.problem,
                user_story=earlier.user_story,
                acceptance_criteria=list(earlier.acceptance_criteria or []),
                severity=earlier.severity,
                severity_reason=earlier.severity_reason,
                text_origin="llm",
                text_key=keys[index],
            )
            result.llm_reused += 1
        else:
            to_write.append(inputs[index])
    if not to_write:
        return []

    async def job(client: LLMClient) -> list[StoryResult | BaseException]:
        return await asyncio.gather(*(write_story(client, inp) for inp in to_write), return_exceptions=True)

    usages: list[CallUsage] = []
    guard = spend_guard(session.get_bind(), run_id, runtime.settings.run_budget)  # type: ignore[arg-type]
    for outcome in runtime.run(job, spend_guard=guard):  # a refused reservation keeps the templated story
        if isinstance(outcome, BudgetExceeded):
            result.llm_budget_refused += 1
            continue
        if isinstance(outcome, BaseException):
            usages.extend(getattr(outcome, "usages", ()))
            logger.warning("story writing failed (%s); keeping the templated story", type(outcome).__name__)
            continue
        usages.extend(outcome.usages)
        index = int(outcome.theme_id)
        written = outcome.story
        drafts[index].row.update(
            title=written.title,
            problem=_cited(written.problem),
            user_story=_cited(written.user_story),
            acceptance_criteria=[_cited(c) for c in written.acceptance_criteria],
            severity=written.severity,
            severity_reason=_cited(written.severity_reason),
            text_origin="llm",
            text_key=keys[index],
        )
    return usages


def _cited(statement: CitedStatement) -> str:
    return f"{statement.text} [{', '.join(statement.evidence_ids)}]"


def run(context: StageContext) -> dict[str, Any]:
    """Write the run's stories; with an LLM configured, let it write their text from the evidence."""
    session = context.session
    types = latest_outputs(session, context.run_id, TYPE_ANALYSIS, "type")
    runtime = llm_runtime(session.get_bind())  # type: ignore[arg-type]
    built, usages = build_stories(session, context.run_id, types=types, runtime=runtime)
    result: dict[str, Any] = asdict(built)
    if runtime is not None and usages:
        result.update(cost_counters(usages, runtime.settings.prices))
    return result


STAGE = WholeRunStage(name=NAME, version=f"{VERSION}+{STORIES_PROMPT_VERSION}", position=40, run=run)

__all__ = ["STAGE", "StoriesResult", "build_stories", "message_sha256", "select_evidence", "trend_series"]
