"""Coverage of themes by passages: matches above the threshold, gaps for uncovered how-to themes, ranked by impact."""

from datetime import UTC, datetime, timedelta

import numpy as np

from threadline.analysis.coverage import (
    VOLUME_MIN_AFTER,
    VOLUME_WINDOW_DAYS,
    ThemeConversation,
    question_share,
    rank_gaps,
    theme_coverage,
    volume_not_falling,
)


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_best_passages_above_threshold_and_gaps():
    centroids = {1: np.array([2.0, 0.0, 0.0]), 2: np.array([0.0, 3.0, 0.0]), 3: np.array([0.0, 0.0, 1.0])}
    passages = np.vstack([_unit(1, 0.1, 0), _unit(1, 0.5, 0), _unit(0.2, 1, 0), _unit(1, 0, 0.05)])
    shares = {1: 0.9, 2: 0.2, 3: 0.8}
    coverage = theme_coverage(
        centroids, [10, 11, 12, 13], passages, shares, threshold=0.6, margin=0.05, top_k=2, gap_question_share=0.5
    )
    assert [m.passage_id for m in coverage[1].matches] == [13, 10]  # best first, top 2 only
    assert all(m.similarity >= 0.6 for m in coverage[1].matches) and not coverage[1].gap
    assert [m.passage_id for m in coverage[2].matches] == [12]
    assert coverage[3].matches == () and coverage[3].gap  # mostly how-to, nothing close
    assert coverage[3].best_similarity is not None and coverage[3].best_similarity < 0.6


def test_a_passage_covers_only_the_themes_it_is_closest_to_within_the_margin():
    """A passage on a neighbouring task (closest to its own theme) does not cover a theme it merely shares words with."""
    own, neighbour, split_half = _unit(1, 0, 0), _unit(1, 0.55, 0), _unit(1, 0.1, 0)
    hub = _unit(1, 0.12, 0)  # closest to `split_half` (0.9998); `own` 0.007 further, `neighbour` 0.07 further
    centroids = {1: own, 2: neighbour, 3: split_half}
    coverage = theme_coverage(
        centroids,
        [7],
        hub[None, :],
        {1: 1.0, 2: 1.0, 3: 1.0},
        threshold=0.6,
        margin=0.05,
        top_k=3,
        gap_question_share=0.5,
    )
    assert float(hub @ neighbour) >= 0.6  # close enough by the threshold alone
    assert coverage[2].matches == () and coverage[2].gap
    assert [m.passage_id for m in coverage[1].matches] == [7] and [m.passage_id for m in coverage[3].matches] == [7]
    without_margin = theme_coverage(
        centroids,
        [7],
        hub[None, :],
        {1: 1.0, 2: 1.0, 3: 1.0},
        threshold=0.6,
        margin=2.0,
        top_k=3,
        gap_question_share=0.5,
    )
    assert [m.passage_id for m in without_margin[2].matches] == [7]


def test_top_passages_are_chosen_among_the_covering_ones():
    """Passages excluded by the margin do not take the places of ones that cover the theme."""
    theme, other = _unit(1, 0, 0), _unit(1, 0.3, 0)
    hubs = [_unit(1, 0.32, 0)] * 2  # closer to `other`, still above the threshold for `theme`
    answer = _unit(1, -0.35, 0)  # ranked after the hubs for `theme` (0.944 < 0.952), but its own subject
    coverage = theme_coverage(
        {1: theme, 2: other},
        [1, 2, 3],
        np.vstack([*hubs, answer]),
        {1: 1.0, 2: 1.0},
        threshold=0.6,
        margin=0.01,
        top_k=1,
        gap_question_share=0.5,
    )
    assert [m.passage_id for m in coverage[1].matches] == [3]


def test_an_uncovered_theme_of_few_questions_is_not_a_gap_and_no_passages_means_uncovered():
    coverage = theme_coverage(
        {1: np.ones(3), 2: np.ones(3)},
        [],
        np.zeros((0, 3)),
        {1: 0.6, 2: 0.1},
        threshold=0.5,
        margin=0.05,
        top_k=3,
        gap_question_share=0.5,
    )
    assert coverage[1].gap and not coverage[2].gap and coverage[1].best_similarity is None


