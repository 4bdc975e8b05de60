"""Two-level hierarchy: group themes into a few top-level areas.

Themes are linked to their ``GROUP_NEIGHBOURS`` most similar themes (cosine of
centroids) and the resulting small graph is split by Leiden modularity at the standard
resolution 1.0. Modularity decides the number of groups itself: a group is a set of
themes more interlinked than chance, so well-separated areas (cards, transfers,
identity) come out as groups without a fixed count. This is the same machinery as the
item level (:mod:`threadline.themes.clustering`), one level up.

An earlier version cut an average-linkage tree at the best silhouette; on BANKING77
train it chose 2 groups for 93 themes (silhouette favours one far-off theme against the
rest), which is useless as a top level.
"""

from __future__ import annotations

import logging

import numpy as np

from threadline.themes.clustering import knn_adjacency, knn_between, l2_normalise, leiden_partition, to_igraph

__all__ = ["HIERARCHY_VERSION", "group_themes"]

logger = logging.getLogger(__name__)

HIERARCHY_VERSION = "theme-knn-leiden-0.3"

MIN_THEMES_TO_GROUP = 4  # themes: with fewer, any split leaves groups of one, so all share one group
GROUP_NEIGHBOURS = 4  # links per theme: sparse enough that areas separate, dense enough to stay connected
GROUP_RESOLUTION = 1.0  # modularity resolution: the standard definition, no tuning


def group_themes(centroids: np.ndarray, sizes: np.ndarray, *, random_state: int = 0) -> np.ndarray:
    """Top-level group id (0..g-1) per theme; fewer groups than themes whenever there are >= 2 themes.

    Groups are numbered by total member count (``sizes``), largest first. Deterministic
    for a given ``random_state``.
    """
    k = centroids.shape[0]
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < MIN_THEMES_TO_GROUP:
        return np.zeros(k, dtype=np.int64)
    c = l2_normalise(centroids)
    idx, sim = knn_between(c, c, np.arange(k), min(GROUP_NEIGHBOURS, k - 1))
    labels = leiden_partition(to_igraph(knn_adjacency(idx, sim)), GROUP_RESOLUTION, random_state)
    if np.unique(labels).shape[0] >= k:  # no structure at all (e.g. orthogonal themes): one group
        labels = np.zeros(k, dtype=np.int64)
    totals = np.bincount(labels, weights=np.asarray(sizes, dtype=np.float64))
    order = np.lexsort((np.arange(totals.shape[0]), -totals))
    remap = np.empty_like(order)
    remap[order] = np.arange(order.shape[0])
    groups = remap[labels].astype(np.int64)
    logger.info("grouped %d themes into %d top-level groups", k, int(groups.max()) + 1)
    return groups
