"""Stage `themes`: group a run's conversations into named, two-level themes, continuing its scope's lineages.

Everything here stays inside the run's scope (the set of sources it reads): runs of other
scopes are never looked at. For run N:

1. **Carry.** A conversation that an earlier run of the scope already placed, and whose text
   has not changed since (no newer embedding), keeps its place: its lineage (followed
   through merges), or "unassigned" when that run left it out.
2. **Join.** New and changed conversations join the lineage whose members they resemble:
   the lineages of the previous run and those carried, each represented by the mean vector
   of its members (cosine at least `ASSIGN_MIN_SIMILARITY`). A lineage with no carried
   member needs at least `MIN_THEME_SIZE` joiners, like any new theme.
3. **Discover.** The rest (not joined, plus earlier outliers) is clustered afresh; a cluster
   becomes a theme only when it holds at least one new or changed conversation, so an
   unchanged rerun never turns yesterday's outliers into today's themes.
4. **Identity by members** (`threadline.themes.lineage`): each cluster continues the earlier
   lineage it shares most members with (Jaccard >= 0.5 on common ground), splits keep the
   identity on the larger part, merges end the smaller lineage as "merged into", and
   themes a person marked "keep separate" are never merged.
5. **Names.** A continued theme keeps the name it had (a person's name always wins, when
   shown); a new one is named (`threadline.themes.naming`: phrases and subject lines of its
   members, chosen by embedding contrast with the nearest themes) from what sets it apart
   from its neighbours, never taking an existing theme's name. Key phrases, sizes, dates
   and the group are recomputed for the snapshot.
6. **Snapshot.** `run_themes` and `theme_members` rows of this run, written once.

Inputs are ordered by (source id, external id), never by serial ids, and the clustering
is seeded, so the same scope over unchanged data gives the same result byte for byte.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from sqlalchemy import BigInteger, any_, bindparam, cast, delete, insert, select, text, update
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Session

from threadline.ai.embeddings import MODEL_NAME, Embedder, process_embedder
from threadline.ai.llm.client import LLMCallFailed, LLMClient
from threadline.ai.llm.cost import BudgetExceeded, CallUsage, cost_counters
from threadline.ai.llm.facets import STAGE as FACETS_STAGE
from threadline.ai.llm.naming import ThemeMember as NamingMember
from threadline.ai.llm.naming import ThemeNameResult, ThemeNamingInput, name_theme
from threadline.ai.llm.runtime import LLMRuntime
from threadline.config import get_settings
from threadline.db.analyses import outputs_of
from threadline.db.models import Conversation, Run, RunConversation, RunTheme, Theme, ThemeMember
from threadline.db.vectors import load_newest_vectors, load_run_vectors
from threadline.engine.budget import RunSpendGuard, spend_guard
from threadline.engine.llm import llm_runtime
from threadline.engine.stage import StageContext, WholeRunStage
from threadline.stages.embed import MODEL_PARAM as EMBEDDING_MODEL_PARAM
from threadline.stages.embed import queue as embed_queue
from threadline.stages.embed import run_embedder
from threadline.stages.inputs import load_customer_texts
from threadline.text.sentences import truncate_words
from threadline.themes.clustering import CLUSTERING_VERSION, MIN_THEME_SIZE, assign_to_existing, cluster_vectors
from threadline.themes.hierarchy import group_themes
from threadline.themes.lineage import IDENTITY_MIN_JACCARD, match_lineages
from threadline.themes.naming import NAMING_VERSION, name_groups, name_themes

logger = logging.getLogger(__name__)

NAME = "themes"
NEAREST_THEMES = 3  # other themes whose members are sent as contrast when an LLM names a theme
CONTRASTS_PER_NEIGHBOUR = 2  # members sent of each of those themes
MAX_MERGE_HOPS = 64  # lineages followed through "merged into" at most: guards against a cycle a person made


@dataclass
class DiscoverResult:
    conversations: int = 0
    assigned: int = 0
    unassigned: int = 0
    carried: int = 0  # conversations that kept their earlier place (unchanged)
    joined_existing: int = 0  # new or changed conversations that joined an existing lineage
    new_themes: int = 0
    continued_themes: int = 0
    merged_themes: int = 0
    themes: int = 0
    groups: int = 0


@dataclass
class _Cluster:
    """One theme of this run while it is being built: members as positions into the run's ordered ids."""

    positions: list[int]
    lineage: int | None = None
    origin: str = "new"
    centroid: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float32))
    name: str = ""
    description: str | None = None
    keywords: list[str] = field(default_factory=list)
    representative: int | None = None  # conversation id
    parent: int | None = None  # index into the groups


