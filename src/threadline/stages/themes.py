"""Stage `themes`: group a run's conversations into persistent, named, two-level themes.

A later run first lets its conversations join existing themes they fit (cosine to the
theme centroid above the clustering module's threshold); the rest are clustered afresh
and become new themes. Theme ids therefore stay stable across runs, names of existing
themes are kept, and first/last seen only ever widen. Rerunning the stage for the same
run replaces that run's memberships (idempotent), never another run's.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from sqlalchemy import delete, func, select, text, update
from sqlalchemy.dialects.postgresql import distinct_on
from sqlalchemy.orm import Session

from threadline.ai.embeddings import MODEL_NAME
from threadline.ai.llm.client import LLMCallFailed, LLMClient
from threadline.ai.llm.cost import CallUsage, cost_counters
from threadline.ai.llm.facets import STAGE as FACETS_STAGE
from threadline.ai.llm.naming import ThemeMember as NamingMember
from threadline.ai.llm.naming import ThemeNameResult, ThemeNamingInput, name_theme
from threadline.ai.llm.runtime import LLMRuntime
from threadline.config import get_settings
from threadline.db.analyses import outputs_of
from threadline.db.models import Conversation, Message, Theme, ThemeMember
from threadline.db.vectors import load_run_vectors
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stages.embed import MODEL_PARAM as EMBEDDING_MODEL_PARAM
from threadline.stages.inputs import load_customer_texts
from threadline.themes.clustering import CLUSTERING_VERSION, assign_to_existing, cluster_vectors
from threadline.themes.hierarchy import group_themes
from threadline.themes.naming import NAMING_VERSION, name_groups, name_themes

logger = logging.getLogger(__name__)

NAME = "themes"
NEAREST_THEMES = 3  # other themes whose members are sent as contrast when an LLM names a theme
CONTRASTS_PER_NEIGHBOUR = 2  # members sent of each of those themes


@dataclass
class DiscoverResult:
    conversations: int = 0
    assigned: int = 0
    unassigned: int = 0
    joined_existing: int = 0
    new_themes: int = 0
    themes: int = 0
    groups: int = 0


def _normalise(matrix: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)
    return normalised


def discover_themes(session: Session, run_id: int, *, model: str = MODEL_NAME, random_state: int = 0) -> DiscoverResult:
    """Assign the run's embedded conversations to themes and store themes and memberships."""
    result = DiscoverResult()
    vectors_by_id = load_run_vectors(session, run_id, model)
    session.execute(delete(ThemeMember).where(ThemeMember.run_id == run_id))
    if not vectors_by_id:
        return result
    ids = np.array(sorted(vectors_by_id), dtype=np.int64)
    matrix = np.stack([vectors_by_id[int(i)] for i in ids]).astype(np.float32)
    texts = load_customer_texts(session, run_id=run_id)
    result.conversations = len(ids)

    existing = (
        session.execute(
            select(Theme)
            .where(Theme.level == 1, Theme.embedding_model == model, Theme.centroid.is_not(None))
            .order_by(Theme.id)
        )
        .scalars()
        .all()
    )
    theme_of = np.full(len(ids), -1, dtype=np.int64)  # theme row id per conversation, -1 unassigned
    if existing:
        centroids = np.stack([np.asarray(t.centroid, dtype=np.float32) for t in existing])
        joined = assign_to_existing(matrix, centroids)
        existing_ids = np.array([t.id for t in existing], dtype=np.int64)
        theme_of = np.where(joined >= 0, existing_ids[np.maximum(joined, 0)], -1)
        result.joined_existing = int((theme_of >= 0).sum())

    rest = np.flatnonzero(theme_of < 0)
    new_labels = np.full(len(rest), -1, dtype=np.int64)
    if len(rest):
        clustering = cluster_vectors(
            matrix[rest], texts=[texts.get(int(i), "") for i in ids[rest]], random_state=random_state
        )
        new_labels = clustering.labels
    new_themes = {
        label: Theme(level=1, name=f"theme {label}", embedding_model=model, first_run_id=run_id)
        for label in sorted(set(new_labels.tolist()) - {-1})
    }
    session.add_all(new_themes.values())
    session.flush()  # one batched INSERT ... RETURNING for all new themes
    new_theme_ids = {label: theme.id for label, theme in new_themes.items()}
    for position, label in zip(rest, new_labels, strict=True):
        if label >= 0:
            theme_of[position] = new_theme_ids[int(label)]
    result.new_themes = len(new_theme_ids)

    themes_by_id = {t.id: t for t in [*existing, *new_themes.values()]}
    _store_members_and_stats(session, run_id, ids, matrix, theme_of, themes_by_id)
    touched = sorted((themes_by_id[t] for t in set(theme_of.tolist()) - {-1}), key=lambda t: t.id)
    _name_new_themes(session, touched, set(new_theme_ids.values()), ids, matrix, theme_of, texts)
    result.groups = _group(session, touched, texts, ids, theme_of, random_state)
    result.assigned = int((theme_of >= 0).sum())
    result.unassigned = len(ids) - result.assigned
    result.themes = len(touched)
    logger.info(
        "run %d: %d themes (%d new), %d unassigned", run_id, result.themes, result.new_themes, result.unassigned
    )
    return result


