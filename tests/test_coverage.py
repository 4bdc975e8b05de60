"""Coverage of themes by passages: matches above the threshold, gaps for uncovered how-to themes, ranked by impact."""

import numpy as np

from threadline.analysis.coverage import question_share, rank_gaps, theme_coverage


def _unit(*values: float) -> np.ndarray:
    vector = np.array(values, dtype=np.float32)
    return vector / np.linalg.norm(vector)


def test_best_passages_above_threshold_and_gaps():
    centroids = {1: np.array([2.0, 0.0, 0.0]), 2: np.array([0.0, 3.0, 0.0]), 3: np.array([0.0, 0.0, 1.0])}
    passages = np.vstack([_unit(1, 0.1, 0), _unit(1, 0.5, 0), _unit(0.2, 1, 0), _unit(1, 0, 0.05)])
    shares = {1: 0.9, 2: 0.2, 3: 0.8}
    coverage = theme_coverage(
        centroids, [10, 11, 12, 13], passages, shares, threshold=0.6, top_k=2, gap_question_share=0.5
    )
    assert [m.passage_id for m in coverage[1].matches] == [13, 10]  # best first, top 2 only
    assert all(m.similarity >= 0.6 for m in coverage[1].matches) and not coverage[1].gap
    assert [m.passage_id for m in coverage[2].matches] == [12]
    assert coverage[3].matches == () and coverage[3].gap  # mostly how-to, nothing close
    assert coverage[3].best_similarity is not None and coverage[3].best_similarity < 0.6


def test_an_uncovered_theme_of_few_questions_is_not_a_gap_and_no_passages_means_uncovered():
    coverage = theme_coverage(
        {1: np.ones(3), 2: np.ones(3)},
        [],
        np.zeros((0, 3)),
        {1: 0.6, 2: 0.1},
        threshold=0.5,
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
        top_k=1,
        gap_question_share=0.5,
    )
    ranked = rank_gaps(coverage, conversations={1: 5, 2: 9, 3: 5}, customers={1: 2, 2: 1, 3: 4})
    assert [c.theme_id for c in ranked] == [2, 3, 1]


def test_question_share_counts_how_to():
    assert question_share(["how_to", "bug", "how_to", "billing"]) == 0.5
    assert question_share([]) == 0.0
