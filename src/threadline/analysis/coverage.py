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
- An article whose *volume did not fall* (`volume_not_falling`): it covers a theme (one of the
  theme's passages above), its date D (published or last updated) lies inside the theme's time
  span, and the theme's conversations per day (by the conversation's own `created_at`) in the
  `VOLUME_WINDOW_DAYS` after D are at least `VOLUME_NOT_FALLING_RATIO` of those in the window
  before D, with at least `VOLUME_MIN_AFTER` conversations after D. Windows are clipped to the
  run's own time span (the rate of a half-covered window is not diluted by days with no data).
Cost: one (themes x passages) matrix product, and `argpartition` per theme (linear); the
volume rule reads each theme's conversations once per article covering it (at most
`top_k` articles per theme) and counts the run's conversations in a window by bisection.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np

QUESTION_TYPES = frozenset({"how_to"})  # conversation types that ask how to do something (analysis.conversation_type)
# Volume after an article's date. A month on each side: long enough to hold more than a handful
# of conversations of one theme, short enough that the product has not changed much meanwhile.
VOLUME_WINDOW_DAYS = 30  # days compared before and after the article's date
VOLUME_MIN_AFTER = 3  # conversations of the theme after the date, at least: fewer is chance, not a trend
VOLUME_NOT_FALLING_RATIO = 0.8  # per-day rate after / before at or above which volume "did not fall" (a fall < 20%)
SECONDS_PER_DAY = 86_400.0


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
    margin: float,
    top_k: int,
    gap_question_share: float,
) -> dict[int, ThemeCoverage]:
    """{theme id: coverage} for every theme of `centroids` against the passages (rows of `passage_vectors`).

    A passage covers a theme when it is at least `threshold` close to the theme's centroid and
    the theme is the passage's own subject: no other theme of the run is more than `margin`
    closer to it. A passage on a neighbouring task of the same product area (creating an
    invoice, for a theme asking how invoices are numbered) is close to many themes of that area
    but closest to its own; it does not answer the others.
    """
    theme_ids = list(centroids)
    out: dict[int, ThemeCoverage] = {}
    if not theme_ids:
        return out
    if len(passage_ids) == 0:
        similarities = np.zeros((len(theme_ids), 0), dtype=np.float32)
    else:
        themes = _normalised(np.vstack([np.asarray(centroids[t], dtype=np.float32) for t in theme_ids]))
        similarities = themes @ _normalised(np.asarray(passage_vectors, dtype=np.float32)).T
    own_subject = similarities >= similarities.max(axis=0, initial=-1.0) - margin  # (themes, passages)
    for row, theme_id in enumerate(theme_ids):
        sims = similarities[row]
        best = float(sims.max()) if sims.size else None
        eligible = np.flatnonzero((sims >= threshold) & own_subject[row])
        ordered = sorted(eligible.tolist(), key=lambda i: (-float(sims[i]), passage_ids[i]))[:top_k]
        matches = tuple(PassageMatch(int(passage_ids[i]), float(sims[i])) for i in ordered)
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


@dataclass(frozen=True)
class ThemeConversation:
    """One conversation of a theme: id, when the customer wrote (`created_at`), who (None: unknown)."""

    conversation_id: int
    created_at: datetime
    customer: int | None = None


@dataclass(frozen=True)
class VolumeNotFalling:
    """An article after whose date a theme it covers kept (or grew) its conversations per day."""

    article_id: int
    theme_id: int
    article_date: datetime
    window_days: int
    before: int  # the theme's conversations in the window before the date
    after: int  # ... and in the window after it
    before_days: float  # the windows' lengths once clipped to the run's span
    after_days: float
    before_share: float  # the theme's share of all the run's conversations in each window
    after_share: float
    customers: int  # distinct known customers among the conversations after
    examples: tuple[int, ...]  # conversations after the date, in the caller's order (closest to the theme first)


def _count_between(ordered: Sequence[datetime], start: datetime, end: datetime) -> int:
    """How many of the sorted `ordered` are in [start, end)."""
    return bisect_left(ordered, end) - bisect_left(ordered, start)


def volume_not_falling(
    themes: Mapping[int, Sequence[ThemeConversation]],
    covering: Mapping[int, Collection[int]],
    article_dates: Mapping[int, datetime],
    run_dates: Sequence[datetime],
    *,
    window_days: int = VOLUME_WINDOW_DAYS,
    min_after: int = VOLUME_MIN_AFTER,
    ratio: float = VOLUME_NOT_FALLING_RATIO,
    examples: int = 3,
) -> list[VolumeNotFalling]:
    """Articles covering a theme whose volume did not fall after the article's date, by impact.

    `themes`: each theme's conversations (caller's order kept for examples); `covering`: {theme
    id: ids of the articles with a passage covering it}; `article_dates`: the articles that have
    a date; `run_dates`: `created_at` of every conversation of the run, sorted (the span and the
    shares). One finding per article: the theme with the most conversations after its date.
    Ranked by conversations after, then customers, then article id.
    """
    if not run_dates:
        return []
    first, last = run_dates[0], run_dates[-1]
    window = timedelta(days=window_days)
    best: dict[int, VolumeNotFalling] = {}
    for theme_id, members in themes.items():
        if not members:
            continue
        span_start = min(m.created_at for m in members)
        span_end = max(m.created_at for m in members)
        for article_id in sorted(covering.get(theme_id, ())):
            date = article_dates.get(article_id)
            if date is None or not span_start < date <= span_end:
                continue
            start, end = max(date - window, first), min(date + window, last + timedelta(microseconds=1))
            before_days = (date - start).total_seconds() / SECONDS_PER_DAY
            after_days = (end - date).total_seconds() / SECONDS_PER_DAY
            after_members = [m for m in members if date <= m.created_at < end]
            before = sum(1 for m in members if start <= m.created_at < date)
            after = len(after_members)
            if after < min_after or before_days <= 0 or after_days <= 0:
                continue
            if after * before_days < ratio * before * after_days:  # per-day rate fell by more than allowed
                continue
            run_before, run_after = _count_between(run_dates, start, date), _count_between(run_dates, date, end)
            finding = VolumeNotFalling(
                article_id=article_id,
                theme_id=theme_id,
                article_date=date,
                window_days=window_days,
                before=before,
                after=after,
                before_days=before_days,
                after_days=after_days,
                before_share=before / run_before if run_before else 0.0,
                after_share=after / run_after if run_after else 0.0,
                customers=len({m.customer for m in after_members if m.customer is not None}),
                examples=tuple(m.conversation_id for m in after_members[:examples]),
            )
            kept = best.get(article_id)
            if kept is None or (finding.after, -finding.theme_id) > (kept.after, -kept.theme_id):
                best[article_id] = finding
    return sorted(best.values(), key=lambda f: (-f.after, -f.customers, f.article_id))