def test_gaps_rank_by_conversations_then_customers():
    coverage = theme_coverage(
        {1: np.ones(2), 2: np.ones(2), 3: np.ones(2)},
        [],
        np.zeros((0, 2)),
        {1: 1.0, 2: 1.0, 3: 1.0},
        threshold=0.5,
        margin=0.05,
        top_k=1,
        gap_question_share=0.5,
    )
    ranked = rank_gaps(coverage, conversations={1: 5, 2: 9, 3: 5}, customers={1: 2, 2: 1, 3: 4})
    assert [c.theme_id for c in ranked] == [2, 3, 1]


def test_question_share_counts_how_to():
    assert question_share(["how_to", "bug", "how_to", "billing"]) == 0.5
    assert question_share([]) == 0.0


def _theme(days: list[float], first_id: int = 1) -> list[ThemeConversation]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    return [
        ThemeConversation(first_id + i, start + timedelta(days=d), customer=(first_id + i) % 4)
        for i, d in enumerate(days)
    ]


def _dates(*themes: list[ThemeConversation], others: int = 0) -> list[datetime]:
    """The run's sorted dates: the themes' plus `others` conversations spread over the same 120 days."""
    start = datetime(2026, 1, 1, tzinfo=UTC)
    spread = [start + timedelta(days=120 * i / max(others, 1)) for i in range(others)]
    return sorted([m.created_at for theme in themes for m in theme] + spread)


DATE = datetime(2026, 3, 2, tzinfo=UTC)  # day 60 of the span


def test_volume_that_falls_after_the_article_date_is_not_flagged():
    falling = _theme([32, 35, 38, 40, 45, 50, 52, 55, 57, 58, 59, 62, 70, 80])  # 11 in the 30 days before, 3 after
    assert VOLUME_MIN_AFTER <= 3  # enough after: it is the fall that keeps it out
    assert volume_not_falling({1: falling}, {1: {7}}, {7: DATE}, _dates(falling, others=50)) == []


def test_flat_or_rising_volume_after_the_article_date_is_flagged_with_its_figures():
    flat = _theme([35, 41, 47, 53, 58, 61, 66, 72, 78, 84])  # 5 before, 5 after
    rising = _theme([45, 61, 63, 65, 70, 74, 80, 85], first_id=100)  # 1 before, 7 after
    found = volume_not_falling(
        {1: flat, 2: rising}, {1: {7}, 2: {8}}, {7: DATE, 8: DATE}, _dates(flat, rising, others=50), examples=2
    )
    assert [(f.article_id, f.theme_id, f.before, f.after) for f in found] == [(8, 2, 1, 7), (7, 1, 5, 5)]
    top = found[0]
    assert top.article_date == DATE and top.window_days == VOLUME_WINDOW_DAYS
    assert top.examples == (101, 102)  # conversations after the date, in the caller's order
    assert 0 < top.before_share < top.after_share < 1 and top.customers == 4


def test_too_few_conversations_after_the_date_is_not_flagged():
    few = _theme([10, 20, 55, 61, 64])  # 1 before, 2 after: rising, but fewer than the minimum
    assert VOLUME_MIN_AFTER > 2
    assert volume_not_falling({1: few}, {1: {7}}, {7: DATE}, _dates(few)) == []


def test_an_article_date_outside_the_theme_span_or_missing_is_not_flagged():
    later = _theme([70, 75, 80, 85, 90, 95])  # the whole theme is after the date: nothing to compare with
    assert volume_not_falling({1: later}, {1: {7}}, {7: DATE}, _dates(later)) == []
    earlier = _theme([5, 10, 15, 20])  # the whole theme is before it
    assert volume_not_falling({1: earlier}, {1: {7}}, {7: DATE}, _dates(earlier)) == []
    flat = _theme([35, 41, 47, 53, 58, 61, 66, 72, 78, 84])
    assert volume_not_falling({1: flat}, {1: {7}}, {}, _dates(flat)) == []  # no date: nothing to say
    assert volume_not_falling({1: flat}, {1: set()}, {7: DATE}, _dates(flat)) == []  # not covered by the article


def test_one_finding_per_article_the_theme_with_most_conversations_after():
    small = _theme([40, 50, 61, 62, 63])
    large = _theme([40, 50, 61, 62, 63, 64, 65, 66], first_id=100)
    found = volume_not_falling({1: small, 2: large}, {1: {7}, 2: {7}}, {7: DATE}, _dates(small, large))
    assert [(f.article_id, f.theme_id, f.after) for f in found] == [(7, 2, 6)]
