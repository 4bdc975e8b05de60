"""Two-level hierarchy: group themes into a few top-level areas.

Average-linkage agglomerative clustering of theme centroids (cosine distance); the cut is
chosen automatically as the number of groups with the best size-weighted silhouette, so
groups are cohesive areas rather than a fixed count.
"""

from __future__ import annotations

import logging

import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage

__all__ = ["HIERARCHY_VERSION", "group_themes"]

logger = logging.getLogger(__name__)

HIERARCHY_VERSION = "avg-linkage-silhouette-0.1"

MIN_THEMES_TO_GROUP = 4  # themes: with fewer, one group per theme would be as many groups as themes
MAX_GROUP_SHARE = 0.5  # groups <= this share of the theme count, so the top level is a real summary


def _weighted_silhouette(dist: np.ndarray, labels: np.ndarray, weights: np.ndarray) -> float:
    """Silhouette of each theme (distances between centroids), averaged with theme sizes as weights."""
    n = labels.shape[0]
    s = np.zeros(n)
    for i in range(n):
        same = labels == labels[i]
        same[i] = False
        if not same.any():
            continue  # singleton group: silhouette 0 by convention
        a = np.average(dist[i, same], weights=weights[same])
        b = np.inf
        for g in np.unique(labels):
            if g == labels[i]:
                continue
            other = labels == g
            b = min(b, float(np.average(dist[i, other], weights=weights[other])))
        s[i] = (b - a) / max(a, b) if max(a, b) > 0 else 0.0
    return float(np.average(s, weights=weights))


def group_themes(centroids: np.ndarray, sizes: np.ndarray, *, random_state: int = 0) -> np.ndarray:
    """Top-level group id (0..g-1) per theme, with fewer groups than themes when k >= 2.

    ``random_state`` is accepted for API symmetry; the linkage is deterministic.
    """
    del random_state  # deterministic algorithm
    k = centroids.shape[0]
    if k == 0:
        return np.zeros(0, dtype=np.int64)
    if k < MIN_THEMES_TO_GROUP:
        return np.zeros(k, dtype=np.int64)
    c = np.asarray(centroids, dtype=np.float64)
    c = c / np.maximum(np.linalg.norm(c, axis=1, keepdims=True), 1e-12)
    dist = np.clip(1.0 - c @ c.T, 0.0, 2.0)
    np.fill_diagonal(dist, 0.0)
    condensed = dist[np.triu_indices(k, 1)]
    tree = linkage(condensed, method="average")
    weights = np.sqrt(np.maximum(np.asarray(sizes, dtype=np.float64), 1.0))
    best_labels = np.zeros(k, dtype=np.int64)
    best_score = -np.inf
    max_groups = max(2, int(k * MAX_GROUP_SHARE))
    for g in range(2, max_groups + 1):
        labels = fcluster(tree, t=g, criterion="maxclust") - 1
        if np.unique(labels).shape[0] < 2:
            continue
        score = _weighted_silhouette(dist, labels, weights)
        if score > best_score + 1e-9:
            best_score, best_labels = score, labels
    # Renumber groups by total size, largest first, for stable presentation.
    totals = np.bincount(best_labels, weights=np.asarray(sizes, dtype=np.float64))
    order = np.argsort(-totals, kind="stable")
    remap = np.empty_like(order)
    remap[order] = np.arange(order.shape[0])
    logger.info("grouped %d themes into %d top-level groups", k, order.shape[0])
    return remap[best_labels].astype(np.int64)
