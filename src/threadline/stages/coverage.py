"""Stage `coverage`: what the documentation answers for each theme of the run, where it falls short, what confuses.

Runs after `themes` and before `stories`, once per run, and writes the run's documentation
snapshot (never updated afterwards):

1. **Passages per theme** (`run_theme_passages`): the current version (content hash) of every
   active article's passages, embedded with the conversation model, against each leaf theme's
   centroid (`threadline.analysis.coverage`): the best `knowledge.coverage_top_passages` at or
   above `knowledge.coverage_threshold`, with the article's title, URL and version copied.
2. **Documentation gaps** (`run_doc_gaps`): themes no passage covers whose conversations are at
   least `knowledge.gap_question_share` how-to questions, ranked by conversations, then
   distinct customers; a few example conversations (closest to the theme's centre first).
3. **Confusing articles** (`run_confusing_articles`), of two kinds ranked together by impact
   (conversations, then customers), with example conversations:
   - `still_stuck` (`threadline.analysis.article_links`): articles linked (URL or quoted title,
     by an agent or the customer) in conversations where a later customer message neither
     thanks nor closes;
   - `volume_not_falling` (`threadline.analysis.coverage.volume_not_falling`): articles with a
     date (published or last updated, from the knowledge source) covering a theme (a passage in
     step 1) whose conversations per day, by each conversation's `created_at`, did not fall in
     the window after that date.

4. **Entities per theme** (`run_themes.entities`): each conversation's entities (platforms,
   plans, error codes, HTTP statuses, integrations, product areas) are extracted offline and
   cached in `analyses` (kind 'entities') under its customer text's hash (with its LLM facet's
   product area, which joins as a `product_area` entity, when it has one), the extractor's
   version and the configuration's fingerprint (plans from `insight.plan_weights`, a gazetteer of
   active articles' titles and headings plus `knowledge.entity_terms`), so a changed knowledge
   base recomputes them; each leaf theme keeps its most shared ones. This step runs with or
   without knowledge.

Knowledge used: the knowledge sources attached to any source of the run's scope, or every
knowledge source when none of the scope's sources has an attachment
(`threadline.connectors.knowledge.attachments`); steps 1-4 read only those. Which ones is
recorded in `run_knowledge_sources` when the stage runs, so a later attach or detach never
changes what the run shows. A database without passages makes this stage one cheap query: a
run without knowledge costs nothing here. Messages are streamed in batches, so memory does not grow with the run.
"""

from __future__ import annotations

import json
import logging
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import delete, exists, insert, select, text
from sqlalchemy.orm import Session

from threadline.ai.embeddings import MODEL_NAME
from threadline.ai.llm.facets import STAGE as FACETS_ANALYSIS
from threadline.analysis.article_links import (
    LINK_ROLES,
    ArticleRef,
    ArticleTally,
    LinkFinder,
    confusing_articles,
    conversation_links,
)
from threadline.analysis.conversation_type import TYPE_ANALYSIS
from threadline.analysis.coverage import (
    ThemeConversation,
    question_share,
    rank_gaps,
    theme_coverage,
    volume_not_falling,
)
from threadline.analysis.theme_entities import (
    ENTITIES_ANALYSIS,
    ENTITIES_VERSION,
    PRODUCT_AREA_TYPE,
    extract_output,
    theme_entity_shares,
)
from threadline.config import get_settings
from threadline.connectors.knowledge.attachments import KnowledgeSet, knowledge_for_sources
from threadline.db.analyses import cached_outputs, latest_outputs, outputs_of, store_analyses
from threadline.db.models import (
    CONFUSING_KINDS,
    Article,
    Conversation,
    Message,
    Passage,
    Run,
    RunConfusingArticle,
    RunConversation,
    RunDocGap,
    RunKnowledgeSource,
    RunThemePassage,
    Scope,
    ThemeMember,
)
from threadline.db.vectors import fetch_vectors, load_theme_centroids
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stages.embed import MODEL_PARAM as EMBEDDING_MODEL_PARAM
from threadline.stages.inputs import input_hash, load_customer_texts
from threadline.text.entities import MAX_GAZETTEER_TERMS, EntityConfig, EntityExtractor, Gazetteer