def _normalise(matrix: np.ndarray) -> np.ndarray:
    normalised: np.ndarray = matrix / np.maximum(np.linalg.norm(matrix, axis=-1, keepdims=True), 1e-12)
    return normalised


# The run's conversations in (source id, external id) order, with their creation times.
_ORDERED_MEMBERS = (
    select(Conversation.id, Conversation.created_at)
    .join(RunConversation, RunConversation.conversation_id == Conversation.id)
    .where(RunConversation.run_id == bindparam("run_id", type_=BigInteger))
    .order_by(Conversation.source_id, Conversation.external_id)
)

# For each conversation of the run: the latest earlier run of the same scope whose themes phase
# finished and which contained it, the lineage that run put it in (NULL: unassigned), and whether
# its text changed since (a newer embedding than that run's end).
_CARRIED_SQL = text(
    """
    WITH last AS (
        SELECT DISTINCT ON (rc.conversation_id) rc.conversation_id, rc.run_id, r.finished_at
          FROM run_conversations cur
          JOIN run_conversations rc ON rc.conversation_id = cur.conversation_id AND rc.run_id < cur.run_id
          JOIN runs r ON r.id = rc.run_id
         WHERE cur.run_id = :run_id AND r.scope_id = :scope_id AND r.status = 'succeeded'
           AND EXISTS (SELECT 1 FROM run_phases p WHERE p.run_id = r.id AND p.phase = 'themes' AND p.state = 'done')
         ORDER BY rc.conversation_id, rc.run_id DESC)
    SELECT last.conversation_id, tm.theme_id,
           COALESCE((SELECT max(e.created_at) FROM embeddings e
                      WHERE e.conversation_id = last.conversation_id AND e.model = :model) > last.finished_at,
                    false) AS changed
      FROM last
      LEFT JOIN theme_members tm ON tm.run_id = last.run_id AND tm.conversation_id = last.conversation_id
    """
)

_PREVIOUS_RUN_SQL = text(
    """
    SELECT r.id FROM runs r
     WHERE r.scope_id = :scope_id AND r.id < :run_id AND r.status = 'succeeded'
       AND EXISTS (SELECT 1 FROM run_phases p WHERE p.run_id = r.id AND p.phase = 'themes' AND p.state = 'done')
     ORDER BY r.id DESC LIMIT 1
    """
)

# The latest recorded name (and description) of each lineage before this run.
_KEPT_NAMES_SQL = text(
    """
    SELECT DISTINCT ON (rt.theme_id) rt.theme_id, rt.name, rt.description
      FROM run_themes rt
     WHERE rt.theme_id = ANY(CAST(:ids AS bigint[])) AND rt.run_id < :run_id AND rt.name IS NOT NULL
     ORDER BY rt.theme_id, rt.run_id DESC
    """
)

# One statement per run, whatever its size: the rows travel as one array per column.
_INSERT_MEMBERS_SQL = text(
    """
    INSERT INTO theme_members (run_id, conversation_id, theme_id, similarity)
    SELECT :run_id, m.conversation_id, m.theme_id, m.similarity
      FROM unnest(CAST(:ids AS bigint[]), CAST(:themes AS bigint[]), CAST(:similarities AS float8[]))
           AS m(conversation_id, theme_id, similarity)
    """
)

_MARK_CONTINUED_SQL = text(
    "UPDATE themes SET last_run_id = :run_id, updated_at = now() WHERE id = ANY(CAST(:ids AS bigint[]))"
)

_MARK_MERGED_SQL = text(
    """
    UPDATE themes t SET merged_into_id = v.into_id, merged_by = 'run', merged_at = now(), merged_run_id = :run_id,
                        updated_at = now()
      FROM unnest(CAST(:ids AS bigint[]), CAST(:into AS bigint[])) AS v(id, into_id)
     WHERE t.id = v.id AND t.merged_into_id IS NULL
    """
)


