"""Clustering quality metrics against labelled data.

Used by the discovery benchmarks and by ``threadline eval``. Predicted labels follow the
discovery convention: ``0..k-1`` are themes and ``-1`` marks an unassigned item.
Unassigned items must count *against* the result, so before scoring every ``-1`` is
turned into its own singleton cluster (the conservative choice: a singleton never
agrees with any other item, so it lowers recall, ARI and accuracy; lumping all
outliers into one cluster would instead reward grouping unrelated leftovers).
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.optimize import linear_sum_assignment
from scipy.sparse import coo_matrix
from sklearn.metrics import adjusted_rand_score, normalized_mutual_info_score

__all__ = [
    "OUTLIER_POLICY",
    "label_words",
    "naming_agreement",
    "ari",
    "clustering_accuracy",
    "nmi",
    "outliers_as_singletons",
    "pairwise_prf",
    "summary",
]

OUTLIER_POLICY = "singletons"  # each unassigned item is its own cluster (conservative)


def _encode(labels: Sequence[Any] | np.ndarray) -> np.ndarray:
    """Map arbitrary hashable labels to dense ints 0..m-1."""
    _, codes = np.unique(np.asarray(labels).astype(str), return_inverse=True)
    return codes.astype(np.int64)


def outliers_as_singletons(pred: Sequence[int] | np.ndarray) -> np.ndarray:
    """Return ``pred`` with each ``-1`` replaced by a fresh, unique cluster id."""
    out = np.asarray(pred, dtype=np.int64).copy()
    mask = out < 0
    start = int(out.max()) + 1 if (~mask).any() else 0
    out[mask] = np.arange(start, start + int(mask.sum()))
    return out


def _prepare(true: Sequence[Any] | np.ndarray, pred: Sequence[int] | np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    t = _encode(true)
    p = outliers_as_singletons(pred)
    if t.shape != p.shape:
        raise ValueError(f"label arrays differ in length: {t.shape[0]} vs {p.shape[0]}")
    return t, p


def nmi(true: Sequence[Any] | np.ndarray, pred: Sequence[int] | np.ndarray) -> float:
    """Normalised mutual information (arithmetic mean normalisation, sklearn default)."""
    t, p = _prepare(true, pred)
    return float(normalized_mutual_info_score(t, p))


def ari(true: Sequence[Any] | np.ndarray, pred: Sequence[int] | np.ndarray) -> float:
    """Adjusted Rand index."""
    t, p = _prepare(true, pred)
    return float(adjusted_rand_score(t, p))


def _contingency(t: np.ndarray, p: np.ndarray) -> np.ndarray:
    """Dense (predicted x true) count table; both arrays are dense ints."""
    m = coo_matrix((np.ones_like(t), (p, t)), shape=(int(p.max()) + 1, int(t.max()) + 1))
    return np.asarray(m.todense())


def clustering_accuracy(true: Sequence[Any] | np.ndarray, pred: Sequence[int] | np.ndarray) -> float:
    """Share of items correct under the best one-to-one cluster-to-label matching (Hungarian).

    Predicted clusters left without a partner (more clusters than labels, or singleton
    outliers) count as wrong.
    """
    t, p = _prepare(true, pred)
    table = _contingency(t, p)
    rows, cols = linear_sum_assignment(table, maximize=True)
    return float(table[rows, cols].sum() / t.shape[0])


def pairwise_prf(true: Sequence[Any] | np.ndarray, pred: Sequence[int] | np.ndarray) -> dict[str, float]:
    """Pairwise precision, recall and F1 over all item pairs.

    Precision: share of pairs put together by the prediction that share a true label.
    Recall: share of truly same-label pairs that the prediction puts together.
    """
    t, p = _prepare(true, pred)
    table = _contingency(t, p).astype(np.float64)
    pairs = lambda x: float((x * (x - 1) / 2).sum())  # noqa: E731 - tiny local helper
    together_both = pairs(table)
    together_pred = pairs(table.sum(axis=1))
    together_true = pairs(table.sum(axis=0))
    precision = together_both / together_pred if together_pred else 0.0
    recall = together_both / together_true if together_true else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return {"precision": precision, "recall": recall, "f1": f1}


def summary(true: Sequence[Any] | np.ndarray, pred: Sequence[int] | np.ndarray) -> dict[str, Any]:
    """All metrics in one JSON-ready dict (rounded to 4 decimals)."""
    p_raw = np.asarray(pred, dtype=np.int64)
    prf = pairwise_prf(true, pred)
    return {
        "n_items": int(p_raw.shape[0]),
        "n_labels": int(np.unique(np.asarray(true).astype(str)).shape[0]),
        "n_themes": int(np.unique(p_raw[p_raw >= 0]).shape[0]),
        "unassigned_share": round(float((p_raw < 0).mean()) if p_raw.size else 0.0, 4),
        "outlier_policy": OUTLIER_POLICY,
        "nmi": round(nmi(true, pred), 4),
        "ari": round(ari(true, pred), 4),
        "accuracy": round(clustering_accuracy(true, pred), 4),
        "pairwise_precision": round(prf["precision"], 4),
        "pairwise_recall": round(prf["recall"], 4),
        "pairwise_f1": round(prf["f1"], 4),
    }


_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])")
_SEPARATORS = re.compile(r"[_\-\s]+")


def label_words(label: str) -> str:
    """A label as words for matching names: split on ``_``, ``-`` and camelCase, lower-cased."""
    return _SEPARATORS.sub(" ", _CAMEL.sub(" ", label)).strip().lower()


def naming_agreement(
    names: Mapping[int, str],
    dominant: Mapping[int, str],
    labels: Sequence[str],
    embed: Callable[[list[str]], np.ndarray],
) -> dict[str, Any]:
    """Does each theme's name point at its dominant label? (the `naming` block of `threadline eval`)

    Each name and each label (as :func:`label_words`) is embedded with the local model; a
    theme agrees when the label nearest to its name is its dominant label. ``chance`` is
    the share expected if names were shuffled among the themes: sum over labels of
    (share of names nearest to it) x (share of themes dominated by it).
    """
    ids = sorted(names)
    distinct = sorted(set(labels))
    if not ids or not distinct:
        return {"themes": 0, "share": None, "chance": None, "per_theme": []}
    label_vectors = embed([label_words(label) for label in distinct])
    name_vectors = embed([names[t] for t in ids])
    nearest = [distinct[i] for i in np.argmax(name_vectors @ label_vectors.T, axis=1)]
    agree = [nearest[k] == dominant[t] for k, t in enumerate(ids)]
    nearest_share = Counter(nearest)
    dominant_share = Counter(dominant[t] for t in ids)
    chance = sum(nearest_share[label] * dominant_share[label] for label in distinct) / len(ids) ** 2
    return {
        "themes": len(ids),
        "share": round(sum(agree) / len(ids), 4),
        "chance": round(chance, 4),
        "uniform_chance": round(1 / len(distinct), 4),
        "per_theme": [
            {"theme": t, "name": names[t], "nearest_label": nearest[k], "agrees": agree[k]} for k, t in enumerate(ids)
        ],
    }