logger = logging.getLogger(__name__)

NAME = "coverage"
VERSION = f"3+entities-{ENTITIES_VERSION}"  # 3: the run's knowledge only; own-subject coverage
STILL_STUCK, VOLUME_NOT_FALLING = CONFUSING_KINDS  # `run_confusing_articles.kind`
ENTITY_BATCH_CONVERSATIONS = 1_000  # conversations whose texts are held at once while extracting entities
MESSAGE_BATCH_ROWS = 2_000  # messages fetched per round trip while looking for article links: bounded memory

# The passages of the current version of every active article of the run's knowledge, for the conversation model.
_PASSAGE_VECTORS_SQL = """
    SELECT p.id, p.embedding FROM passages p JOIN articles a ON a.id = p.article_id
     WHERE a.status = 'active' AND p.content_hash = a.content_hash AND p.model = %(model)s
       AND a.knowledge_source_id = ANY(%(knowledge)s)
     ORDER BY p.id
"""


@dataclass
class CoverageResult:
    passages: int = 0
    themes: int = 0
    covered_themes: int = 0
    gaps: int = 0
    linked_articles: int = 0
    confusing_articles: int = 0
    volume_not_falling: int = 0
    entities_computed: int = 0
    entities_reused: int = 0
    knowledge_sources: int = 0  # the knowledge sources the run used (attached to its scope, or all)


@dataclass(frozen=True)
class _PassageInfo:
    article_id: int
    content_hash: str
    title: str
    url: str | None
    heading: str | None


def _forget_earlier_attempt(session: Session, run_id: int) -> None:
    """Re-running the stage for this run (a reopened run) replaces its snapshot, never adds to it."""
    for table in (RunThemePassage, RunDocGap, RunConfusingArticle, RunKnowledgeSource):
        session.execute(delete(table).where(table.run_id == run_id))


def _passage_infos(session: Session, ids: list[int]) -> dict[int, _PassageInfo]:
    rows = session.execute(
        select(Passage.id, Passage.article_id, Passage.content_hash, Passage.heading_path, Article.title, Article.url)
        .join(Article, Article.id == Passage.article_id)
        .where(Passage.id.in_(ids))
    )
    return {
        pid: _PassageInfo(article_id, content_hash, title, url, path[-1] if path else None)
        for pid, article_id, content_hash, path, title, url in rows
    }


Member = tuple[int, int | None, datetime | None]  # (conversation id, contact id, the conversation's created_at)


def _members(session: Session, run_id: int) -> dict[int, list[Member]]:
    """Each leaf theme's (conversation id, contact id, created_at), closest to the theme's centre first."""
    rows = session.execute(
        select(ThemeMember.theme_id, ThemeMember.conversation_id, Conversation.contact_id, Conversation.created_at)
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id)
        .order_by(ThemeMember.theme_id, ThemeMember.similarity.desc(), Conversation.source_id, Conversation.external_id)
    )
    members: dict[int, list[Member]] = defaultdict(list)
    for theme_id, conversation_id, contact_id, created_at in rows:
        members[theme_id].append((conversation_id, contact_id, created_at))
    return members


def run_knowledge(session: Session, run_id: int) -> KnowledgeSet:
    """The knowledge of the run's scope: attached to any of its sources, or all when none is attached."""
    scope_id = session.execute(select(Run.scope_id).where(Run.id == run_id)).scalar_one()
    source_ids = session.execute(select(Scope.source_ids).where(Scope.id == scope_id)).scalar_one()
    return knowledge_for_sources(session, source_ids or [])


def _record_knowledge(session: Session, run_id: int, knowledge: KnowledgeSet) -> None:
    """The knowledge sources the run used, into its snapshot (ids and names copied: they outlive the sources)."""
    if knowledge.sources:
        session.execute(
            insert(RunKnowledgeSource),
            [
                {"run_id": run_id, "knowledge_source_id": kid, "name": name, "attached": knowledge.attached}
                for kid, name in sorted(knowledge.sources.items())
            ],
        )