class _Lineages:
    """The scope's lineages: merges followed, keep-separate marks and human names (one query)."""

    def __init__(self, session: Session, scope_id: int) -> None:
        rows = session.execute(
            select(Theme.id, Theme.merged_into_id, Theme.keep_separate, Theme.human_name).where(
                Theme.scope_id == scope_id
            )
        ).all()
        self.merged_into = {r.id: r.merged_into_id for r in rows if r.merged_into_id is not None}
        self.keep_separate = frozenset(r.id for r in rows if r.keep_separate)
        self.human_names = {r.id: r.human_name for r in rows if r.human_name}

    def resolve(self, lineage: int) -> int:
        """The lineage that now holds `lineage`'s members (itself unless it was merged)."""
        for _ in range(MAX_MERGE_HOPS):
            target = self.merged_into.get(lineage)
            if target is None:
                return lineage
            lineage = target
        return lineage


def _forget_earlier_attempt(session: Session, run_id: int) -> None:
    """Make re-running the stage for this run (a reopened run) replace its snapshot, not add to it."""
    session.execute(delete(ThemeMember).where(ThemeMember.run_id == run_id))
    session.execute(delete(RunTheme).where(RunTheme.run_id == run_id))
    session.execute(
        update(Theme)
        .where(Theme.merged_run_id == run_id)
        .values(merged_into_id=None, merged_by=None, merged_at=None, merged_run_id=None)
    )
    session.execute(delete(Theme).where(Theme.first_run_id == run_id))
    session.execute(
        text(
            "UPDATE themes t SET last_run_id = (SELECT max(rt.run_id) FROM run_themes rt WHERE rt.theme_id = t.id) "
            "WHERE t.last_run_id = :run_id"
        ),
        {"run_id": run_id},
    )


