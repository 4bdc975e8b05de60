"""Discovery at scale: time and peak RSS of cluster_vectors on synthetic embeddings.

Vectors are a Gaussian mixture on the unit sphere in 384 dimensions (the MiniLM size):
Zipf-distributed theme sizes, so there are big and small themes as in real support
data. Each size runs in its own subprocess so its peak RSS (``ru_maxrss``) is its own.

    .venv/bin/python benchmarks/discovery_scale.py            # 10k and 100k
    .venv/bin/python benchmarks/discovery_scale.py --sizes 10000

Writes benchmarks/results/discovery_scale.json.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

RESULTS = Path(__file__).resolve().parent / "results" / "discovery_scale.json"
DIM = 384  # all-MiniLM-L6-v2 embedding size
ITEMS_PER_THEME = 100  # mean synthetic theme size: 10k items -> 100 themes, 100k -> 1,000
NOISE = 1.0  # per-item noise norm relative to the unit centre: member-to-centre cosine ~0.7, as MiniLM themes
ZIPF_EXPONENT = 1.1  # theme-size skew: a few big themes and a long tail, as in support data
MAX_RSS_GIB = 4.0  # issue 4: discovery on 100k vectors must stay under 4 GiB peak RSS
CHILD_TIMEOUT_S = 3600  # one size may take minutes on 2 shared cores; an hour means something is wrong


def synthetic(n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``n`` unit vectors from a Zipf-sized Gaussian mixture on the sphere, and their true themes."""
    rng = np.random.default_rng(seed)
    k = max(2, n // ITEMS_PER_THEME)
    weights = 1.0 / np.arange(1, k + 1) ** ZIPF_EXPONENT
    truth = rng.choice(k, size=n, p=weights / weights.sum())
    centres = rng.normal(size=(k, DIM)).astype(np.float32)
    centres /= np.linalg.norm(centres, axis=1, keepdims=True)
    x = centres[truth]
    for start in range(0, n, 10_000):  # in blocks: a full float64 noise matrix at 100k would be 300 MB
        stop = min(start + 10_000, n)
        x[start:stop] += (NOISE / np.sqrt(DIM)) * rng.standard_normal((stop - start, DIM), dtype=np.float32)
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    return x, truth


def child(n: int) -> dict[str, object]:
    """Run discovery on ``n`` synthetic vectors in this process; return time, RSS and quality."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    from threadline.eval.metrics import ari, nmi
    from threadline.themes.clustering import CLUSTERING_VERSION, cluster_vectors
    from threadline.themes.hierarchy import group_themes

    x, truth = synthetic(n)
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    cpu0 = time.process_time()
    t0 = time.perf_counter()
    result = cluster_vectors(x, random_state=0)
    t1 = time.perf_counter()
    cpu1 = time.process_time()
    groups = group_themes(result.centroids, result.sizes())
    t2 = time.perf_counter()
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # Linux: KiB
    return {
        "n": n,
        "clustering_version": CLUSTERING_VERSION,
        "cluster_seconds": round(t1 - t0, 2),
        "cluster_cpu_seconds": round(cpu1 - cpu0, 2),  # all threads; compare with wall time to see contention
        "load_average_1min": round(os.getloadavg()[0], 2),
        "group_seconds": round(t2 - t1, 2),
        "peak_rss_gib": round(peak_kib / 2**20, 3),
        "rss_before_discovery_gib": round(rss_before / 2**20, 3),
        "n_true_themes": int(np.unique(truth).shape[0]),
        "n_themes": int(result.centroids.shape[0]),
        "n_groups": int(np.unique(groups).shape[0]) if groups.size else 0,
        "unassigned_share": round(float((result.labels < 0).mean()), 4),
        "nmi": round(nmi(truth, result.labels), 4),
        "ari": round(ari(truth, result.labels), 4),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        json.dump(child(args.child), sys.stdout)
        return
    runs = []
    for n in args.sizes:
        proc = subprocess.run(
            [sys.executable, __file__, "--child", str(n)],
            capture_output=True,
            text=True,
            timeout=CHILD_TIMEOUT_S,
            check=True,
        )
        run = json.loads(proc.stdout)
        run["within_rss_limit"] = run["peak_rss_gib"] <= MAX_RSS_GIB
        runs.append(run)
        sys.stderr.write(f"{json.dumps(run)}\n")
    out: dict[str, object] = {
        "benchmark": "discovery_scale",
        "machine": {"python": platform.python_version(), "cpus": _cpus()},
        "rss_limit_gib": MAX_RSS_GIB,
        "runs": runs,
    }
    if len(runs) >= 2:
        a, b = runs[0], runs[-1]
        out["time_ratio"] = round(b["cluster_seconds"] / max(a["cluster_seconds"], 1e-9), 2)
        out["cpu_time_ratio"] = round(b["cluster_cpu_seconds"] / max(a["cluster_cpu_seconds"], 1e-9), 2)
        out["size_ratio"] = round(b["n"] / a["n"], 2)
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    sys.stderr.write(f"wrote {RESULTS}\n")


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
