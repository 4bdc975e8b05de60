"""Theme discovery: group sentence embeddings into themes without being told how many.

Algorithm:
1. k-nearest-neighbour graph (sparse, never n x n): exact blockwise matrix products up to
   ``EXACT_KNN_MAX_ITEMS``, an inverted-file search (linear in n) above;
2. Leiden community detection on that graph (modularity with a resolution parameter),
   run over a fixed grid of resolutions; each partition is scored by its exact cosine
   silhouette and the coarsest one close to the best score wins (where a score is near
   that line, it is averaged over a few seeded runs, so seed noise does not decide).
   Silhouette rewards compact, separated themes without knowing how many there are, so
   well-separated data settles on few themes and fine-grained data on many, with the same
   parameters;
3. communities smaller than ``MIN_THEME_SIZE`` are dissolved: their members join the
   nearest surviving theme when similar enough, else stay unassigned (``-1``);
4. members that barely resemble the rest of their theme become unassigned outliers;
5. the unassigned items are clustered again on their own (up to ``LEFTOVER_PASSES``),
   so small themes that a coarse partition absorbed and then shed still surface.
"""

from __future__ import annotations

import logging
import random
import threading
from dataclasses import dataclass

import igraph as ig
import numpy as np
from scipy import sparse

__all__ = [
    "CLUSTERING_VERSION",
    "Clustering",
    "assign_to_existing",
    "cluster_vectors",
    "cosine_silhouette",
    "knn",
    "knn_adjacency",
    "knn_between",
    "l2_normalise",
    "leiden_partition",
    "to_igraph",
]

logger = logging.getLogger(__name__)

CLUSTERING_VERSION = "knn-leiden-silhouette-0.10"

