"""Theme identity across runs, decided by members (never by centroids).

A run's themes are clusters of conversations. Each one continues the earlier lineage of
its scope with which it shares the most members, when that overlap is at least
``IDENTITY_MIN_JACCARD`` (Jaccard: the overlap is then at least that share of both sides).
Members are compared on common ground only: the conversations both the earlier runs and
this run contain, since a conversation outside a run's period says nothing about change.
So a theme that grows with new conversations stays itself; one whose members scatter
loses its identity.

- Split: the part with the larger overlap keeps the identity; the other parts are new.
- Merge: the lineage with the larger overlap continues; a lineage most of whose members
  (at least ``IDENTITY_MIN_JACCARD`` of them) went into a cluster continuing another one
  ends "merged into" that one -- unless either is marked *keep separate*: then its members
  are carved out of the cluster and it continues on its own.
- No common ground (a run whose conversations no earlier run of the scope contained, e.g.
  `--since` after the previous period): there are no members to compare, and a cluster
  continues the lineage its conversations were assigned to (``fallback``), if any.

Pure: plain ids in, plain ids out; ties are broken by lineage id and cluster order so the
result is deterministic.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["IDENTITY_MIN_JACCARD", "Identity", "match_lineages"]

# Jaccard of members (on common ground) for a cluster to continue a lineage, and share of a
# lineage's members that must land in another lineage's cluster for it to end "merged into".
# 0.5: the overlap is then at least half of both sides, so each lineage continues at most once.
IDENTITY_MIN_JACCARD = 0.5


@dataclass
class Identity:
    """The outcome: final clusters with the lineage each continues (None: new), and ended lineages."""

    clusters: list[frozenset[int]]
    lineages: list[int | None]
    jaccard: list[float]
    merged: dict[int, int] = field(default_factory=dict)  # lineage -> lineage it was merged into


def _jaccard(a: frozenset[int], b: frozenset[int]) -> float:
    union = len(a | b)
    return len(a & b) / union if union else 0.0


def match_lineages(
    clusters: Sequence[frozenset[int]],
    previous: Mapping[int, frozenset[int]],
    common: frozenset[int],
    *,
    fallback: Sequence[int | None] | None = None,
    keep_separate: frozenset[int] = frozenset(),
    share: float = IDENTITY_MIN_JACCARD,
) -> Identity:
    """Decide which earlier lineage (in `previous`, lineage -> members) each cluster continues.

    `common` holds the conversations both this run and the earlier runs contain; members
    outside it are ignored when comparing. `fallback[i]` is the lineage cluster i was
    assigned to when it has no common ground at all.
    """
    clusters = list(clusters)
    seen = [c & common for c in clusters]
    before = {lineage: members & common for lineage, members in previous.items()}
    holders: dict[int, list[int]] = {}  # conversation -> lineages that held it (normally one)
    for lineage, members in before.items():
        for cid in members:
            holders.setdefault(cid, []).append(lineage)
    pairs: list[tuple[float, int, int, int]] = []
    for index, members in enumerate(seen):
        touched = sorted({lineage for cid in members for lineage in holders.get(cid, ())})
        for lineage in touched:
            overlap = len(members & before[lineage])
            pairs.append((-_jaccard(members, before[lineage]), -overlap, lineage, index))
    pairs.sort()
    lineages: list[int | None] = [None] * len(clusters)
    scores = [0.0] * len(clusters)
    taken: set[int] = set()
    for negative_jaccard, _, lineage, index in pairs:
        if -negative_jaccard < share:
            break
        if lineage in taken or lineages[index] is not None:
            continue
        lineages[index], scores[index] = lineage, -negative_jaccard
        taken.add(lineage)
    for index, members in enumerate(seen):
        candidate = fallback[index] if fallback is not None else None
        if lineages[index] is None and not members and candidate is not None and candidate not in taken:
            lineages[index] = candidate
            taken.add(candidate)
    merged: dict[int, int] = {}
    for lineage in sorted(before):
        members = before[lineage]
        if lineage in taken or not members:
            continue
        best, overlap = -1, 0
        for index, cluster in enumerate(seen):
            count = len(cluster & members)
            if count > overlap:
                best, overlap = index, count
        if best < 0 or overlap / len(members) < share or lineages[best] is None:
            continue
        host = lineages[best]
        assert host is not None
        if lineage in keep_separate or host in keep_separate:
            carved = clusters[best] & members
            clusters[best] = clusters[best] - carved
            seen[best] = seen[best] - carved
            clusters.append(carved)
            seen.append(carved)
            lineages.append(lineage)
            scores.append(1.0)
            taken.add(lineage)
        else:
            merged[lineage] = host
    keep = [i for i, c in enumerate(clusters) if c]
    return Identity(
        clusters=[clusters[i] for i in keep],
        lineages=[lineages[i] for i in keep],
        jaccard=[scores[i] for i in keep],
        merged=merged,
    )