# One statement per run, whatever its size: the rows travel as one array per column.
_INSERT_MEMBERS_SQL = text(
    """
    INSERT INTO theme_members (run_id, conversation_id, theme_id, similarity)
    SELECT :run_id, m.conversation_id, m.theme_id, m.similarity
      FROM unnest(CAST(:ids AS bigint[]), CAST(:themes AS bigint[]), CAST(:similarities AS float8[]))
           AS m(conversation_id, theme_id, similarity)
    """
)


def _store_members_and_stats(
    session: Session, run_id: int, ids: np.ndarray, matrix: np.ndarray, theme_of: np.ndarray, themes: dict[int, Theme]
) -> None:
    """Write memberships, then recompute centroid, size and first/last seen of each touched theme.

    `themes` holds every theme a conversation may be assigned to, by id (loaded or just
    created), so no theme is read back one by one.
    """
    members: dict[int, list[int]] = defaultdict(list)
    for position, theme_id in enumerate(theme_of.tolist()):
        if theme_id >= 0:
            members[theme_id].append(position)
    member_ids: list[int] = []
    member_themes: list[int] = []
    member_similarities: list[float] = []
    with session.no_autoflush:
        for theme_id, positions in members.items():
            centroid = _normalise(matrix[positions].mean(axis=0))
            member_ids.extend(ids[positions].tolist())
            member_themes.extend([theme_id] * len(positions))
            member_similarities.extend((matrix[positions] @ centroid).tolist())
            theme = themes[theme_id]
            theme.centroid = centroid
            theme.size = len(positions)
            theme.last_run_id = run_id
    if member_ids:
        params = {"run_id": run_id, "ids": member_ids, "themes": member_themes, "similarities": member_similarities}
        session.execute(_INSERT_MEMBERS_SQL, params)
    seen = session.execute(
        select(ThemeMember.theme_id, func.min(Conversation.created_at), func.max(Conversation.created_at))
        .join(Conversation, Conversation.id == ThemeMember.conversation_id)
        .where(ThemeMember.run_id == run_id)
        .group_by(ThemeMember.theme_id)
    )
    for theme_id, first, last in seen:
        theme = themes[theme_id]
        theme.first_seen = min(filter(None, (theme.first_seen, first)), default=None)
        theme.last_seen = max(filter(None, (theme.last_seen, last)), default=None)
    session.execute(update(Theme).where(Theme.id.in_(list(members))).values(updated_at=func.now()))