def discover_themes(
    session: Session,
    run_id: int,
    *,
    model: str = MODEL_NAME,
    random_state: int = 0,
    runtime: LLMRuntime | None = None,
    embedder: Embedder | None = None,
) -> tuple[DiscoverResult, list[CallUsage]]:
    """Place the run's embedded conversations in themes and write the run's theme snapshot.

    With an LLM `runtime`, new themes are named by the model (extractive names otherwise);
    returns the counters and the LLM calls' usages. `model` names the vectors clustered;
    `embedder` (default: the process's) embeds name candidates and must produce that model's
    vectors, so candidates are compared with centroids of the same backend.
    """
    embed = (embedder or process_embedder()).embed
    result = DiscoverResult()
    run = session.get(Run, run_id)
    assert run is not None
    _forget_earlier_attempt(session, run_id)
    vectors_by_id = load_run_vectors(session, run_id, model)
    ordered = [
        (int(cid), created)
        for cid, created in session.execute(_ORDERED_MEMBERS, {"run_id": run_id})
        if cid in vectors_by_id
    ]
    if not ordered:
        return result, []
    ids = np.array([cid for cid, _ in ordered], dtype=np.int64)
    created = [created for _, created in ordered]
    position_of = {int(cid): i for i, cid in enumerate(ids)}
    matrix = np.stack([vectors_by_id[int(i)] for i in ids]).astype(np.float32)
    texts = load_customer_texts(session, run_id=run_id)
    result.conversations = len(ids)
    lineages = _Lineages(session, run.scope_id)

    # 1. Carry: earlier placement of unchanged conversations (lineages followed through merges).
    earlier: dict[int, int | None] = {}  # position -> lineage in the latest earlier run (None: unassigned)
    unchanged: set[int] = set()
    for cid, theme_id, changed in session.execute(
        _CARRIED_SQL, {"run_id": run_id, "scope_id": run.scope_id, "model": model}
    ):
        position = position_of.get(int(cid))
        if position is None:
            continue
        earlier[position] = lineages.resolve(int(theme_id)) if theme_id is not None else None
        if not changed:
            unchanged.add(position)
    label = np.full(len(ids), -1, dtype=np.int64)  # lineage id per position, -1 none yet
    for position in unchanged:
        lineage = earlier[position]
        if lineage is not None:
            label[position] = lineage
    result.carried = len(unchanged)
    fresh = np.array([p for p in range(len(ids)) if p not in unchanged], dtype=np.int64)

    # 2. Join: new and changed conversations join the previous run's (and the carried) lineages.
    previous_run = session.execute(_PREVIOUS_RUN_SQL, {"scope_id": run.scope_id, "run_id": run_id}).scalar()
    if len(fresh):
        joined = _join_existing(session, previous_run, lineages, ids, matrix, label, fresh, model)
        # A lineage that only joiners (no carried member) would keep alive needs as many as a new theme
        # does; fewer are left to discovery, so a stray look-alike never revives a theme that stopped.
        carried_lineages = {int(label[p]) for p in unchanged if label[p] >= 0}
        counts = Counter(int(x) for x in joined if x >= 0)
        for position, lineage in zip(fresh.tolist(), joined.tolist(), strict=True):
            if lineage >= 0 and lineage not in carried_lineages and counts[lineage] < MIN_THEME_SIZE:
                label[position] = -1
        result.joined_existing = int((label[fresh] >= 0).sum())
    # 3. Discover among the rest: clusters need at least one new or changed conversation.
    rest = np.flatnonzero(label < 0)
    new_clusters: list[list[int]] = []
    fresh_set = set(fresh.tolist())
    if len(rest) and fresh_set & set(rest.tolist()):
        found = cluster_vectors(
            matrix[rest], texts=[texts.get(int(i), "") for i in ids[rest]], random_state=random_state
        ).labels
        for value in range(int(found.max()) + 1 if found.size else 0):
            members = rest[found == value].tolist()
            if fresh_set & set(members):
                new_clusters.append(members)

    # 4. Identity by members.
    by_lineage: dict[int, list[int]] = defaultdict(list)
    for position, lineage in enumerate(label.tolist()):
        if lineage >= 0:
            by_lineage[lineage].append(position)
    provisional = [by_lineage[lineage] for lineage in sorted(by_lineage)] + new_clusters
    fallback: list[int | None] = [*sorted(by_lineage), *([None] * len(new_clusters))]
    previous_members: dict[int, set[int]] = defaultdict(set)
    for position, lineage in earlier.items():
        if lineage is not None:
            previous_members[lineage].add(position)
    identity = match_lineages(
        [frozenset(c) for c in provisional],
        {lineage: frozenset(members) for lineage, members in previous_members.items()},
        frozenset(earlier),
        fallback=fallback,
        keep_separate=lineages.keep_separate,
        share=IDENTITY_MIN_JACCARD,
    )
    previous_lineages = _lineages_of_run(session, previous_run)
    clusters = [
        _Cluster(
            positions=sorted(members),
            lineage=lineage,
            origin="new" if lineage is None else "continued" if lineage in previous_lineages else "revived",
        )
        for members, lineage in zip(identity.clusters, identity.lineages, strict=True)
    ]
    # Largest first, then by first member: the order new lineages are created in (deterministic ids).
    clusters.sort(key=lambda c: (-len(c.positions), c.positions[0]))
    for cluster in clusters:
        cluster.centroid = _normalise(matrix[cluster.positions].mean(axis=0))

    # 5. Names, key phrases, representative; LLM names for new themes when configured.
    usages = _name(session, run_id, clusters, lineages, ids, matrix, texts, runtime, embed)
    groups = _group(session, run_id, previous_run, clusters, lineages, ids, texts, random_state, embed)

    # 6. Snapshot.
    _write_snapshot(session, run, clusters, groups, identity.merged, ids, matrix, created)
    assigned = sum(len(c.positions) for c in clusters)
    result.assigned = assigned
    result.unassigned = len(ids) - assigned
    result.new_themes = sum(1 for c in clusters if c.origin == "new")
    result.continued_themes = len(clusters) - result.new_themes
    result.merged_themes = len(identity.merged)
    result.themes = len(clusters)
    result.groups = len(groups)
    logger.info(
        "run %d: %d themes (%d new, %d continued), %d unassigned",
        run_id,
        result.themes,
        result.new_themes,
        result.continued_themes,
        result.unassigned,
    )
    return result, usages


def _lineages_of_run(session: Session, run_id: int | None) -> set[int]:
    if run_id is None:
        return set()
    return set(
        session.execute(select(RunTheme.theme_id).where(RunTheme.run_id == run_id, RunTheme.level == 1)).scalars()
    )


