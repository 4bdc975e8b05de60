"""What an HNSW index on `embeddings` costs a run: inserting 10,000 vectors with and without it.

Inserts VECTORS 384-dimension unit vectors (clustered, like sentence embeddings) in batches
of BATCH rows into a bare table, as the embed stage does (binary, ON CONFLICT DO NOTHING),
once per index variant, and also times building each variant in bulk afterwards.
Writes benchmarks/results/vector_index_cost.json; the figures back migration 0004.

    .venv/bin/python benchmarks/vector_index_cost.py
"""

from __future__ import annotations

import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "vector_index_cost.json"
VECTORS = 10_000  # the run size
DIMENSIONS = 384  # all-MiniLM-L6-v2
BATCH = 256  # rows per transaction: the embed stage's batch size
CLUSTERS = 150  # topics the synthetic vectors gather around (BANKING77 has 77 intents)

VARIANTS = {
    "no index": None,
    "hnsw m=16 ef_construction=64 (migration 0001)": "USING hnsw ((v::vector(384)) vector_cosine_ops)",
    "hnsw m=16 ef_construction=32": "USING hnsw ((v::vector(384)) vector_cosine_ops) WITH (ef_construction = 32)",
    "hnsw m=8 ef_construction=32": "USING hnsw ((v::vector(384)) vector_cosine_ops) WITH (m = 8, ef_construction = 32)",
    "halfvec hnsw m=16 ef_construction=64": "USING hnsw ((v::halfvec(384)) halfvec_cosine_ops)",
}


def vectors(seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(CLUSTERS, DIMENSIONS))
    x = centres[rng.integers(0, CLUSTERS, VECTORS)] + rng.normal(scale=0.7, size=(VECTORS, DIMENSIONS))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def main() -> int:
    os.environ.setdefault("THREADLINE_HOME", tempfile.mkdtemp(prefix="threadline-bench-"))
    os.environ.pop("THREADLINE_DATABASE_URL", None)
    import psycopg
    from pgvector.psycopg import register_vector

    from threadline.db.scratch import scratch_engine

    x = vectors()
    results = []
    with scratch_engine(prefix="threadline_vecidx") as engine:
        url = engine.url.set(drivername="postgresql").render_as_string(hide_password=False)
        with psycopg.connect(url, autocommit=True) as conn:
            register_vector(conn)
            for name, index in VARIANTS.items():
                conn.execute("DROP TABLE IF EXISTS t, t_bulk")
                conn.execute("CREATE TABLE t (id bigint PRIMARY KEY, v vector)")
                if index:
                    conn.execute(f"CREATE INDEX ON t {index}")
                start = time.perf_counter()
                for first in range(0, VECTORS, BATCH):
                    with conn.transaction(), conn.cursor() as cursor:
                        cursor.executemany(
                            "INSERT INTO t VALUES (%s, %b) ON CONFLICT DO NOTHING",
                            [(i, x[i]) for i in range(first, min(first + BATCH, VECTORS))],
                        )
                insert_s = time.perf_counter() - start
                bulk_s = None
                if index:
                    conn.execute("CREATE TABLE t_bulk AS SELECT * FROM t")
                    start = time.perf_counter()
                    conn.execute(f"CREATE INDEX ON t_bulk {index}")
                    bulk_s = round(time.perf_counter() - start, 2)
                results.append(
                    {
                        "variant": name,
                        "insert_s": round(insert_s, 2),
                        "insert_ms_per_vector": round(insert_s / VECTORS * 1000, 3),
                        "bulk_build_s": bulk_s,
                    }
                )
                sys.stdout.write(f"{name:48s} insert {insert_s:6.2f} s  bulk build {bulk_s}\n")
    out = {"vectors": VECTORS, "dimensions": DIMENSIONS, "batch": BATCH, "results": results}
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(out, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