def _first_customer_messages(session: Session, conversation_ids: list[int]) -> dict[int, int]:
    """The first customer message id of each conversation (absent when it has none)."""
    rows = session.execute(
        select(Message.conversation_id, Message.id)
        .where(Message.conversation_id.in_(conversation_ids), Message.author_role == "customer")
        .order_by(Message.conversation_id, Message.position)
        .ext(distinct_on(Message.conversation_id))
    )
    return {conversation_id: message_id for conversation_id, message_id in rows}


def _name_new_themes(
    session: Session,
    touched: list[Theme],
    new_ids: set[int],
    ids: np.ndarray,
    matrix: np.ndarray,
    theme_of: np.ndarray,
    texts: dict[int, str],
) -> None:
    """Name new themes (contrasting with every touched theme); existing themes keep their names."""
    positions_by_theme: dict[int, list[int]] = defaultdict(list)
    for position, theme_id in enumerate(theme_of.tolist()):
        if theme_id >= 0:
            positions_by_theme[theme_id].append(position)
    texts_by_theme = {t.id: [texts.get(int(ids[p]), "") for p in positions_by_theme[t.id]] for t in touched}
    names = name_themes(
        texts_by_theme,
        centroids={t.id: np.asarray(t.centroid, dtype=np.float32) for t in touched},
        member_vectors={t.id: matrix[positions_by_theme[t.id]] for t in touched},
    )
    kept_names = {t.name for t in touched if t.id not in new_ids}
    quote_chars = get_settings().pipeline.description_quote_chars
    representatives = {t.id: int(ids[positions_by_theme[t.id][names[t.id].representative_index]]) for t in touched}
    first_messages = _first_customer_messages(session, list(representatives.values()))
    for theme in touched:
        named = names[theme.id]
        theme.keywords = named.keywords
        representative = representatives[theme.id]
        theme.representative_message_id = first_messages.get(representative)
        if theme.id not in new_ids:
            continue
        name = named.name
        suffix = 2
        while name in kept_names:
            name = f"{named.name} ({suffix})"
            suffix += 1
        kept_names.add(name)
        theme.name = name
        example = texts.get(representative, "").replace("\n", " ")[:quote_chars]
        theme.description = (
            f"Customers write about {', '.join(named.keywords[:3]) or name}. For example: \u201c{example}\u201d"
        )


def _group(
    session: Session, touched: list[Theme], texts: dict[int, str], ids: np.ndarray, theme_of: np.ndarray, seed: int
) -> int:
    """Top level of the hierarchy: group touched themes, reusing a group most of whose children it keeps."""
    if not touched:
        return 0
    centroids = np.stack([np.asarray(t.centroid, dtype=np.float32) for t in touched])
    sizes = np.array([t.size for t in touched], dtype=np.int64)
    group_of = group_themes(centroids, sizes, random_state=seed)
    children: dict[int, list[Theme]] = defaultdict(list)
    for theme, group in zip(touched, group_of.tolist(), strict=True):
        children[group].append(theme)
    texts_by_theme: dict[int, list[str]] = defaultdict(list)
    for position, theme_id in enumerate(theme_of.tolist()):
        if theme_id >= 0:
            texts_by_theme[theme_id].append(texts.get(int(ids[position]), ""))
    group_names = name_groups(
        {g: [text for t in members for text in texts_by_theme[t.id]] for g, members in children.items()},
        centroids={g: _normalise(np.mean([np.asarray(t.centroid) for t in m], axis=0)) for g, m in children.items()},
    )
    reused: set[int] = set()
    for group, members in children.items():
        previous = Counter(t.parent_id for t in members if t.parent_id is not None).most_common(1)
        parent = None
        if previous and previous[0][0] not in reused and previous[0][1] * 2 > len(members):
            parent = session.get(Theme, previous[0][0])
        if parent is None:
            parent = Theme(level=0, name=group_names[group].name, keywords=group_names[group].keywords)
            session.add(parent)
            session.flush()
        reused.add(parent.id)
        parent.size = sum(t.size for t in members)
        parent.first_seen = min((t.first_seen for t in members if t.first_seen), default=None)
        parent.last_seen = max((t.last_seen for t in members if t.last_seen), default=None)
        parent.updated_at = func.now()
        for theme in members:
            theme.parent_id = parent.id
    return len(children)


