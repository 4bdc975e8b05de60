"""Stage `stories`: one evidence-backed story per theme of the run that is big enough, as a snapshot.

For each theme of the run's snapshot with at least `pipeline.min_story_conversations` members:
counts, distinct customers (conversations without a customer id are "customer unknown",
never counted as customers), companies and plans, first/last seen, a trend series sized to
the run's period and measured back from its end (never `now()`), an explained priority
(`threadline.stories.priority`: rank score and severity from named factors, stored with the
snapshot), and evidence (`threadline.stories.evidence`): whole customer sentences from the
theme's core (members clearly closer to it than to any other theme, the most typical first,
so a theme's majority problem is quoted before a minority one), no small talk, each closer to its own theme's centroid than to any other theme's, from distinct
conversations, new customers first, near-duplicates left out; the sentences of all themes
are embedded in one batch per run. A theme whose evidence is thin or repetitive still gets
its story, which says so. Quotes are exact substrings of customer messages *as they are
now*. The text comes from `threadline.stories.template.story_text` (offline: a title stating
the problem and the known facts) or, with an LLM configured, is written from the same
evidence; LLM text is reused from the story's previous snapshot when what it was written
from is unchanged (same theme, evidence, model, prompt). Severity and rank always come from
the factors, whoever writes the text.

Everything is written once, as the run's snapshot: `run_stories` (with `priority`: the
factors, signals and evidence notes) and `run_story_evidence` (evidence copied as quoted:
quote, offsets, message position and role, the SHA-256 of the message text). Text is
stored verbatim; views mask personal data when they show it (`threadline.read.display`).
The story identity (`stories`, one per theme lineage) only carries human state; it is
created here when the lineage gets its first story.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import math
from collections import Counter, defaultdict
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, any_, cast, delete, func, select, text
from sqlalchemy import insert as sa_insert
from sqlalchemy.dialects.postgresql import ARRAY, insert
from sqlalchemy.orm import Session
from threadpoolctl import threadpool_limits

from threadline.ai.embeddings import MODEL_NAME, Embedder, process_embedder
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
from threadline.config import get_settings
from threadline.db.analyses import latest_outputs, outputs_of
from threadline.db.models import (
    Contact,
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
from threadline.db.vectors import load_newest_vectors, load_stored_vectors, load_theme_centroids
from threadline.engine.budget import spend_guard
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stages.embed import MODEL_PARAM as EMBEDDING_MODEL_PARAM
from threadline.stages.embed import queue as embed_queue
from threadline.stages.embed import run_embedder
from threadline.stages.inputs import input_hash, load_customer_texts
from threadline.stories.evidence import (
    CORE_POOL_CONVERSATIONS,
    EVIDENCE_VERSION,
    Quote,
    Sentence,
    candidate_sentences,
    core_conversations,
    select_evidence,
)
from threadline.stories.priority import PRIORITY_VERSION, RunFacts, ThemeFacts, prioritise, severity_signals
from threadline.stories.template import TEMPLATE_VERSION, StoryFacts, StoryText, story_text
from threadline.stories.trend import trend_series
from threadline.text.pii import mask_span

logger = logging.getLogger(__name__)

NAME = "stories"
# BLAS threads for the stage's matrix products: each is small (a theme's few hundred members or
# sentences against the run's centroids), so waking a thread pool for it costs more than it saves,
# and on a loaded machine OpenBLAS's spinning threads burned ~4 s CPU of a 10k run (no result changes).
EVIDENCE_BLAS_THREADS = 1
# offline story text, evidence and priority; the LLM's prompt version is added when it writes
VERSION = f"{EVIDENCE_VERSION}+{TEMPLATE_VERSION}+{PRIORITY_VERSION}"


@dataclass
class StoriesResult:
    stories: int = 0
    skipped_small: int = 0
    thin_evidence: int = 0  # stories written with fewer than `pipeline.min_evidence_quotes` quotes (they say so)
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
    customer: str | None  # the contact (one per source and external id); None: customer unknown
    company: str | None
    plan: str | None
    value: float | None  # the configured value attribute, when the customer has a number there


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


def _members(session: Session, run_id: int, value_attribute: str | None) -> dict[int, list[_Member]]:
    """Each theme's members of the run with what is known about their customer, in (source, external id) order."""
    by_theme: dict[int, list[_Member]] = defaultdict(list)
    rows = session.execute(
        select(
            ThemeMember.theme_id,
            Conversation.id,
            Conversation.external_id,
            Conversation.created_at,
            Conversation.contact_id,
            Contact.company,
            Contact.plan,
            Contact.attributes,
        )
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .outerjoin(Contact, Contact.id == Conversation.contact_id)
        .where(ThemeMember.run_id == run_id)
        .order_by(Conversation.source_id, Conversation.external_id)
    )
    for theme_id, conversation_id, external_id, created_at, contact_id, company, plan, attributes in rows:
        raw = (attributes or {}).get(value_attribute) if value_attribute else None
        value = (
            float(raw) if isinstance(raw, int | float) and not isinstance(raw, bool) and math.isfinite(raw) else None
        )
        by_theme[theme_id].append(
            _Member(
                conversation_id,
                external_id,
                created_at,
                f"contact {contact_id}" if contact_id is not None else None,
                company or None,
                plan or None,
                value,
            )
        )
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


