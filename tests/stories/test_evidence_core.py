"""Evidence from a theme's core: its majority problem, most typical members first, no stray members."""

from __future__ import annotations

import numpy as np

from threadline.stories.evidence import CORE_SHARE, Sentence, core_conversations, select_evidence

DIMS = 12


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.linalg.norm(v)


def _axis(*weights: float) -> np.ndarray:
    v = np.zeros(DIMS)
    v[: len(weights)] = weights
    return v


def _mixed_theme() -> tuple[list[int], np.ndarray, np.ndarray]:
    """A theme of 12: 7 varied conversations about one problem (ids 1-7), 5 near-identical ones about a
    neighbouring problem (ids 8-12, a form template), which sit closer to the theme's centroid."""
    rng = np.random.default_rng(0)
    spread = np.arange(DIMS) >= 2
    majority = [_unit(_axis(1.0) + 0.2 * rng.standard_normal(DIMS) * spread) for _ in range(7)]
    template = [_unit(_axis(0.6, 0.8) + 0.05 * rng.standard_normal(DIMS) * spread) for _ in range(5)]
    vectors = np.stack(majority + template)
    centroids = np.stack([_unit(vectors.mean(axis=0)), _axis(0.0, -1.0)])
    return list(range(1, 13)), vectors, centroids


def _sentences(ids: list[int]) -> list[Sentence]:
    return [Sentence(c, c * 10, 0, 28, f"conversation {c} states its problem", True) for c in ids]


def test_a_theme_with_a_tighter_minority_is_quoted_from_its_majority() -> None:
    ids, vectors, centroids = _mixed_theme()
    minority = set(range(8, 13))
    # the minority is closer to the centroid: ranking by closeness alone would quote it first
    assert max(ids, key=lambda c: float(vectors[c - 1] @ centroids[0])) in minority
    core = core_conversations(ids, vectors, centroids, 0, limit=40)
    assert core and not minority & set(core)
    assert len(core) <= int(np.ceil(CORE_SHARE * len(ids)))
    selection = select_evidence(_sentences(ids), vectors, centroids, 0, core=core, limit=5, min_quotes=3)
    assert len(selection.quotes) == 5
    assert not minority & {q.conversation_id for q in selection.quotes}
    assert {q.conversation_id for q in selection.quotes} == set(core[:5])  # the most typical are quoted
    assert [q.score for q in selection.quotes] == sorted((q.score for q in selection.quotes), reverse=True)


def test_a_member_barely_closer_to_its_theme_than_to_the_next_is_never_quoted() -> None:
    rng = np.random.default_rng(1)
    vectors = np.stack([_unit(_axis(1.0) + 0.1 * rng.standard_normal(DIMS)) for _ in range(10)])
    own = _unit(vectors.mean(axis=0))
    # the neighbouring theme lies next to member 0, a typical member: it is closer to its own theme, barely
    aside = np.zeros(DIMS)
    aside[-1] = 1.0
    aside = _unit(aside - (aside @ vectors[0]) * vectors[0])  # orthogonal to member 0
    cos = float(vectors[0] @ own) - 0.02
    neighbour = cos * vectors[0] + np.sqrt(1 - cos * cos) * aside
    centroids = np.stack([own, neighbour])
    ids = list(range(10))
    assert 0 < float(vectors[0] @ own) - float(vectors[0] @ neighbour) < 0.05
    core = core_conversations(ids, vectors, centroids, 0, limit=40)
    assert core and 0 not in core


def test_core_of_a_small_or_empty_theme() -> None:
    centroids = np.stack([_axis(1.0), _axis(0.0, 1.0)])
    assert core_conversations([], np.zeros((0, DIMS)), centroids, 0, limit=5) == []
    assert core_conversations([7], _axis(1.0)[None, :], centroids, 0, limit=5) == [7]
    ids, vectors, centroids = _mixed_theme()
    assert len(core_conversations(ids, vectors, centroids, 0, limit=2)) == 2