def _naming_members(session: Session, conversation_ids: Sequence[int]) -> dict[int, NamingMember]:
    """Facet digests of the given conversations (those analysed by the facets stage)."""
    return {
        cid: NamingMember(
            conversation_id=str(cid),
            summary=output.get("summary", ""),
            customer_problem=output.get("customer_problem", ""),
            requested_change=output.get("requested_change"),
            product_area=output.get("product_area", ""),
            conversation_type=output.get("conversation_type", "other"),
        )
        for cid, output in outputs_of(session, conversation_ids, FACETS_STAGE).items()
    }


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
    """Replace the extractive names of `theme_ids` with LLM names contrasting their nearest themes.

    A theme keeps its extractive name when naming fails; returns the usages of the calls.
    """
    themes = {t.id: t for t in session.execute(select(Theme).where(Theme.id.in_(list(theme_ids)))).scalars()}
    if not themes:
        return []
    run_themes = list(
        session.execute(
            select(Theme).where(Theme.id.in_(select(ThemeMember.theme_id).where(ThemeMember.run_id == run_id)))
        ).scalars()
    )
    centroids = {t.id: np.asarray(t.centroid, dtype=np.float32) for t in run_themes if t.centroid is not None}
    members = {tid: _top_members(session, run_id, tid, runtime.settings.naming_members) for tid in centroids}
    digests = _naming_members(session, [cid for ids in members.values() for cid in ids])
    inputs = []
    for theme_id in themes:
        if theme_id not in centroids:
            continue
        others = sorted(
            (t for t in centroids if t != theme_id), key=lambda t: -float(centroids[t] @ centroids[theme_id])
        )
        contrast = [
            digests[c]
            for other in others[:NEAREST_THEMES]
            for c in members[other][:CONTRASTS_PER_NEIGHBOUR]
            if c in digests
        ][: runtime.settings.naming_contrasts]
        own = tuple(digests[c] for c in members[theme_id] if c in digests)
        if own:
            inputs.append(ThemeNamingInput(str(theme_id), own, tuple(contrast)))

    async def job(client: LLMClient) -> list[ThemeNameResult | BaseException]:
        return await asyncio.gather(*(name_theme(client, inp) for inp in inputs), return_exceptions=True)

    usages: list[CallUsage] = []
    taken = {t.name for t in run_themes if t.id not in themes}
    for result in runtime.run(job):
        if isinstance(result, BaseException):
            usages.extend(result.usages if isinstance(result, LLMCallFailed) else ())
            logger.warning("theme naming failed (%s); keeping the extractive name", type(result).__name__)
            continue
        usages.extend(result.usages)
        theme = themes[int(result.theme_id)]
        if result.name.name and result.name.name not in taken:
            theme.name = result.name.name
            theme.description = result.name.description
            taken.add(theme.name)
    return usages


def run(context: StageContext) -> dict[str, Any]:
    """Discover the run's themes; with an LLM configured, name the new ones with it."""
    session = context.session
    # The vectors of the run's embedding backend (fixed at creation); runs from before backends were planned: torch.
    model = str(context.params.get(EMBEDDING_MODEL_PARAM) or MODEL_NAME)
    result: dict[str, Any] = asdict(discover_themes(session, context.run_id, model=model))
    runtime = llm_runtime(session.get_bind())  # type: ignore[arg-type]
    if runtime is not None and result["new_themes"]:
        new = list(
            session.execute(select(Theme.id).where(Theme.first_run_id == context.run_id, Theme.level == 1)).scalars()
        )
        usages = name_themes_with_llm(session, context.run_id, new, runtime)
        result.update(cost_counters(usages, runtime.settings.prices))
    return result


STAGE = WholeRunStage(name=NAME, version=f"{CLUSTERING_VERSION}+{NAMING_VERSION}", position=30, run=run)