def _write_coverage(
    session: Session, run_id: int, knowledge_ids: list[int], result: CoverageResult, model: str
) -> dict[int, set[int]]:
    """Passages per theme and the ranked documentation gaps, against the run's knowledge only.

    Returns {theme id: ids of the articles covering it}.
    """
    settings = get_settings().knowledge
    passage_vectors = fetch_vectors(session, _PASSAGE_VECTORS_SQL, {"model": model, "knowledge": knowledge_ids})
    result.passages = len(passage_vectors)
    centroids = load_theme_centroids(session, run_id, model)
    result.themes = len(centroids)
    if not passage_vectors or not centroids:
        return {}
    passage_ids = list(passage_vectors)
    members = _members(session, run_id)
    types = latest_outputs(session, run_id, TYPE_ANALYSIS, "type")
    shares = {t: question_share([types.get(cid, "") for cid, _, _ in ms]) for t, ms in members.items()}
    coverage = theme_coverage(
        centroids,
        passage_ids,
        np.stack([passage_vectors[p] for p in passage_ids]),
        shares,
        threshold=settings.coverage_threshold,
        margin=settings.coverage_margin,
        top_k=settings.coverage_top_passages,
        gap_question_share=settings.gap_question_share,
    )
    infos = _passage_infos(session, sorted({m.passage_id for c in coverage.values() for m in c.matches}))
    rows: list[dict[str, Any]] = []
    for theme_id in sorted(coverage):
        for rank, match in enumerate(coverage[theme_id].matches, start=1):
            info = infos[match.passage_id]
            rows.append(
                {
                    "run_id": run_id,
                    "theme_id": theme_id,
                    "rank": rank,
                    "passage_id": match.passage_id,
                    "article_id": info.article_id,
                    "content_hash": info.content_hash,
                    "article_title": info.title,
                    "article_url": info.url,
                    "heading": info.heading,
                    "similarity": match.similarity,
                }
            )
    result.covered_themes = sum(1 for c in coverage.values() if c.covered)
    if rows:
        session.execute(insert(RunThemePassage), rows)
    conversations = {t: len(ms) for t, ms in members.items()}
    customers = {t: len({contact for _, contact, _ in ms if contact is not None}) for t, ms in members.items()}
    gaps = rank_gaps(coverage, conversations, customers)
    result.gaps = len(gaps)
    if gaps:
        session.execute(
            insert(RunDocGap),
            [
                {
                    "run_id": run_id,
                    "theme_id": gap.theme_id,
                    "rank": rank,
                    "conversations": conversations.get(gap.theme_id, 0),
                    "customers": customers.get(gap.theme_id, 0),
                    "question_share": gap.question_share,
                    "best_similarity": gap.best_similarity,
                    "example_conversation_ids": [
                        cid for cid, _, _ in members[gap.theme_id][: settings.coverage_examples]
                    ],
                }
                for rank, gap in enumerate(gaps, start=1)
            ],
        )
    covering: dict[int, set[int]] = defaultdict(set)
    for theme_id, theme in coverage.items():
        covering[theme_id].update(infos[m.passage_id].article_id for m in theme.matches)
    return covering


def _conversation_messages(session: Session, run_id: int) -> Iterator[tuple[int, int | None, list[tuple[str, str]]]]:
    """(conversation id, contact id, [(role, text)]) of the run's conversations, in (source, external id) order.

    Only customer and agent messages: bots' canned pointers are not links, and notes are not read
    by the customer. Streamed in batches of `MESSAGE_BATCH_ROWS`.
    """
    statement = (
        select(Conversation.id, Conversation.contact_id, Message.author_role, Message.text)
        .join(RunConversation, RunConversation.conversation_id == Conversation.id)
        .join(Message, Message.conversation_id == Conversation.id)
        .where(RunConversation.run_id == run_id, Message.author_role.in_(sorted(LINK_ROLES)))
        .order_by(Conversation.source_id, Conversation.external_id, Message.position)
        .execution_options(yield_per=MESSAGE_BATCH_ROWS)
    )
    current: int | None = None
    contact: int | None = None
    messages: list[tuple[str, str]] = []
    for conversation_id, contact_id, role, body in session.execute(statement):
        if conversation_id != current:
            if current is not None:
                yield current, contact, messages
            current, contact, messages = conversation_id, contact_id, []
        messages.append((role, body))
    if current is not None:
        yield current, contact, messages


