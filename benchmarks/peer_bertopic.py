"""Threadline's discovery beside BERTopic (UMAP + HDBSCAN) on the same embeddings.

BERTopic is the best-known open-source peer. It is installed for this benchmark only,
never a runtime dependency (it does not pull another torch; checked with
``pip install --dry-run``)::

    .venv/bin/pip install bertopic==0.17.4 umap-learn==0.5.12 hdbscan==0.8.44
    .venv/bin/python benchmarks/peer_bertopic.py [--seeds 0 1 2]

Both systems get the same all-MiniLM-L6-v2 vectors (cached like discovery_quality.py).
BERTopic runs with its defaults (UMAP n_neighbors=15, n_components=5, min_dist=0,
cosine; HDBSCAN min_cluster_size=10, eom) and a fixed UMAP seed, scored twice: as is
(its outliers, topic -1, each counted as a singleton, as Threadline's unassigned are) and
after its default outlier reduction (``reduce_outliers``). Threadline runs
``cluster_vectors`` with the same seed. Labels are read only for scoring.

Writes benchmarks/results/peer_bertopic.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))
sys.path.insert(0, str(ROOT / "benchmarks"))

from discovery_quality import embed, load_banking77, load_star  # noqa: E402

from threadline.eval.metrics import ari, nmi  # noqa: E402
from threadline.themes.clustering import CLUSTERING_VERSION, cluster_vectors  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results" / "peer_bertopic.json"


def _scores(labels: list[str], pred: np.ndarray, seconds: float) -> dict[str, Any]:
    return {
        "nmi": round(nmi(labels, pred), 4),
        "ari": round(ari(labels, pred), 4),
        "themes": int(np.unique(pred[pred >= 0]).shape[0]),
        "unassigned_share": round(float((pred < 0).mean()), 4),
        "seconds": round(seconds, 1),
    }


def bertopic_runs(texts: list[str], vectors: np.ndarray, labels: list[str], seed: int) -> dict[str, Any]:
    from bertopic import BERTopic
    from umap import UMAP

    umap_model = UMAP(n_neighbors=15, n_components=5, min_dist=0.0, metric="cosine", random_state=seed)
    model = BERTopic(umap_model=umap_model, embedding_model=None, calculate_probabilities=False)
    t0 = time.perf_counter()
    topics, _ = model.fit_transform(texts, embeddings=vectors)
    fitted = time.perf_counter() - t0
    raw = np.asarray(topics, dtype=np.int64)
    t1 = time.perf_counter()
    reduced = np.asarray(model.reduce_outliers(texts, list(raw)), dtype=np.int64)
    reduce_s = time.perf_counter() - t1
    return {"default": _scores(labels, raw, fitted), "outliers_reduced": _scores(labels, reduced, fitted + reduce_s)}


def threadline_run(texts: list[str], vectors: np.ndarray, labels: list[str], seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    result = cluster_vectors(vectors, texts=texts, random_state=seed)
    return _scores(labels, result.labels, time.perf_counter() - t0)


def _spread(runs: list[dict[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in ("nmi", "ari", "themes"):
        values = [r[key] for r in runs]
        out[key] = {"mean": round(statistics.mean(values), 4), "min": min(values), "max": max(values)}
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    datasets = [("banking77-test", lambda: load_banking77("test")), ("star-support-task", load_star)]
    out: dict[str, Any] = {"benchmark": "peer_bertopic", "clustering": CLUSTERING_VERSION, "seeds": args.seeds}
    for name, loader in datasets:
        texts, labels = loader()
        vectors, _ = embed(texts)
        rows = {"threadline": [], "bertopic_default": [], "bertopic_outliers_reduced": []}
        for seed in args.seeds:
            rows["threadline"].append(threadline_run(texts, vectors, labels, seed))
            peer = bertopic_runs(texts, vectors, labels, seed)
            rows["bertopic_default"].append(peer["default"])
            rows["bertopic_outliers_reduced"].append(peer["outliers_reduced"])
            sys.stderr.write(
                f"{name} seed {seed}: threadline {rows['threadline'][-1]} | bertopic {peer['default']} | "
                f"reduced {peer['outliers_reduced']}\n"
            )
        out[name] = {system: {"runs": runs, "spread": _spread(runs)} for system, runs in rows.items()}
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    sys.stderr.write(f"wrote {RESULTS}\n")


if __name__ == "__main__":
    main()