def _join_existing(
    session: Session,
    previous_run: int | None,
    lineages: _Lineages,
    ids: np.ndarray,
    matrix: np.ndarray,
    label: np.ndarray,
    fresh: np.ndarray,
    model: str,
) -> np.ndarray:
    """Assign the `fresh` positions to existing lineages by their members' mean vector; updates `label`.

    The lineages are those of the previous run of the scope (their members there) and those
    already carried into this run (their carried members). Returns, per fresh position, the
    lineage joined or -1.
    """
    members: dict[int, list[int]] = defaultdict(list)  # lineage -> conversation ids
    if previous_run is not None:
        for cid, theme_id in session.execute(
            select(ThemeMember.conversation_id, ThemeMember.theme_id).where(ThemeMember.run_id == previous_run)
        ):
            members[lineages.resolve(int(theme_id))].append(int(cid))
    for position, lineage in enumerate(label.tolist()):
        if lineage >= 0:
            members[lineage].append(int(ids[position]))
    unlabelled = fresh
    if not members or not len(unlabelled):
        return np.full(len(unlabelled), -1, dtype=np.int64)
    here = {int(cid): i for i, cid in enumerate(ids)}
    outside = sorted({cid for cids in members.values() for cid in cids if cid not in here})
    extra = load_newest_vectors(session, outside, model)
    keys = sorted(members)
    centroids = []
    for lineage in keys:
        found = (matrix[here[cid]] if cid in here else extra.get(cid) for cid in dict.fromkeys(members[lineage]))
        rows: list[np.ndarray] = [r for r in found if r is not None]
        centroids.append(_normalise(np.mean(rows, axis=0)) if rows else np.zeros(matrix.shape[1], dtype=np.float32))
    joined = assign_to_existing(matrix[unlabelled], np.stack(centroids).astype(np.float32))
    lineage_ids = np.array(keys, dtype=np.int64)
    hits = joined >= 0
    label[unlabelled[hits]] = lineage_ids[joined[hits]]
    return np.where(hits, lineage_ids[np.maximum(joined, 0)], -1)


def _name(
    session: Session,
    run_id: int,
    clusters: list[_Cluster],
    lineages: _Lineages,
    ids: np.ndarray,
    matrix: np.ndarray,
    texts: dict[int, str],
    runtime: LLMRuntime | None,
    embed: Callable[[list[str]], np.ndarray],
) -> list[CallUsage]:
    """Key phrases and a representative for every theme; names kept for continued lineages, made for new ones."""
    if not clusters:
        return []
    continued = [c.lineage for c in clusters if c.lineage is not None]
    kept = {
        theme_id: (name, description)
        for theme_id, name, description in session.execute(_KEPT_NAMES_SQL, {"ids": continued, "run_id": run_id})
    }
    taken = {name for name, _ in kept.values()} | set(lineages.human_names.values())
    subjects = _subjects(session, ids)
    # Existing themes keep their names (`kept`, a person's name); a new theme, e.g. a sibling split off an
    # existing one, never takes one of them: it gets the next phrase that tells it apart.
    named = name_themes(
        {i: [texts.get(int(ids[p]), "") for p in c.positions] for i, c in enumerate(clusters)},
        centroids={i: c.centroid for i, c in enumerate(clusters)},
        member_vectors={i: matrix[c.positions] for i, c in enumerate(clusters)},
        subjects_by_theme={i: [subjects.get(int(ids[p])) for p in c.positions] for i, c in enumerate(clusters)},
        embed=embed,
        taken=taken,
    )
    fresh: list[int] = []
    for index, cluster in enumerate(clusters):
        theme_name = named[index]
        cluster.keywords = theme_name.keywords
        cluster.representative = int(ids[cluster.positions[theme_name.representative_index]])
        if cluster.lineage is not None and cluster.lineage in kept:
            cluster.name, cluster.description = kept[cluster.lineage]
            continue
        fresh.append(index)
    quote_chars = get_settings().pipeline.description_quote_chars
    for index in fresh:
        cluster, theme_name = clusters[index], named[index]
        name, suffix = theme_name.name, 2
        while name in taken:
            name = f"{theme_name.name} ({suffix})"
            suffix += 1
        taken.add(name)
        cluster.name = name
        example = truncate_words(texts.get(cluster.representative or -1, "").replace("\n", " "), quote_chars)
        cluster.description = (
            f"Customers write about {', '.join(theme_name.keywords[:3]) or name}. For example: \u201c{example}\u201d"
        )
    if runtime is None or not fresh:
        return []
    guard = spend_guard(session.get_bind(), run_id, runtime.settings.run_budget)  # type: ignore[arg-type]
    return _name_with_llm(
        session, clusters, fresh, ids, matrix, taken - {clusters[i].name for i in fresh}, runtime, guard
    )


def _subjects(session: Session, ids: np.ndarray) -> dict[int, str | None]:
    """Subject lines of the run's conversations (name candidates where the data has them), in one query."""
    return dict(
        session.execute(
            select(Conversation.id, Conversation.subject).where(
                Conversation.id == any_(cast([int(i) for i in ids], ARRAY(BigInteger)))
            )
        ).all()
    )


