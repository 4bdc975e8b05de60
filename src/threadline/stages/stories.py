"""Stage `stories`: one evidence-backed story per theme of the run that is big enough.

Offline stories are templated from the theme (name, key phrases, counts, trend) and its
verbatim evidence; an LLM, when configured, rewrites the text later from the same evidence.
Upsert semantics (by theme): counts, trend, rank and evidence are refreshed by every run;
title and text are refreshed only while nobody has edited them; status is never touched.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, any_, case, cast, delete, func, select, text
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session

from threadline.ai.embeddings import process_embedder
from threadline.ai.llm.client import LLMClient
from threadline.ai.llm.cost import CallUsage, cost_counters
from threadline.ai.llm.facets import STAGE as FACETS_STAGE
from threadline.ai.llm.prompts import STORIES_PROMPT_VERSION
from threadline.ai.llm.runtime import LLMRuntime
from threadline.ai.llm.stories import CitedStatement, Evidence, StoryInput, StoryResult, write_story
from threadline.analysis.conversation_type import TYPE_ANALYSIS
from threadline.config import MIN_STORY_CONVERSATIONS, get_settings
from threadline.db.analyses import latest_outputs, outputs_of
from threadline.db.models import (
    Contact,
    Conversation,
    Message,
    Run,
    RunConversation,
    Story,
    StoryEvidence,
    Theme,
    ThemeMember,
)
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stages.inputs import load_customer_texts
from threadline.stories.evidence import (
    EVIDENCE_VERSION,
    EvidenceSelection,
    Quote,
    candidate_sentences,
    select_evidence,
)
from threadline.stories.priority import PRIORITY_VERSION, Priority, RunFacts, ThemeFacts, prioritise, severity_signals
from threadline.stories.text import TEXT_VERSION, problem_text
from threadline.stories.titles import TITLES_VERSION, story_title
from threadline.text.pii import mask_span

logger = logging.getLogger(__name__)

NAME = "stories"
# offline story text; the LLM's prompt version is added when it writes
VERSION = f"{EVIDENCE_VERSION}+{TITLES_VERSION}+{TEXT_VERSION}+{PRIORITY_VERSION}"
EVIDENCE_CANDIDATES = 40  # conversations closest to the theme centre searched for quotes: enough variety, bounded work
TREND_MAX_BUCKETS = 26  # points in a trend series: a half-year of weeks, readable as a sparkline
TREND_RATIO_RISING = 1.5  # later-half rate / earlier-half rate above this reads as rising
TREND_RATIO_FALLING = 1 / 1.5  # ... below this as falling


@dataclass
class StoriesResult:
    stories: int = 0
    skipped_small: int = 0
    thin_evidence: int = 0  # stories written with fewer than MIN_EVIDENCE_QUOTES quotes (they say so)


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


@dataclass
class _Member:
    conversation_id: int
    created_at: datetime | None
    customer: str | None  # the contact's external id: distinct customers, never conversations counted as customers
    company: str | None
    plan: str | None
    value: float | None  # the configured value attribute, when the customer has a number there


def _members(session: Session, run_id: int, value_attribute: str | None) -> dict[int, list[_Member]]:
    """Each theme's members of the run with what is known about their customer."""
    rows = session.execute(
        select(
            ThemeMember.theme_id,
            Conversation.id,
            Conversation.created_at,
            Contact.external_id,
            Contact.company,
            Contact.plan,
            Contact.attributes,
        )
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
        .where(ThemeMember.run_id == run_id)
        .order_by(ThemeMember.theme_id, Conversation.id)
    ).all()
    by_theme: dict[int, list[_Member]] = defaultdict(list)
    for theme_id, conversation_id, created_at, customer, company, plan, attributes in rows:
        raw = (attributes or {}).get(value_attribute) if value_attribute else None
        value = (
            float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) else None
        )
        by_theme[theme_id].append(_Member(conversation_id, created_at, customer, company or None, plan or None, value))
    return by_theme


def _run_facts(by_theme: dict[int, list[_Member]], total: int, period: tuple[datetime, datetime] | None) -> RunFacts:
    """The run-wide context of priority: configured value weights and their run means."""
    insight = get_settings().insight
    members = [m for ms in by_theme.values() for m in ms]
    weights = [insight.plan_weights[m.plan] for m in members if m.plan in insight.plan_weights]
    values = {m.customer: m.value for m in members if m.customer is not None and m.value is not None}
    return RunFacts(
        conversations=total,
        period=period,
        plan_weights=insight.plan_weights,
        mean_plan_weight=sum(weights) / len(weights) if weights else None,
        value_attribute=insight.value_attribute,
        mean_value=sum(values.values()) / len(values) if values else None,
    )


