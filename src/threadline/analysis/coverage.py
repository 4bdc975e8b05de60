"""Documentation coverage of themes: which passages answer each theme, and which themes are doc gaps.

Pure: vectors and counts in, decisions out (the caller loads theme centroids, passage vectors
and conversation types; a later coverage stage stores the result in the run's snapshot).

- A passage *covers* a theme when the cosine similarity between the passage's vector and the
  theme's centroid (mean of its members' vectors, normalised here) reaches the threshold
  (`knowledge.coverage_threshold`). Each theme keeps its best `top_k` passages at or above it.
- A *documentation gap* is a theme that no passage covers and whose conversations are mostly
  questions (`how_to` conversations, share at least `knowledge.gap_question_share`): the
  customers asked how to do something and no article explains it.
- Gaps are ranked by impact: conversations, then distinct customers, then the best
  similarity found (lowest first: furthest from anything written).
Cost: one (themes x passages) matrix product, and `argpartition` per theme (linear).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

QUESTION_TYPES = frozenset({"how_to"})  # conversation types that ask how to do something (analysis.conversation_type)


@dataclass(frozen=True)
class PassageMatch:
    """A passage that covers a theme, with its cosine similarity to the theme's centroid."""

    passage_id: int
    similarity: float


@dataclass(frozen=True)
class ThemeCoverage:
    """Coverage of one theme: its best covering passages, the best similarity found at all, whether it is a gap."""

    theme_id: int
    matches: tuple[PassageMatch, ...]
    best_similarity: float | None  # None: no passage at all
    question_share: float
    gap: bool

    @property
    def covered(self) -> bool:
        return bool(self.matches)


def question_share(types: Sequence[str]) -> float:
    """Share of conversation `types` that are questions/how-to (0.0 for none)."""
    return sum(1 for t in types if t in QUESTION_TYPES) / len(types) if types else 0.0


def _normalised(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms == 0, 1.0, norms)


def theme_coverage(
    centroids: Mapping[int, np.ndarray],
    passage_ids: Sequence[int],
    passage_vectors: np.ndarray,
    question_shares: Mapping[int, float],
    *,
    threshold: float,
    top_k: int,
    gap_question_share: float,
) -> dict[int, ThemeCoverage]:
    """{theme id: coverage} for every theme of `centroids` against the passages (rows of `passage_vectors`)."""
    theme_ids = list(centroids)
    out: dict[int, ThemeCoverage] = {}
    if not theme_ids:
        return out
    if len(passage_ids) == 0:
        similarities = np.zeros((len(theme_ids), 0), dtype=np.float32)
    else:
        themes = _normalised(np.vstack([np.asarray(centroids[t], dtype=np.float32) for t in theme_ids]))
        similarities = themes @ _normalised(np.asarray(passage_vectors, dtype=np.float32)).T
    for row, theme_id in enumerate(theme_ids):
        sims = similarities[row]
        best = float(sims.max()) if sims.size else None
        k = min(top_k, sims.size)
        top = np.argpartition(-sims, k - 1)[:k] if k else np.array([], dtype=int)
        ordered = sorted(top.tolist(), key=lambda i: (-float(sims[i]), passage_ids[i]))
        matches = tuple(PassageMatch(int(passage_ids[i]), float(sims[i])) for i in ordered if sims[i] >= threshold)
        share = float(question_shares.get(theme_id, 0.0))
        gap = not matches and share >= gap_question_share
        out[theme_id] = ThemeCoverage(theme_id, matches, best, share, gap)
    return out


def rank_gaps(
    coverage: Mapping[int, ThemeCoverage], conversations: Mapping[int, int], customers: Mapping[int, int]
) -> list[ThemeCoverage]:
    """The gaps, by impact: most conversations, then most customers, then furthest from any passage."""
    gaps = [c for c in coverage.values() if c.gap]
    return sorted(
        gaps,
        key=lambda c: (
            -conversations.get(c.theme_id, 0),
            -customers.get(c.theme_id, 0),
            c.best_similarity if c.best_similarity is not None else -1.0,
            c.theme_id,
        ),
    )