def _still_stuck(
    session: Session, run_id: int, articles: dict[int, Any], result: CoverageResult
) -> list[dict[str, Any]]:
    """Rows of articles linked in the run's conversations after which customers were still stuck."""
    settings = get_settings().knowledge
    finder = LinkFinder(ArticleRef(a.id, a.title, a.url) for a in articles.values())
    if not finder:
        return []
    tallies: dict[int, ArticleTally] = {}
    for conversation_id, contact_id, messages in _conversation_messages(session, run_id):
        for outcome in conversation_links(messages, finder):
            tally = tallies.setdefault(outcome.article_id, ArticleTally(outcome.article_id))
            tally.linked += 1
            if outcome.stuck:
                tally.stuck.append(conversation_id)
                if contact_id is not None:
                    tally.stuck_customers.add(f"contact {contact_id}")
    result.linked_articles = len(tallies)
    chosen = confusing_articles(
        tallies, min_conversations=settings.confusing_min_conversations, min_share=settings.confusing_min_share
    )
    return [
        {
            "kind": STILL_STUCK,
            "article_id": tally.article_id,
            "linked_conversations": tally.linked,
            "stuck_conversations": len(tally.stuck),
            "customers": len(tally.stuck_customers),
            "example_conversation_ids": tally.stuck[: settings.coverage_examples],
            "_impact": len(tally.stuck),
        }
        for tally in chosen
    ]


def _run_dates(session: Session, run_id: int) -> list[datetime]:
    """`created_at` of the run's conversations that have one, sorted (one column: 8 bytes a conversation)."""
    rows = session.execute(
        select(Conversation.created_at)
        .join(RunConversation, RunConversation.conversation_id == Conversation.id)
        .where(RunConversation.run_id == run_id, Conversation.created_at.is_not(None))
        .order_by(Conversation.created_at)
    ).scalars()
    return [created for created in rows if created is not None]


def _volume_not_falling(
    session: Session, run_id: int, articles: dict[int, Any], covering: dict[int, set[int]]
) -> list[dict[str, Any]]:
    """Rows of dated articles covering a theme whose conversations per day did not fall after the article's date."""
    dates = {a.id: a.source_updated_at for a in articles.values() if a.source_updated_at is not None}
    if not dates or not any(covering.values()):
        return []
    themes = {
        theme_id: [ThemeConversation(cid, created, contact) for cid, contact, created in ms if created is not None]
        for theme_id, ms in _members(session, run_id).items()
        if covering.get(theme_id)
    }
    findings = volume_not_falling(
        themes, covering, dates, _run_dates(session, run_id), examples=get_settings().knowledge.coverage_examples
    )
    return [
        {
            "kind": VOLUME_NOT_FALLING,
            "article_id": f.article_id,
            "customers": f.customers,
            "theme_id": f.theme_id,
            "article_updated_at": f.article_date,
            "window_days": f.window_days,
            "conversations_before": f.before,
            "conversations_after": f.after,
            "share_before": f.before_share,
            "share_after": f.after_share,
            "example_conversation_ids": list(f.examples),
            "_impact": f.after,
        }
        for f in findings
    ]