def build_stories(session: Session, run_id: int, *, types: dict[int, str] | None = None) -> StoriesResult:
    """Write a story for every theme of the run with at least MIN_STORY_CONVERSATIONS conversations.

    Evidence, title, text and priority come from the pure modules in `threadline.stories`;
    `types` maps conversation id -> conversation type (when the type stage ran). A theme
    whose evidence is thin or repetitive still gets its story, which says so.
    """
    result = StoriesResult()
    run = session.get(Run, run_id)
    assert run is not None
    period = _period(session, run)
    total = session.execute(select(func.count()).where(RunConversation.run_id == run_id)).scalar_one()
    settings = get_settings().insight
    by_theme = _members(session, run_id, settings.value_attribute)
    big_enough = sorted(theme_id for theme_id, members in by_theme.items() if len(members) >= MIN_STORY_CONVERSATIONS)
    result.skipped_small = len(by_theme) - len(big_enough)
    run_themes = {t.id: t for t in session.execute(select(Theme).where(Theme.id.in_(list(by_theme)))).scalars()}
    theme_rows = {theme_id: row for row, theme_id in enumerate(sorted(run_themes))}
    centroids = _unit_rows([run_themes[t].centroid for t in sorted(run_themes)])
    candidates = _evidence_candidates(session, run_id, big_enough)
    messages = _customer_messages(session, sorted({cid for pairs in candidates.values() for cid, _ in pairs}))
    sentences = {
        theme_id: [
            s for cid, _ in candidates.get(theme_id, []) for s in candidate_sentences(cid, messages.get(cid, []))
        ]
        for theme_id in big_enough
    }
    texts = [s.text for theme_id in big_enough for s in sentences[theme_id]]
    vectors = process_embedder().embed(texts) if texts else np.zeros((0, centroids.shape[1]), dtype=np.float32)
    customer_texts = load_customer_texts(session, run_id=run_id)
    run_facts = _run_facts(by_theme, total, period)
    message_text = {mid: body for pairs in messages.values() for mid, body in pairs}
    story_rows: list[dict[str, Any]] = []
    story_quotes: list[list[Quote]] = []
    offset = 0
    for theme_id in big_enough:
        members = by_theme[theme_id]
        theme = run_themes[theme_id]
        own = sentences[theme_id]
        selection = select_evidence(
            own,
            vectors[offset : offset + len(own)],
            centroids,
            theme_rows[theme_id],
            contacts={m.conversation_id: _contact_key(m) for m in members},
        )
        offset += len(own)
        result.thin_evidence += int(selection.thin)
        times = [m.created_at for m in members if m.created_at is not None]
        trend = trend_series(times, *period) if period and times else {"counts": [], "direction": "steady"}
        signals: Counter[str] = Counter()
        for m in members:
            signals.update(severity_signals(customer_texts.get(m.conversation_id, "")))
        priority = prioritise(
            ThemeFacts(
                conversations=len(members),
                customer_ids=[m.customer for m in members],
                companies=[m.company for m in members],
                plans=[m.plan for m in members],
                values={m.customer: m.value for m in members if m.customer is not None and m.value is not None},
                times=times,
                types=[(types or {})[m.conversation_id] for m in members if m.conversation_id in (types or {})],
                signals=dict(signals),
                trend_direction=str(trend.get("direction", "steady")),
            ),
            run_facts,
        )
        shown = [mask_span(message_text[q.message_id], q.start, q.end) for q in selection.quotes]
        story_rows.append(
            _story_row(
                run_id,
                theme,
                selection,
                priority,
                title=story_title(shown, theme.name),
                count=len(members),
                first=min(times, default=None),
                last=max(times, default=None),
                trend=trend,
            )
        )
        story_quotes.append(selection.quotes)
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


def _contact_key(member: _Member) -> int | None:
    """A hashable customer key for "new customers first" (None when unknown)."""
    return hash(member.customer) if member.customer is not None else None


def _unit_rows(vectors: list[Any]) -> np.ndarray:
    """Stack centroids (pgvector values) into L2-normalised float32 rows; missing ones become zero rows."""
    rows = [np.asarray(v, dtype=np.float32) if v is not None else None for v in vectors]
    dims = next((r.shape[0] for r in rows if r is not None), 0)
    matrix = (
        np.stack([r if r is not None else np.zeros(dims, dtype=np.float32) for r in rows])
        if rows
        else np.zeros((0, dims))
    )
    unit: np.ndarray = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return unit


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
    "priority",
)


def _story_row(
    run_id: int,
    theme: Theme,
    selection: EvidenceSelection,
    priority: Priority,
    *,
    title: str,
    count: int,
    first: datetime | None,
    last: datetime | None,
    trend: dict[str, Any],
) -> dict[str, Any]:
    """The story of `theme` as a `stories` row: offline text plus the figures every run refreshes.

    Offline there is no user story and no acceptance criteria: only what is known (the LLM
    path writes those from the evidence).
    """
    problem = problem_text(
        name=theme.name,
        keywords=theme.keywords or [],
        typical_quote=selection.quotes[0].text if selection.quotes else None,
        conversations=count,
        customers_known=priority.customers_known,
        customers_unknown_conversations=priority.customers_unknown_conversations,
        companies=priority.companies,
        plans=priority.plans,
        first_seen=first,
        last_seen=last,
        trend=trend,
        evidence_notes=selection.notes,
    )
    return dict(
        theme_id=theme.id,
        status="candidate",
        title=title,
        problem=problem,
        user_story=None,
        acceptance_criteria=[],
        run_id=run_id,
        conversation_count=count,
        customer_count=priority.customers_known,
        first_seen=first,
        last_seen=last,
        trend=trend,
        score=priority.score,
        severity=priority.severity,
        severity_reason=priority.severity_reason,
        priority={**priority.to_dict(), "evidence_notes": selection.notes},
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