def _group(
    session: Session,
    run_id: int,
    previous_run: int | None,
    clusters: list[_Cluster],
    lineages: _Lineages,
    ids: np.ndarray,
    texts: dict[int, str],
    seed: int,
    embed: Callable[[list[str]], np.ndarray],
) -> list[_Cluster]:
    """Top level of the hierarchy: a group continues the previous run's group most of whose children it keeps."""
    if not clusters:
        return []
    group_of = group_themes(
        np.stack([c.centroid for c in clusters]), np.array([len(c.positions) for c in clusters]), random_state=seed
    )
    children: dict[int, list[int]] = defaultdict(list)
    for index, group in enumerate(group_of.tolist()):
        children[group].append(index)
    previous_parent: dict[int, int] = {}
    if previous_run is not None:
        for theme_id, parent_id in session.execute(
            select(RunTheme.theme_id, RunTheme.parent_id).where(
                RunTheme.run_id == previous_run, RunTheme.level == 1, RunTheme.parent_id.is_not(None)
            )
        ):
            if parent_id is not None:
                previous_parent[lineages.resolve(int(theme_id))] = int(parent_id)
    group_names = name_groups(
        {
            g: [texts.get(int(ids[p]), "") for i in members for p in clusters[i].positions]
            for g, members in children.items()
        },
        centroids={g: _normalise(np.mean([clusters[i].centroid for i in m], axis=0)) for g, m in children.items()},
        embed=embed,
    )
    groups: list[_Cluster] = []
    reused: set[int] = set()
    for group in sorted(children):
        members = children[group]
        votes: dict[int, int] = defaultdict(int)
        for i in members:
            lineage = clusters[i].lineage
            if lineage is not None and lineage in previous_parent:
                votes[previous_parent[lineage]] += 1
        best = min(votes.items(), key=lambda item: (-item[1], item[0]), default=None)
        node = _Cluster(positions=[p for i in members for p in clusters[i].positions])
        node.positions.sort()
        if best is not None and best[0] not in reused and best[1] * 2 > len(members):
            node.lineage, node.origin = best[0], "continued"
            reused.add(best[0])
        node.keywords = group_names[group].keywords
        node.name = group_names[group].name
        for i in members:
            clusters[i].parent = len(groups)
        groups.append(node)
    kept = {
        theme_id: (name, description)
        for theme_id, name, description in session.execute(
            _KEPT_NAMES_SQL, {"ids": [g.lineage for g in groups if g.lineage is not None], "run_id": run_id}
        )
    }
    for node in groups:
        if node.lineage in kept:
            node.name = kept[node.lineage][0]
    return groups


def _write_snapshot(
    session: Session,
    run: Run,
    clusters: list[_Cluster],
    groups: list[_Cluster],
    merged: dict[int, int],
    ids: np.ndarray,
    matrix: np.ndarray,
    created: list[datetime | None],
) -> None:
    """New lineages (one INSERT), continued ones marked (one UPDATE), run_themes and memberships (one each)."""
    levelled = [(0, node) for node in groups] + [(1, node) for node in clusters]
    new = [(level, node) for level, node in levelled if node.lineage is None]
    if new:
        inserted = session.execute(
            insert(Theme).returning(Theme.id, sort_by_parameter_order=True),
            [
                {"scope_id": run.scope_id, "level": level, "first_run_id": run.id, "last_run_id": run.id}
                for level, node in new
            ],
        ).scalars()
        for (_, node), lineage_id in zip(new, inserted, strict=True):
            node.lineage = int(lineage_id)
    session.execute(
        _MARK_CONTINUED_SQL, {"run_id": run.id, "ids": [node.lineage for _, node in levelled if node.origin != "new"]}
    )
    if merged:
        session.execute(_MARK_MERGED_SQL, {"run_id": run.id, "ids": list(merged), "into": [merged[k] for k in merged]})
    rows: list[dict[str, Any]] = []
    for level, node in levelled:
        times = [t for t in (created[p] for p in node.positions) if t is not None]
        rows.append(
            {
                "run_id": run.id,
                "theme_id": node.lineage,
                "level": level,
                "parent_id": groups[node.parent].lineage if node.parent is not None else None,
                "name": node.name,
                "description": node.description,
                "keywords": node.keywords,
                "size": len(node.positions),
                "first_seen": min(times, default=None),
                "last_seen": max(times, default=None),
                "origin": node.origin,
                "representative_conversation_id": node.representative,
            }
        )
    if rows:
        session.execute(insert(RunTheme), rows)  # executemany, batched by SQLAlchemy
    member_ids: list[int] = []
    member_themes: list[int] = []
    similarities: list[float] = []
    for cluster in clusters:
        assert cluster.lineage is not None  # every cluster has its lineage once new ones are inserted
        member_ids.extend(ids[cluster.positions].tolist())
        member_themes.extend([cluster.lineage] * len(cluster.positions))
        similarities.extend((matrix[cluster.positions] @ cluster.centroid).tolist())
    if member_ids:
        params = {"run_id": run.id, "ids": member_ids, "themes": member_themes, "similarities": similarities}
        session.execute(_INSERT_MEMBERS_SQL, params)


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