def _write_confusing(
    session: Session, run_id: int, knowledge_ids: list[int], result: CoverageResult, covering: dict[int, set[int]]
) -> None:
    """Both kinds of confusing articles of the run's knowledge, ranked together: most conversations, then customers, then kind."""
    articles = {
        a.id: a
        for a in session.execute(
            select(Article.id, Article.title, Article.url, Article.content_hash, Article.source_updated_at).where(
                Article.status == "active", Article.knowledge_source_id.in_(knowledge_ids)
            )
        )
    }
    rows = _still_stuck(session, run_id, articles, result) + _volume_not_falling(session, run_id, articles, covering)
    rows.sort(key=lambda r: (-r.pop("_impact"), -r["customers"], r["kind"], r["article_id"]))
    result.confusing_articles = len(rows)
    result.volume_not_falling = sum(1 for r in rows if r["kind"] == VOLUME_NOT_FALLING)
    if rows:
        session.execute(
            insert(RunConfusingArticle),
            [
                {
                    **row,
                    "run_id": run_id,
                    "rank": rank,
                    "content_hash": articles[row["article_id"]].content_hash,
                    "article_title": articles[row["article_id"]].title,
                    "article_url": articles[row["article_id"]].url,
                }
                for rank, row in enumerate(rows, start=1)
            ],
        )


def knowledge_gazetteer(session: Session, knowledge_ids: list[int]) -> Gazetteer:
    """Product areas from the run's knowledge (active articles' titles and their passages' headings) and settings.

    Only the articles of the knowledge sources `knowledge_ids`; headings come from the current
    version of each article; the configured `knowledge.entity_terms` come first, then titles,
    then headings, cut at `MAX_GAZETTEER_TERMS`.
    """
    terms: dict[str, None] = dict.fromkeys(t.strip() for t in get_settings().knowledge.entity_terms if t.strip())
    active = (Article.status == "active", Article.knowledge_source_id.in_(knowledge_ids))
    titles = session.execute(select(Article.title).where(*active).order_by(Article.id)).scalars()
    terms.update(dict.fromkeys(t.strip() for t in titles if t and t.strip()))
    paths = session.execute(
        select(Passage.heading_path)
        .join(Article, Article.id == Passage.article_id)
        .where(*active, Passage.content_hash == Article.content_hash)
        .order_by(Passage.id)
    ).scalars()
    for path in paths:
        terms.update(dict.fromkeys(h.strip() for h in path or [] if h and h.strip()))
    return Gazetteer.from_terms(list(terms)[:MAX_GAZETTEER_TERMS])


def entity_extractor(session: Session, knowledge_ids: list[int]) -> EntityExtractor:
    """The run's extractor: configured plans (`insight.plan_weights` names) and its knowledge's gazetteer."""
    plans = tuple(sorted(get_settings().insight.plan_weights))
    return EntityExtractor(EntityConfig(plans=plans, gazetteer=knowledge_gazetteer(session, knowledge_ids)))


def entities_model_key(extractor: EntityExtractor) -> str:
    """`analyses.model` of entities: the configuration's fingerprint (plans, gazetteer, lists)."""
    return f"entities+{extractor.fingerprint}"


def _entities_input_hash(text: str, product_area: str | None) -> str:
    """Cache key of one conversation's entities: its customer text, and its facet's product area when it has one."""
    if product_area is None:
        return input_hash(ENTITIES_ANALYSIS, text)
    return input_hash(ENTITIES_ANALYSIS, text, f"{PRODUCT_AREA_TYPE}:{product_area}")


