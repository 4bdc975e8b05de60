"""Theme identity by members (pure): continue, split, merge, keep separate, no common ground; and seeded Leiden in threads."""

from __future__ import annotations

import sys
import threading

import numpy as np

from threadline.themes.clustering import knn, knn_adjacency, leiden_partition, to_igraph
from threadline.themes.lineage import match_lineages


def f(*ids: int) -> frozenset[int]:
    return frozenset(ids)


def test_a_theme_that_grows_with_new_conversations_keeps_its_identity():
    previous = {7: f(1, 2, 3, 4)}
    common = f(1, 2, 3, 4)  # conversations 10..19 are new: not common ground
    result = match_lineages([f(1, 2, 3, 4, *range(10, 20))], previous, common)
    assert result.lineages == [7] and result.jaccard == [1.0] and result.merged == {}


def test_a_split_keeps_the_identity_on_the_larger_part():
    previous = {7: f(*range(10))}
    result = match_lineages([f(0, 1, 2), f(3, 4, 5, 6, 7, 8, 9)], previous, f(*range(10)))
    assert result.lineages == [None, 7]


def test_scattered_members_lose_the_identity():
    previous = {7: f(*range(10))}
    result = match_lineages([f(0, 1, 2, 3), f(4, 5, 6), f(7, 8, 9)], previous, f(*range(10)))
    assert result.lineages == [None, None, None]


def test_a_merge_continues_the_larger_overlap_and_ends_the_other_as_merged_into():
    previous = {1: f(*range(10)), 2: f(10, 11, 12, 13)}
    result = match_lineages([f(*range(14))], previous, f(*range(14)))
    assert result.lineages == [1] and result.merged == {2: 1}


def test_keep_separate_carves_the_lineage_out_instead_of_merging_it():
    previous = {1: f(*range(10)), 2: f(10, 11, 12, 13)}
    result = match_lineages([f(*range(14))], previous, f(*range(14)), keep_separate=frozenset({2}))
    assert result.merged == {}
    assert dict(zip(result.lineages, result.clusters, strict=True)) == {1: f(*range(10)), 2: f(10, 11, 12, 13)}


def test_without_common_ground_the_assigned_lineage_continues_once():
    previous = {1: f(1, 2, 3)}
    clusters = [f(20, 21, 22, 23, 24), f(30, 31, 32, 33, 34)]
    result = match_lineages(clusters, previous, f(), fallback=[1, 1])
    assert result.lineages == [1, None]


def test_ties_are_broken_by_lineage_id_and_cluster_order():
    previous = {5: f(1, 2), 3: f(1, 2)}
    assert match_lineages([f(1, 2)], previous, f(1, 2)).lineages == [3]


def test_seeded_leiden_gives_the_same_partition_from_concurrent_threads():
    """igraph's generator is process-wide: concurrent seeded calls must not draw from each other's."""
    rng = np.random.default_rng(3)
    centres = rng.normal(size=(12, 16))
    x = np.concatenate([c + 0.9 * rng.normal(size=(40, 16)) for c in centres]).astype(np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    graph = to_igraph(knn_adjacency(*knn(x, 10, seed=0)))
    expected = {seed: leiden_partition(graph, 4.0, seed).tolist() for seed in range(6)}
    assert len({tuple(v) for v in expected.values()}) > 1  # the seed matters on this graph
    results: dict[tuple[int, int], list[int]] = {}

    def work(seed: int, repeat: int) -> None:
        results[(seed, repeat)] = leiden_partition(graph, 4.0, seed).tolist()

    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads as often as possible: interleavings become likely
    try:
        threads = [threading.Thread(target=work, args=(seed, r)) for r in range(10) for seed in range(6)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    finally:
        sys.setswitchinterval(interval)
    assert all(results[(seed, r)] == expected[seed] for seed, r in results)