KNN_NEIGHBOURS = 15  # neighbours per item: 10 and 25 measured worse on BANKING77 test (NMI -0.01)
# rows per float64 block when summing vectors per label: 64k x 384 x 8 bytes = 200 MB, where one
# float64 copy of 1M vectors is 3 GB
LABEL_SUM_BLOCK_ROWS = 65_536
KNN_BLOCK_ROWS = 512  # query rows per matrix-product block: 512 x 100k float32 = 200 MB peak
# base columns per chunk in the exact top-k: chunk maxima bound each row's k-th best from below, so only
# the chunks reaching that bound are sorted (~110 of 10k entries per row at 10k items; measured fastest
# between 24 and 40, 2.5x faster than a selection over every entry)
KNN_CHUNK_COLUMNS = 32
# items: exact kNN costs ~2 s at 10k but grows with n^2 (minutes at 100k); above this, the IVF search
EXACT_KNN_MAX_ITEMS = 20_000
IVF_ITEMS_PER_CELL = 256  # mean items per inverted-file bucket: fixed, so search cost grows linearly with n
IVF_PROBES = 16  # nearest buckets searched per bucket: 0.98-0.99 neighbour recall on BANKING77 and synthetic data
IVF_TRAIN_ITEMS = 20_000  # items sampled to fit the coarse groups: centroids are stable well before that
# items sampled per bucket to fit the buckets within a coarse group (faiss's rule of thumb is ~39):
# with fewer, buckets come out unbalanced (at 1M with 5 per bucket: median 17 items, largest 14,610,
# so the "linear" search cost 5x its share)
IVF_TRAIN_PER_CELL = 40
IVF_KMEANS_ITERATIONS = 8  # Lloyd iterations for the buckets: exact bucket quality matters little to recall
# modularity resolutions tried, doubling: ~10 to ~170 themes on 3k-10k items, 6 Leiden runs
RESOLUTION_GRID = (0.5, 1.0, 2.0, 4.0, 8.0, 16.0)
# items: above this the grid extends to finer resolutions, because modularity's resolution limit grows with n
RESOLUTION_REFERENCE_ITEMS = 10_000
# relative: the coarsest partition within 7.5% of the best silhouette wins (parsimony, like the 1-SE rule)
SILHOUETTE_TOLERANCE = 0.075
# early stop: after this many consecutive resolutions scoring more than SILHOUETTE_STOP_DROP (relative)
# below the best so far, finer ones are not tried (STAR and 100k synthetic peak early; saves Leiden runs)
SILHOUETTE_STOP_AFTER = 2
SILHOUETTE_STOP_DROP = 2 * SILHOUETTE_TOLERANCE
# items: above this, a resolution's silhouette is the exact silhouette of a seeded uniform sample
# of this many items (against the full clusters). Exact scoring costs n x communities x d, and
# both factors grow with n (minutes per resolution at 1M); the sample's standard error
# (~0.3 / sqrt(50k) = 0.0013) is far below the tolerance band (7.5% of ~0.25 = 0.019)
SILHOUETTE_SAMPLE_ITEMS = 50_000
# Leiden runs (seeds) averaged into the score of a resolution the choice hinges on: the parsimony
# rule compares scores to a threshold, and one run's seed noise moved BANKING77 test between ~55 and
# ~72 themes on a quarter of seeds (torch and int8 vectors alike); with 3 runs no seed of 12 flipped.
# The partition kept is the first run's, so ``random_state`` still names it.
LEIDEN_RUNS_PER_RESOLUTION = 3
# relative to the best silhouette: a resolution scoring within this of the parsimony threshold (or the
# best, which sets it) is in doubt and gets the extra runs; the others cannot cross the threshold on
# seed noise (a resolution's silhouette varied by SD ~0.003 between seeds on BANKING77, where this
# margin is ~0.008), so their one run decides and the extra Leiden runs are paid only where they count
SILHOUETTE_DOUBT = SILHOUETTE_TOLERANCE / 2
# Leiden passes per resolution: 2 is the usual default; "until stable" (-1) scored the same on
# BANKING77/STAR but took 40-50 s CPU per fine resolution at 100k
LEIDEN_ITERATIONS = 2
MIN_THEME_SIZE = 5  # items: smaller groups are not a recurring theme worth a story
# leftover passes: unassigned items are clustered again on their own, because a coarse first pass
# can swallow small themes into big ones and then shed them as far members (16% at 100k synthetic)
LEFTOVER_PASSES = 2
LEFTOVER_MIN_ITEMS = 4 * MIN_THEME_SIZE  # unassigned items needed before another pass is worth running
# cosine to a centroid: ~1st percentile of members' similarity to their own discovered theme
# (BANKING77, STAR), so ~99% of items that fit a theme join it in an incremental run
ASSIGN_MIN_SIMILARITY = 0.45
# cosine to the mean of the other members of its theme: below this the graph put an item in a
# theme it does not resemble (0.2-0.3% of items on BANKING77/STAR); it becomes an unassigned outlier
MEMBER_MIN_SIMILARITY = 0.35
# igraph's random generator is process-wide; seeded Leiden calls from concurrent threads take turns
_IGRAPH_RNG_LOCK = threading.Lock()


@dataclass(frozen=True)
class Clustering:
    """Result of discovery: per-item theme labels and the theme centroids."""

    labels: np.ndarray  # (n,) int; 0..k-1 = theme, -1 = unassigned outlier
    centroids: np.ndarray  # (k, d) float32, L2-normalised mean of members

    def sizes(self) -> np.ndarray:
        """Number of members per theme, shape (k,)."""
        k = self.centroids.shape[0]
        assigned = self.labels[self.labels >= 0]
        return np.bincount(assigned, minlength=k).astype(np.int64)