def _unit_rows(by_theme: dict[int, np.ndarray], order: list[int], dims: int) -> np.ndarray:
    """Centroids in `order` as L2-normalised float32 rows; a theme without vectors gets a zero row."""
    if not order:
        return np.zeros((0, dims), dtype=np.float32)
    matrix = np.stack([np.asarray(by_theme.get(t, np.zeros(dims)), dtype=np.float32) for t in order])
    unit: np.ndarray = matrix / np.maximum(np.linalg.norm(matrix, axis=1, keepdims=True), 1e-12)
    return unit


def _sentence_vectors(
    session: Session, sentences: list[Sentence], customer_texts: dict[int, str], embedder: Embedder, dims: int
) -> np.ndarray:
    """One L2-normalised vector per candidate sentence (same order), embedding each distinct text once.

    A sentence that is its conversation's whole customer text (a one-sentence conversation,
    most of a short-message data set) already has a vector: the one the embed stage stored
    for that exact text with this embedder's model (looked up by its content address), so
    it is read back instead of computed again. Sentences repeated word for word (a form's
    first line) are embedded once.
    """
    if not sentences:
        return np.zeros((0, dims), dtype=np.float32)
    whole = {
        s.conversation_id: input_hash(embedder.model_name, s.text)
        for s in sentences
        if customer_texts.get(s.conversation_id) == s.text
    }
    stored = load_stored_vectors(session, embedder.model_name, whole)
    by_text = {
        s.text: stored[s.conversation_id]
        for s in sentences
        if s.conversation_id in stored and customer_texts[s.conversation_id] == s.text
    }
    missing = list(dict.fromkeys(s.text for s in sentences if s.text not in by_text))
    if missing:
        by_text.update(zip(missing, embedder.embed(missing), strict=True))
    return np.stack([np.asarray(by_text[s.text], dtype=np.float32) for s in sentences])


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
    session: Session,
    run_id: int,
    *,
    types: dict[int, str] | None = None,
    runtime: LLMRuntime | None = None,
    model: str = MODEL_NAME,
    embedder: Embedder | None = None,
) -> tuple[StoriesResult, list[CallUsage]]:
    """Write the run's story snapshot (see the module docstring); returns counters and LLM usages.

    `types` maps conversation id -> conversation type (when the type stage ran): a factor of
    the rank and of the severity. `model` is the embedding model of the conversations (the
    themes' centroids); the evidence sentences are embedded with the same model by `embedder`
    (default: the process's; a run's stage passes its backend's).
    """
    limits = get_settings().pipeline
    insight = get_settings().insight
    types = types or {}
    result = StoriesResult()
    run = session.get(Run, run_id)
    assert run is not None
    session.execute(delete(RunStory).where(RunStory.run_id == run_id))  # a reopened run replaces its snapshot
    total = session.execute(select(func.count()).where(RunConversation.run_id == run_id)).scalar_one()
    members_by_theme = _members(session, run_id, insight.value_attribute)
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
    leaf_order = sorted(members_by_theme)
    row_of = {theme_id: row for row, theme_id in enumerate(leaf_order)}
    centroid_of = load_theme_centroids(session, run_id, model) if big_enough else {}
    dims = next((v.shape[0] for v in centroid_of.values()), 0)
    centroids = _unit_rows(centroid_of, leaf_order, dims)
    # Evidence comes from each theme's core (conversations clearly closer to it than to any other
    # theme, the most typical first), found among the members closest to its centre.
    pool = _evidence_candidates(session, run_id, big_enough, max(limits.evidence_candidates, CORE_POOL_CONVERSATIONS))
    pool_vectors = load_newest_vectors(session, sorted({cid for cids in pool.values() for cid in cids}), model)
    candidates: dict[int, list[int]] = {}
    for theme_id in big_enough:
        pooled = [cid for cid in pool.get(theme_id, []) if cid in pool_vectors]
        candidates[theme_id] = core_conversations(
            pooled,
            np.stack([pool_vectors[cid] for cid in pooled]) if pooled else np.zeros((0, dims)),
            centroids,
            row_of[theme_id],
            limit=limits.evidence_candidates,
        )
    del pool_vectors  # up to one vector per member: not kept while the stories are written
    messages = _customer_messages(session, sorted({cid for cids in candidates.values() for cid in cids}))
    by_message = {m.id: (cid, m) for cid, items in messages.items() for m in items}
    # Every theme's candidate sentences embedded in one batch, judged against every theme's centroid.
    sentences: dict[int, list[Sentence]] = {
        theme_id: [
            s
            for cid in candidates.get(theme_id, [])
            for s in candidate_sentences(
                cid, [(m.id, m.text) for m in messages.get(cid, [])], max_chars=limits.max_quote_chars
            )
        ]
        for theme_id in big_enough
    }
    customer_texts = load_customer_texts(session, run_id=run_id) if big_enough else {}
    ordered = [s for theme_id in big_enough for s in sentences[theme_id]]
    vectors = _sentence_vectors(session, ordered, customer_texts, embedder or process_embedder(), dims)
    dims = dims or (vectors.shape[1] if vectors.ndim == 2 else 0)
    centroids = _unit_rows(centroid_of, leaf_order, dims)
    row_of = {theme_id: row for row, theme_id in enumerate(leaf_order)}
    times_all = [m.created_at for members in members_by_theme.values() for m in members if m.created_at]
    start = run.period_start or min(times_all, default=None)
    end = run.period_end or max(times_all, default=None)
    period = (start, end) if start and end else None
    run_facts = _run_facts(members_by_theme, total, period)
    drafts: list[_Draft] = []
    offset = 0
    for theme_id in big_enough:
        members = members_by_theme[theme_id]
        theme = themes[theme_id]
        name = theme.human_name or theme.name or f"theme {theme_id}"
        keywords = list(theme.keywords or [])
        own = sentences[theme_id]
        selection = select_evidence(
            own,
            vectors[offset : offset + len(own)],
            centroids,
            row_of[theme_id],
            contacts={m.conversation_id: hash(m.customer) if m.customer else None for m in members},
            core=candidates[theme_id],
            limit=limits.evidence_quotes_per_story,
            min_quotes=limits.min_evidence_quotes,
        )
        offset += len(own)
        result.thin_evidence += int(selection.thin)
        if selection.thin:
            logger.info("theme %d: %d evidence quotes, the story says so", theme_id, len(selection.quotes))
        times = [m.created_at for m in members if m.created_at is not None]
        trend: dict[str, Any] = (
            trend_series(times, start, end, max_buckets=limits.trend_max_buckets)
            if start and end and times
            else {"counts": [], "direction": "steady"}
        )
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
                types=[types[m.conversation_id] for m in members if m.conversation_id in types],
                signals=dict(signals),
                trend_direction=str(trend.get("direction", "steady")),
            ),
            run_facts,
        )
        first, last = min(times, default=None), max(times, default=None)
        written = story_text(
            StoryFacts(
                theme_name=name,
                keywords=keywords,
                conversations=len(members),
                customers_known=priority.customers_known,
                customers_unknown_conversations=priority.customers_unknown_conversations,
                first_seen=first,
                last_seen=last,
                trend=trend,
                companies=priority.companies,
                plans=priority.plans,
                quotes=[q.text for q in selection.quotes],
                # titles never carry personal data: candidates are judged masked (on the whole message)
                title_quotes=[mask_span(by_message[q.message_id][1].text, q.start, q.end) for q in selection.quotes],
                evidence_notes=selection.notes,
                named_by_person=bool(theme.human_name),
            )
        )
        drafts.append(
            _Draft(
                theme_id=theme_id,
                theme_name=name,
                description=theme.description or "",
                quotes=selection.quotes,
                members=members,
                row={
                    **_text_fields(written),
                    "severity": priority.severity,
                    "severity_reason": priority.severity_reason,
                    "conversation_count": len(members),
                    "customer_count": priority.customers_known,
                    "first_seen": first,
                    "last_seen": last,
                    "trend": trend,
                    "score": priority.score,
                    "priority": {**priority.to_dict(), "evidence_notes": list(selection.notes)},
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
        usages = _write_with_llm(session, run_id, [d for d in drafts if d.quotes], runtime, result)
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
    external = {m.conversation_id: m.external_id for d in drafts for m in d.members}
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
    if evidence:
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
           rs.acceptance_criteria
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
    Severity stays the one the priority factors gave (explained, unlike the model's guess).
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
    # The run's embedding backend (fixed at creation): its themes' centroids, and its embedder for the evidence.
    model = str(context.params.get(EMBEDDING_MODEL_PARAM) or MODEL_NAME)
    with threadpool_limits(limits=EVIDENCE_BLAS_THREADS, user_api="blas"):
        built, usages = build_stories(
            session, context.run_id, types=types, runtime=runtime, model=model, embedder=run_embedder(context.params)
        )
    result: dict[str, Any] = asdict(built)
    if runtime is not None and usages:
        result.update(cost_counters(usages, runtime.settings.prices))
    return result


# On the run's embedding-backend queue: evidence sentences are embedded with the run's backend.
STAGE = WholeRunStage(name=NAME, version=f"{VERSION}+{STORIES_PROMPT_VERSION}", position=40, run=run, queue=embed_queue)

__all__ = ["STAGE", "StoriesResult", "build_stories", "message_sha256"]