def _name_with_llm(
    session: Session,
    clusters: list[_Cluster],
    fresh: list[int],
    ids: np.ndarray,
    matrix: np.ndarray,
    taken: set[str],
    runtime: LLMRuntime,
    guard: RunSpendGuard | None = None,
) -> list[CallUsage]:
    """Replace the extractive names of the new themes `fresh` with LLM names contrasting their nearest themes.

    A theme keeps its extractive name when naming fails; returns the usages of the calls.
    """
    top: dict[int, list[int]] = {}
    for index, cluster in enumerate(clusters):
        closeness = matrix[cluster.positions] @ cluster.centroid
        order = sorted(range(len(cluster.positions)), key=lambda k: (-float(closeness[k]), k))
        top[index] = [int(ids[cluster.positions[k]]) for k in order[: runtime.settings.naming_members]]
    digests = _naming_members(session, [cid for cids in top.values() for cid in cids])
    inputs = []
    for index in fresh:
        centre = clusters[index].centroid
        others = sorted(
            (i for i in range(len(clusters)) if i != index), key=lambda i: (-float(clusters[i].centroid @ centre), i)
        )
        contrast = [
            digests[c]
            for other in others[:NEAREST_THEMES]
            for c in top[other][:CONTRASTS_PER_NEIGHBOUR]
            if c in digests
        ][: runtime.settings.naming_contrasts]
        own = tuple(digests[c] for c in top[index] if c in digests)
        if own:
            inputs.append(ThemeNamingInput(str(index), own, tuple(contrast)))
    if not inputs:
        return []

    async def job(client: LLMClient) -> list[ThemeNameResult | BaseException]:
        return await asyncio.gather(*(name_theme(client, inp) for inp in inputs), return_exceptions=True)

    usages: list[CallUsage] = []
    for result in runtime.run(job, spend_guard=guard):  # a refused reservation keeps the extractive name
        if isinstance(result, BudgetExceeded):
            logger.info("LLM budget reached; keeping the extractive theme name")
            continue
        if isinstance(result, BaseException):
            usages.extend(result.usages if isinstance(result, LLMCallFailed) else ())
            logger.warning("theme naming failed (%s); keeping the extractive name", type(result).__name__)
            continue
        usages.extend(result.usages)
        cluster = clusters[int(result.theme_id)]
        if result.name.name and result.name.name not in taken:
            cluster.name = result.name.name
            cluster.description = result.name.description
            taken.add(cluster.name)
    return usages


def run(context: StageContext) -> dict[str, Any]:
    """Discover the run's themes; with an LLM configured, name the new ones with it."""
    session = context.session
    # The vectors of the run's embedding backend (fixed at creation); runs from before backends were planned: torch.
    model = str(context.params.get(EMBEDDING_MODEL_PARAM) or MODEL_NAME)
    runtime = llm_runtime(session.get_bind())  # type: ignore[arg-type]
    found, usages = discover_themes(
        session, context.run_id, model=model, runtime=runtime, embedder=run_embedder(context.params)
    )
    result: dict[str, Any] = asdict(found)
    if runtime is not None and usages:
        result.update(cost_counters(usages, runtime.settings.prices))
    return result


# On the run's embedding-backend queue: naming embeds candidates with the run's backend.
STAGE = WholeRunStage(
    name=NAME, version=f"{CLUSTERING_VERSION}+{NAMING_VERSION}", position=30, run=run, queue=embed_queue
)

__all__ = ["STAGE", "DiscoverResult", "discover_themes", "run"]