def l2_normalise(x: np.ndarray) -> np.ndarray:
    """Row-wise L2 normalisation in float32; zero rows stay zero."""
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def knn(vectors: np.ndarray, k: int, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Cosine k-nearest neighbours (excluding self) of L2-normalised rows, best first.

    Exact up to ``EXACT_KNN_MAX_ITEMS`` items; beyond that an inverted-file search
    (:func:`_knn_ivf`) keeps the cost near-linear. Returns ``(indices, similarities)``,
    each (n, k).
    """
    n = vectors.shape[0]
    k = min(k, n - 1)
    if n > EXACT_KNN_MAX_ITEMS:
        return _knn_ivf(vectors, k, seed)
    return knn_between(vectors, vectors, np.arange(n), k)


def _label_sums(x: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """(k, d) float64 sum of the rows of ``x`` per label 0..k-1 (rows labelled < 0 ignored).

    A sparse one-hot product: ~100x faster than ``np.add.at`` at 100k rows.
    """
    sums = np.zeros((k, x.shape[1]), dtype=np.float64)
    for start in range(0, x.shape[0], LABEL_SUM_BLOCK_ROWS):  # a float64 copy of one block, not of all rows
        block = labels[start : start + LABEL_SUM_BLOCK_ROWS]
        keep = np.flatnonzero(block >= 0)
        onehot = sparse.csr_matrix((np.ones(keep.size), (block[keep], keep)), shape=(k, block.size))
        sums += onehot @ x[start : start + block.size].astype(np.float64, copy=False)
    return sums


def knn_between(
    queries: np.ndarray, base: np.ndarray, self_cols: np.ndarray, k: int, base_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Exact top-k of ``queries`` against ``base`` by blockwise matrix products.

    ``self_cols[r]`` is the column of ``base`` holding query ``r`` itself (excluded from its
    neighbours). ``base_ids`` maps base rows to global item ids (default: row numbers);
    returned indices are global ids, best first. Memory is bounded by ``KNN_BLOCK_ROWS *
    len(base)`` floats (200 MB at 100k).
    """
    ids = np.arange(base.shape[0]) if base_ids is None else base_ids
    n = base.shape[0]
    k = min(k, n - 1)
    nq = queries.shape[0]
    idx = np.empty((nq, k), dtype=np.int64)
    sim = np.empty((nq, k), dtype=np.float32)
    if k < 1 or nq == 0:
        return idx, sim
    # The products land in a buffer of whole chunks of `width` columns (the padding columns stay
    # -inf), so each block is seen as (rows x chunks x width) without a copy.
    width = max(1, min(KNN_CHUNK_COLUMNS, n // k))
    chunks = -(-n // width)
    buffer = np.empty((min(KNN_BLOCK_ROWS, nq), chunks * width), dtype=np.result_type(queries, base))
    buffer[:, n:] = -np.inf
    for start in range(0, nq, KNN_BLOCK_ROWS):
        stop = min(start + KNN_BLOCK_ROWS, nq)
        block = buffer[: stop - start]
        np.matmul(queries[start:stop], base.T, out=block[:, :n])
        block[np.arange(stop - start), self_cols[start:stop]] = -np.inf
        idx_block, sim[start:stop] = _top_k_rows(block, n, width, k)
        idx[start:stop] = ids[idx_block]
    return idx, sim


def _top_k_rows(block: np.ndarray, n: int, width: int, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Columns and values of the k largest of the first ``n`` entries of each row of ``block``, best first.

    ``block`` is (rows x chunks * width), its columns from ``n`` on -inf. Exact without a
    selection over every entry: each chunk's maximum is an entry of the row, so the k-th
    largest chunk maximum bounds the row's k-th largest entry from below, and only the
    entries reaching it (~110 of 10k per row at 10k items) are sorted. A row whose k-th and
    (k+1)-th largest entries are equal (duplicate items) gets the full-row ``argpartition``
    this function replaces, so which of the tied items is a neighbour stays what it was.
    """
    rows = block.shape[0]
    chunked = block.reshape(rows, -1, width)
    chunks = chunked.shape[1]
    maxima = chunked.max(axis=2)
    floor = np.partition(maxima, chunks - k, axis=1)[:, chunks - k]
    hit_row, hit_chunk = np.nonzero(maxima >= floor[:, None])
    values = chunked[hit_row, hit_chunk]  # (hits, width)
    keep = values >= floor[hit_row][:, None]
    cand_row = np.broadcast_to(hit_row[:, None], values.shape)[keep]
    cand_col = (hit_chunk[:, None] * width + np.arange(width))[keep]
    cand_val = values[keep]
    order = np.lexsort((cand_col, -cand_val, cand_row))  # by row, best first, ties by column
    counts = np.bincount(cand_row, minlength=rows)  # >= k per row: k chunk maxima reach the floor
    first = np.cumsum(counts) - counts
    pick = order[first[:, None] + np.arange(k)]
    cols, vals = cand_col[pick], cand_val[pick]
    more = np.flatnonzero(counts > k)
    tied = more[cand_val[order[first[more] + k]] == vals[more, k - 1]]
    for row in tied.tolist():
        part = np.argpartition(block[row, :n], n - k)[-k:]
        part_vals = block[row, part]
        best = np.argsort(-part_vals, kind="stable")
        cols[row], vals[row] = part[best], part_vals[best]
    return cols, vals


def _spherical_kmeans(x: np.ndarray, k: int, seed: int, iterations: int) -> np.ndarray:
    """Unit-norm centroids of a few Lloyd iterations of spherical k-means (seeded, deterministic)."""
    rng = np.random.default_rng(seed)
    cents = x[rng.choice(x.shape[0], size=k, replace=False)].copy()
    for _ in range(iterations):
        assign = np.concatenate(
            [(x[s : s + KNN_BLOCK_ROWS] @ cents.T).argmax(axis=1) for s in range(0, x.shape[0], KNN_BLOCK_ROWS)]
        )
        sums = _label_sums(x, assign, k)
        empty = ~sums.any(axis=1)
        sums[empty] = x[rng.choice(x.shape[0], size=int(empty.sum()), replace=False)]
        cents = l2_normalise(sums)
    return cents


def _nearest_centroid(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """Index of the most similar centroid per row, in blocks of ``KNN_BLOCK_ROWS``."""
    return np.concatenate(
        [(x[s : s + KNN_BLOCK_ROWS] @ centroids.T).argmax(axis=1) for s in range(0, x.shape[0], KNN_BLOCK_ROWS)]
    )


def _ivf_buckets(x: np.ndarray, cells: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Balanced inverted-file buckets: ``(centroids, bucket of each row)``, about ``cells`` buckets.

    Two levels of spherical k-means: ~sqrt(cells) coarse groups fitted on a sample, then each
    group split into buckets in proportion to its size, fitted on ``IVF_TRAIN_PER_CELL`` of its
    own items per bucket. One level fitted on a fixed sample gives buckets of very unequal size
    once there are more buckets than the sample can place, and the search cost grows with the
    squares of the bucket sizes.
    """
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    coarse_k = max(1, round(cells**0.5))
    train = x[rng.choice(n, size=min(n, max(IVF_TRAIN_ITEMS, coarse_k)), replace=False)]
    groups = _nearest_centroid(x, _spherical_kmeans(train, coarse_k, seed, IVF_KMEANS_ITERATIONS))
    assign = np.empty(n, dtype=np.int64)
    centroids: list[np.ndarray] = []
    offset = 0
    for group in range(coarse_k):
        rows = np.flatnonzero(groups == group)
        if rows.size == 0:
            continue
        k = max(1, round(rows.size / IVF_ITEMS_PER_CELL))
        if k == 1:
            sub = l2_normalise(x[rows].sum(axis=0, keepdims=True))
        else:
            fit = (
                rows if rows.size <= IVF_TRAIN_PER_CELL * k else rng.choice(rows, IVF_TRAIN_PER_CELL * k, replace=False)
            )
            sub = _spherical_kmeans(x[fit], k, seed, IVF_KMEANS_ITERATIONS)
        assign[rows] = _nearest_centroid(x[rows], sub) + offset
        centroids.append(sub)
        offset += sub.shape[0]
    return np.vstack(centroids).astype(np.float32, copy=False), assign


def _knn_ivf(x: np.ndarray, k: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Approximate kNN with an inverted file: items are bucketed by spherical k-means and each
    bucket's items are searched exactly against the items of its ``IVF_PROBES`` nearest buckets.

    Cost ~ n * IVF_PROBES * IVF_ITEMS_PER_CELL * d: linear in n, as long as buckets are balanced
    (:func:`_ivf_buckets`).
    """
    n = x.shape[0]
    cents, assign = _ivf_buckets(x, max(2, n // IVF_ITEMS_PER_CELL), seed)
    cells = cents.shape[0]
    order = np.argsort(assign, kind="stable")
    bounds = np.searchsorted(assign[order], np.arange(cells + 1))
    members = [order[bounds[c] : bounds[c + 1]] for c in range(cells)]
    near_cells = np.argsort(-(cents @ cents.T), axis=1, kind="stable")[:, :IVF_PROBES]
    idx = np.empty((n, k), dtype=np.int64)
    sim = np.empty((n, k), dtype=np.float32)
    for c in range(cells):
        q = members[c]
        if q.size == 0:
            continue
        # Own bucket first, so query r sits at candidate column r.
        cand = np.concatenate([q, *(members[j] for j in near_cells[c] if j != c)])
        if cand.size <= k:  # degenerate tiny bucket set: search every item instead
            cand = np.concatenate([q, np.setdiff1d(np.arange(n), q)])
        ci, cs = knn_between(x[q], x[cand], np.arange(q.size), k, base_ids=cand)
        idx[q], sim[q] = ci, cs
    return idx, sim


def knn_adjacency(idx: np.ndarray, sim: np.ndarray) -> sparse.csr_matrix:
    """Symmetric weighted kNN adjacency (max of the two directions), weights = cosine clipped at 0."""
    n, k = idx.shape
    rows = np.repeat(np.arange(n), k)
    w = np.clip(sim.ravel(), 0.0, None)
    a = sparse.csr_matrix((w, (rows, idx.ravel())), shape=(n, n))
    return a.maximum(a.T).tocsr()


def to_igraph(adj: sparse.csr_matrix) -> ig.Graph:
    """igraph view of a symmetric sparse adjacency (upper triangle, weights in ``weight``)."""
    upper = sparse.triu(adj, k=1).tocoo()
    g = ig.Graph(n=adj.shape[0], edges=np.column_stack([upper.row, upper.col]), directed=False)
    g.es["weight"] = upper.data
    return g


def leiden_partition(g: ig.Graph, resolution: float, seed: int) -> np.ndarray:
    """Leiden modularity communities of a weighted undirected graph, deterministic for a seed.

    Uses igraph's built-in C implementation: ~14x less CPU than the ``leidenalg``
    package at 10k items for the same partitions quality (NMI within 0.01 on BANKING77).
    igraph draws from a process-wide generator, so a seeded one is installed for the
    call and the default restored afterwards, under a lock: runs execute in worker
    threads, and two interleaved calls would otherwise draw from each other's generator.
    """
    with _IGRAPH_RNG_LOCK:
        ig.set_random_number_generator(random.Random(seed))
        try:
            part = g.community_leiden(
                objective_function="modularity",
                weights="weight",
                resolution=resolution,
                n_iterations=LEIDEN_ITERATIONS,
            )
        finally:
            ig.set_random_number_generator(random)
    return np.asarray(part.membership, dtype=np.int64)


def cosine_silhouette(x: np.ndarray, labels: np.ndarray, *, sample: int | None = None, seed: int = 0) -> float:
    """Exact mean silhouette with cosine distance, in O(n * k * d) time and O(n * k) memory.

    Cosine similarity is linear in each argument, so the mean similarity of an item to a
    cluster is its dot product with the cluster's vector sum divided by the size: no
    pairwise matrix is needed, which keeps this exact even at 100k items. Items with
    ``labels < 0`` are ignored; members of singleton clusters score 0 (sklearn convention).
    With ``sample``, only that many items (a seeded uniform draw) are scored, each exactly
    against the full clusters: an unbiased estimate in O(sample * k * d).
    """
    scored = np.flatnonzero(labels >= 0)  # row numbers, so the vectors are never copied whole
    k = int(labels[scored].max()) + 1 if scored.size else 0
    if k < 2:
        return 0.0
    sums32 = _label_sums(x, labels, k).astype(np.float32)
    sizes = np.bincount(labels[scored], minlength=k).astype(np.float64)
    if sample is not None and sample < scored.size:
        scored = np.sort(np.random.default_rng(seed).choice(scored, size=sample, replace=False))
    divisors = np.maximum(sizes, 1.0)
    empty = sizes == 0
    total = 0.0
    for start in range(0, scored.size, KNN_BLOCK_ROWS):
        block = scored[start : start + KNN_BLOCK_ROWS]
        xb, lb = x[block], labels[block]
        rows = np.arange(block.size)
        sim_sum = (xb @ sums32.T).astype(np.float64)  # (b, k); float32 product: 2x faster, error ~1e-6
        own = sim_sum[rows, lb]
        own_size = sizes[lb]
        a = 1.0 - (own - 1.0) / np.maximum(own_size - 1.0, 1.0)  # self-similarity 1 excluded
        # Mean similarity to each other cluster, in place; b = 1 - the largest (1 - x is monotone
        # in floating point too, so this equals the smallest mean distance bit for bit).
        other = np.divide(sim_sum, divisors, out=sim_sum)
        other[rows, lb] = -np.inf
        other[:, empty] = -np.inf
        b = 1.0 - other.max(axis=1)
        s = (b - a) / np.maximum(np.maximum(a, b), 1e-12)
        s[own_size <= 1] = 0.0
        total += float(s.sum())
    return total / scored.size


def _run_seeds(seed: int) -> list[int]:
    """Leiden seeds for one resolution: ``seed`` itself first, then ones derived from it.

    Derived through ``numpy.random.SeedSequence``, so the runs of different ``seed`` values
    do not share seeds (``seed + 1`` would make random_state 0's second run random_state
    1's first).
    """
    derived = np.random.SeedSequence(seed).generate_state(LEIDEN_RUNS_PER_RESOLUTION - 1)
    return [seed, *(int(s) for s in derived)]


@dataclass
class _Candidate:
    """One resolution's partition (its first Leiden run) and the silhouettes of its runs so far."""

    resolution: float
    labels: np.ndarray
    silhouettes: list[float]
    settled: bool = False  # its extra runs are in `silhouettes`

    @property
    def score(self) -> float:
        return float(np.mean(self.silhouettes))


def _parsimony_floor(candidates: list[_Candidate]) -> tuple[float, float]:
    """``(best score, threshold)``: partitions scoring at least the threshold are close enough to the best."""
    best = max(c.score for c in candidates)
    return best, best - abs(best) * SILHOUETTE_TOLERANCE


def _settle_doubtful(x: np.ndarray, g: ig.Graph, candidates: list[_Candidate], seed: int) -> None:
    """Average more Leiden runs into the scores the parsimony choice hinges on, in place.

    In doubt: the best score (it sets the threshold) and every score within
    ``SILHOUETTE_DOUBT`` of the threshold. Each gets the runs of :func:`_run_seeds` once;
    since that moves the best and the threshold, the doubt is re-examined until no new
    candidate falls in it.
    """
    if len(candidates) < 2:
        return  # a single candidate is the choice, whatever its score
    extra_seeds = _run_seeds(seed)[1:]
    while True:
        best, floor = _parsimony_floor(candidates)
        margin = abs(best) * SILHOUETTE_DOUBT
        doubtful = [c for c in candidates if not c.settled and (c.score == best or abs(c.score - floor) <= margin)]
        if not doubtful:
            return
        for candidate in doubtful:
            for run_seed in extra_seeds:
                labels = leiden_partition(g, candidate.resolution, run_seed)
                candidate.silhouettes.append(cosine_silhouette(x, labels, sample=SILHOUETTE_SAMPLE_ITEMS, seed=seed))
            candidate.settled = True


def _best_partition(x: np.ndarray, adj: sparse.csr_matrix, seed: int) -> np.ndarray:
    """Leiden partition over ``RESOLUTION_GRID`` chosen by silhouette with a parsimony rule.

    Silhouette keeps creeping up as fine-grained data is split further, so instead of
    the maximum we take the coarsest partition whose silhouette is within
    ``SILHOUETTE_TOLERANCE`` (relative) of the best one. Where a score is close enough to
    that threshold for seed noise to decide, it is the mean of several seeded runs
    (:func:`_settle_doubtful`).
    """
    g = to_igraph(adj)
    # Modularity's null model penalises a merge by ~1/(total edge weight), so with more
    # items the same resolution merges ever bigger groups (the "resolution limit"). The
    # grid is therefore extended upwards (same doubling) as n grows past the reference
    # size, while its coarse end stays, since big themes must not be forced apart.
    top = RESOLUTION_GRID[-1] * max(1.0, x.shape[0] / RESOLUTION_REFERENCE_ITEMS)
    grid = list(RESOLUTION_GRID)
    while grid[-1] * 2 <= top * 1.0001:
        grid.append(grid[-1] * 2)
    candidates: list[_Candidate] = []
    below = 0  # consecutive resolutions far below the best silhouette so far
    for resolution in grid:
        labels = leiden_partition(g, resolution, seed)
        if int(labels.max()) + 1 < 2:
            continue
        score = cosine_silhouette(x, labels, sample=SILHOUETTE_SAMPLE_ITEMS, seed=seed)
        logger.debug("resolution %.2f: %d communities, silhouette %.4f", resolution, int(labels.max()) + 1, score)
        candidates.append(_Candidate(resolution, labels, [score]))
        best_so_far = max(c.score for c in candidates)
        below = below + 1 if score < best_so_far - abs(best_so_far) * SILHOUETTE_STOP_DROP else 0
        if below >= SILHOUETTE_STOP_AFTER:
            break  # finer partitions keep getting worse: stop paying for Leiden runs
    if not candidates:
        return np.zeros(x.shape[0], dtype=np.int64)
    _settle_doubtful(x, g, candidates, seed)
    _, floor = _parsimony_floor(candidates)
    return next(c.labels for c in candidates if c.score >= floor)


def _centroids(vectors: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """L2-normalised mean vector per label 0..k-1."""
    return l2_normalise(_label_sums(vectors, labels, k))


def _relabel_by_size(labels: np.ndarray) -> np.ndarray:
    """Renumber themes 0..k-1, largest first (ties by first appearance); -1 stays -1."""
    out = np.full_like(labels, -1)
    valid = labels[labels >= 0]
    if valid.size == 0:
        return out
    ids, first, counts = np.unique(valid, return_index=True, return_counts=True)
    order = np.lexsort((first, -counts))
    lookup = np.full(int(ids.max()) + 1, -1, dtype=np.int64)
    lookup[ids[order]] = np.arange(order.shape[0])
    assigned = labels >= 0
    out[assigned] = lookup[labels[assigned]]
    return out


def _dissolve_small(vectors: np.ndarray, labels: np.ndarray, min_size: int, min_similarity: float) -> np.ndarray:
    """Move members of themes smaller than ``min_size`` to the nearest big theme or to -1."""
    labels = labels.copy()
    counts = np.bincount(labels[labels >= 0]) if (labels >= 0).any() else np.zeros(0, dtype=np.int64)
    small = np.isin(labels, np.flatnonzero(counts < min_size)) | (labels < 0)
    labels[small] = -1
    labels = _relabel_by_size(labels)
    k = int(labels.max()) + 1
    if k == 0 or not small.any():
        return labels
    cents = _centroids(vectors, labels, k)
    labels[small] = assign_to_existing(vectors[small], cents, min_similarity=min_similarity)
    return labels


def _drop_far_members(vectors: np.ndarray, labels: np.ndarray, min_similarity: float) -> np.ndarray:
    """Unassign members whose cosine to the mean of the *other* members is below ``min_similarity``.

    Leaving the member out matters for small themes: five random directions in 384-d
    have cosine ~0.45 to their own mean (each member is a fifth of it) but ~0 to the
    mean of the other four. Themes left smaller than ``MIN_THEME_SIZE`` are dissolved.
    """
    labels = labels.copy()
    k = int(labels.max()) + 1
    if k == 0:
        return labels
    sums = _label_sums(vectors, labels, k)
    member = np.flatnonzero(labels >= 0)
    sim = np.empty(member.size, dtype=np.float64)
    for start in range(0, member.size, LABEL_SUM_BLOCK_ROWS):  # float64 rows of one block at a time
        rows = member[start : start + LABEL_SUM_BLOCK_ROWS]
        own = vectors[rows]
        others = sums[labels[rows]] - own
        norms = np.maximum(np.linalg.norm(others, axis=1), 1e-12)
        sim[start : start + rows.size] = np.einsum("ij,ij->i", own, others) / norms
    labels[member[sim < min_similarity]] = -1
    counts = np.bincount(labels[labels >= 0], minlength=k)
    labels[np.isin(labels, np.flatnonzero(counts < MIN_THEME_SIZE))] = -1
    return _relabel_by_size(labels)


def _discover(x: np.ndarray, seed: int) -> np.ndarray:
    """One discovery pass: kNN graph, Leiden at the chosen resolution, small and far members cleaned up."""
    if x.shape[0] < MIN_THEME_SIZE:
        return np.full(x.shape[0], -1, dtype=np.int64)
    idx, sim = knn(x, KNN_NEIGHBOURS, seed=seed)
    labels = _best_partition(x, knn_adjacency(idx, sim), seed)
    labels = _dissolve_small(x, labels, MIN_THEME_SIZE, ASSIGN_MIN_SIMILARITY)
    return _drop_far_members(x, labels, MEMBER_MIN_SIMILARITY)


def cluster_vectors(vectors: np.ndarray, *, texts: list[str] | None = None, random_state: int = 0) -> Clustering:
    """Discover themes in L2-normalised sentence embeddings; the number of themes is chosen here.

    The same parameters apply to every dataset. ``texts`` (same order as ``vectors``) is
    accepted for lexical refinement but currently unused: fusing TF-IDF features into the
    graph was measured to help STAR (+0.02 NMI) and hurt BANKING77 (-0.03 NMI), and
    self-training refinement did not beat the plain partition on either.
    """
    x = l2_normalise(vectors)
    n = x.shape[0]
    if n == 0:
        return Clustering(labels=np.zeros(0, dtype=np.int64), centroids=np.zeros((0, x.shape[1]), dtype=np.float32))
    if n < MIN_THEME_SIZE:
        return Clustering(labels=np.full(n, -1, dtype=np.int64), centroids=np.zeros((0, x.shape[1]), dtype=np.float32))
    labels = _discover(x, random_state)
    for _ in range(LEFTOVER_PASSES):
        rest = np.flatnonzero(labels < 0)
        if rest.size < LEFTOVER_MIN_ITEMS:
            break
        found = _discover(x[rest], random_state)
        if (found < 0).all():
            break
        offset = int(labels.max()) + 1
        labels[rest[found >= 0]] = found[found >= 0] + offset
        labels = _relabel_by_size(labels)
    k = int(labels.max()) + 1
    logger.info("discovered %d themes among %d items (%d unassigned)", k, n, int((labels < 0).sum()))
    return Clustering(labels=labels, centroids=_centroids(x, labels, k))


def assign_to_existing(
    vectors: np.ndarray, centroids: np.ndarray, *, min_similarity: float | None = None
) -> np.ndarray:
    """Index of the most similar existing theme centroid per vector, or -1 when none reaches the threshold.

    ``min_similarity`` defaults to ``ASSIGN_MIN_SIMILARITY`` (cosine).
    """
    threshold = ASSIGN_MIN_SIMILARITY if min_similarity is None else float(min_similarity)
    x = l2_normalise(vectors)
    if x.shape[0] == 0 or centroids.shape[0] == 0:
        return np.full(x.shape[0], -1, dtype=np.int64)
    out = np.empty(x.shape[0], dtype=np.int64)
    c = l2_normalise(centroids)
    for start in range(0, x.shape[0], KNN_BLOCK_ROWS):
        s = x[start : start + KNN_BLOCK_ROWS] @ c.T
        best = s.argmax(axis=1)
        ok = s[np.arange(s.shape[0]), best] >= threshold
        out[start : start + KNN_BLOCK_ROWS] = np.where(ok, best, -1)
    return out
