"""End-to-end throughput on the 10,003 BANKING77 training queries vs embedding alone.

Measured in one process, one after the other, so the ratio is robust to machine noise:
1. embedding-only: the local model embeds every query text (the floor any pipeline pays);
2. end to end: a normal run (embed + classify + discover + name + stories) on a fresh
   scratch database holding the same queries.
Target: end to end <= 1.25 x embedding-only. Writes benchmarks/results/throughput_10k.json.

    .venv/bin/python benchmarks/throughput_10k.py [--limit N]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "banking77" / "train.csv"
RESULTS = REPO / "benchmarks" / "results" / "throughput_10k.json"
TARGET_RATIO = 1.25


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--limit", type=int, default=None, help="Use only the first N rows (smoke runs).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.stderr.write(f"benchmark data not found: {args.data} (expected ../shared/data beside the repository)\n")
        return 2
    os.environ.setdefault("THREADLINE_HOME", tempfile.mkdtemp(prefix="threadline-bench-"))
    os.environ.pop("THREADLINE_DATABASE_URL", None)
    data = args.data
    if args.limit:
        data = Path(tempfile.mkdtemp()) / "subset.csv"
        with args.data.open(encoding="utf-8") as src, data.open("w", encoding="utf-8") as dst:
            for i, line in enumerate(src):
                if i > args.limit:
                    break
                dst.write(line)

    from threadline.ai.embeddings import get_embedder
    from threadline.db.engine import session_scope
    from threadline.db.scratch import scratch_engine
    from threadline.pipeline.runs import create_run, execute_run
    from threadline.pipeline.service import run_view
    from threadline.sources.importer import import_file

    with data.open(encoding="utf-8", newline="") as handle:
        texts = [row["text"] for row in csv.DictReader(handle)]
    embedder = get_embedder()
    embedder.embed(texts[:64])  # warm-up: first call pays one-off initialisation

    t = time.perf_counter()
    embedder.embed(texts)
    embed_only = time.perf_counter() - t

    with scratch_engine(prefix="threadline_bench") as engine:
        t = time.perf_counter()
        imported = import_file(engine, data, source_name="banking77")
        import_seconds = time.perf_counter() - t
        with session_scope(engine) as session:
            run_id = create_run(session, source="banking77").id
        t = time.perf_counter()
        run = execute_run(engine, run_id, embedder)
        end_to_end = time.perf_counter() - t
        with session_scope(engine) as session:
            view = run_view(session, run_id)
    phase_seconds = {phase: c.get("duration_s") for phase, c in (view or {}).get("counters", {}).items()}
    ratio = end_to_end / embed_only
    result = {
        "texts": len(texts),
        "imported": imported.stats.inserted,
        "embedding_only_s": round(embed_only, 2),
        "end_to_end_s": round(end_to_end, 2),
        "ratio": round(ratio, 3),
        "target_ratio": TARGET_RATIO,
        "meets_target": ratio <= TARGET_RATIO,
        "phase_seconds": phase_seconds,
        "import_s": round(import_seconds, 2),
        "run_status": run.status,
        "themes": run.counters.get("themes", {}),
        "stories": run.counters.get("stories", {}),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