def conversation_entities(
    session: Session, conversation_ids: list[int], extractor: EntityExtractor, result: CoverageResult
) -> dict[int, dict[str, Any]]:
    """Stored entities of `conversation_ids`, extracting (and caching) those of texts not seen with this configuration.

    A conversation with an LLM facet (its newest `facets` analysis) also gets the facet's product
    area as an entity. The area is part of the cached input (`_entities_input_hash`), so a
    changed facet recomputes the entities while the same text and area reuse them; without a
    facet the key is the text's alone, as before facets joined.
    """
    model = entities_model_key(extractor)
    outputs: dict[int, dict[str, Any]] = {}
    for start in range(0, len(conversation_ids), ENTITY_BATCH_CONVERSATIONS):
        batch = conversation_ids[start : start + ENTITY_BATCH_CONVERSATIONS]
        texts = load_customer_texts(session, batch)
        areas = {
            cid: str(facet["product_area"]).strip()
            for cid, facet in outputs_of(session, batch, FACETS_ANALYSIS).items()
            if str(facet.get("product_area") or "").strip()
        }
        hashes = {cid: _entities_input_hash(text, areas.get(cid)) for cid, text in texts.items()}
        found = cached_outputs(session, stage=ENTITIES_ANALYSIS, model=model, version=ENTITIES_VERSION, keys=hashes)
        missing = [cid for cid in hashes if cid not in found]
        computed = {cid: extract_output(extractor, texts[cid], areas.get(cid)) for cid in missing}
        store_analyses(
            session,
            [
                {
                    "conversation_id": cid,
                    "stage": ENTITIES_ANALYSIS,
                    "input_hash": hashes[cid],
                    "model": model,
                    "version": ENTITIES_VERSION,
                    "output": output,
                }
                for cid, output in computed.items()
            ],
        )
        result.entities_reused += len(found)
        result.entities_computed += len(computed)
        outputs.update(found)
        outputs.update(computed)
    return outputs


# Every leaf theme's entities in one statement (one UPDATE per theme cost a round trip each).
_SET_THEME_ENTITIES_SQL = text(
    """
    UPDATE run_themes rt SET entities = CAST(v.entities AS jsonb)
      FROM unnest(CAST(:themes AS bigint[]), CAST(:entities AS text[])) AS v(theme_id, entities)
     WHERE rt.run_id = :run_id AND rt.theme_id = v.theme_id
    """
)


def _write_entities(session: Session, run_id: int, knowledge_ids: list[int], result: CoverageResult) -> None:
    """Each conversation's entities (cached) and each leaf theme's most shared ones, into the run's snapshot."""
    conversation_ids = list(
        session.execute(
            select(RunConversation.conversation_id)
            .where(RunConversation.run_id == run_id)
            .order_by(RunConversation.conversation_id)
        ).scalars()
    )
    outputs = conversation_entities(session, conversation_ids, entity_extractor(session, knowledge_ids), result)
    shares = {
        theme_id: theme_entity_shares([cid for cid, _, _ in members], outputs)
        for theme_id, members in _members(session, run_id).items()
    }
    if shares:
        params = {"run_id": run_id, "themes": list(shares), "entities": [json.dumps(v) for v in shares.values()]}
        session.execute(_SET_THEME_ENTITIES_SQL, params)


def compute_coverage(session: Session, run_id: int, model: str = MODEL_NAME) -> CoverageResult:
    """Write the run's documentation snapshot; without any passage, one query and nothing written.

    `model`: the run's embedding backend's model name, the key of both the theme centroids and
    the passages compared (a knowledge sync embeds with the same process backend).
    """
    result = CoverageResult()
    _forget_earlier_attempt(session, run_id)
    knowledge = run_knowledge(session, run_id)
    _record_knowledge(session, run_id, knowledge)
    result.knowledge_sources = len(knowledge.sources)
    _write_entities(session, run_id, knowledge.ids, result)
    used = exists().where(Passage.article_id == Article.id, Article.knowledge_source_id.in_(knowledge.ids))
    if not session.execute(select(used)).scalar():
        return result
    covering = _write_coverage(session, run_id, knowledge.ids, result, model)
    _write_confusing(session, run_id, knowledge.ids, result, covering)
    logger.info(
        "run %s coverage: %s themes, %s covered, %s gaps, %s confusing articles",
        run_id,
        result.themes,
        result.covered_themes,
        result.gaps,
        result.confusing_articles,
    )
    return result


def run(context: StageContext) -> dict[str, Any]:
    """The stage's entry point: the run's documentation snapshot and its counters."""
    # The vectors of the run's embedding backend (fixed at creation); runs from before backends were planned: torch.
    model = str(context.params.get(EMBEDDING_MODEL_PARAM) or MODEL_NAME)
    return asdict(compute_coverage(context.session, context.run_id, model))


STAGE = WholeRunStage(name=NAME, version=VERSION, position=35, run=run)

__all__ = ["STAGE", "CoverageResult", "compute_coverage", "run", "run_knowledge"]
