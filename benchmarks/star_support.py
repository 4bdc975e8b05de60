"""Walking-skeleton benchmark: import and run on star-support, per-phase wall time, theme purity.

Labels (`labels.task`) are read only after the run, from the file, to say for each of the
top themes which true task dominates it and how pure it is. Writes
benchmarks/results/star_support.json.

    .venv/bin/python benchmarks/star_support.py [--data ../shared/data/star-support/conversations.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DEFAULT_DATA = REPO.parent / "shared" / "data" / "star-support" / "conversations.jsonl"
RESULTS = REPO / "benchmarks" / "results" / "star_support.json"
TOP_THEMES = 15  # themes reported: as many as star-support has tasks


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if not args.data.is_file():
        sys.stderr.write(f"benchmark data not found: {args.data} (expected ../shared/data beside the repository)\n")
        return 2
    home = Path(tempfile.mkdtemp(prefix="threadline-bench-"))
    os.environ["THREADLINE_HOME"] = str(home)
    os.environ.pop("THREADLINE_DATABASE_URL", None)

    from sqlalchemy import select

    from threadline.ai.embeddings import get_embedder
    from threadline.connectors.files.importer import import_file
    from threadline.db.engine import get_engine, session_scope
    from threadline.db.models import Conversation, RunTheme, ThemeMember
    from threadline.engine.runs import create_run, execute_run
    from threadline.read.runs import run_view

    timings: dict[str, float] = {}
    started = time.perf_counter()
    engine = get_engine()
    timings["database_start_and_migrate_s"] = time.perf_counter() - started

    t = time.perf_counter()
    imported = import_file(engine, args.data, source_name="star")
    timings["import_s"] = time.perf_counter() - t

    t = time.perf_counter()
    embedder = get_embedder()
    timings["model_load_s"] = time.perf_counter() - t

    with session_scope(engine) as session:
        run_id = create_run(session, source="star").id
    t = time.perf_counter()
    first = execute_run(engine, run_id, embedder)
    timings["run_s"] = time.perf_counter() - t
    with session_scope(engine) as session:
        view = run_view(session, run_id)
    for phase, counters in (view or {}).get("counters", {}).items():
        timings[f"phase_{phase}_s"] = counters.get("duration_s") or 0.0

    with session_scope(engine) as session:
        second_id = create_run(session, source="star").id
    t = time.perf_counter()
    second = execute_run(engine, second_id, embedder)
    timings["second_run_s"] = time.perf_counter() - t

    labels = {}
    with args.data.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            labels[record["id"]] = record["labels"]["task"]
    with session_scope(engine) as session:
        rows = session.execute(
            select(ThemeMember.theme_id, RunTheme.name, Conversation.external_id)
            .join(RunTheme, (RunTheme.theme_id == ThemeMember.theme_id) & (RunTheme.run_id == ThemeMember.run_id))
            .join(Conversation, Conversation.id == ThemeMember.conversation_id)
            .where(ThemeMember.run_id == first.id)
        ).all()
    members: dict[int, list[str]] = {}
    names: dict[int, str] = {}
    for theme_id, name, external_id in rows:
        members.setdefault(theme_id, []).append(labels[external_id])
        names[theme_id] = name
    top = sorted(members, key=lambda tid: -len(members[tid]))[:TOP_THEMES]
    themes = []
    for theme_id in top:
        task, count = Counter(members[theme_id]).most_common(1)[0]
        themes.append(
            {
                "theme": names[theme_id],
                "size": len(members[theme_id]),
                "dominant_task": task,
                "purity": round(count / len(members[theme_id]), 3),
            }
        )
    assigned = sum(len(m) for m in members.values())
    weighted_purity = sum(Counter(m).most_common(1)[0][1] for m in members.values()) / max(assigned, 1)
    result = {
        "data": str(args.data),
        "conversations": imported.report.records,
        "import": {"inserted": imported.stats.inserted, "problems": len(imported.report.problems)},
        "timings": {k: round(v, 2) for k, v in timings.items()},
        "first_run": {"counters": first.counters},
        "second_run": {
            "embeddings_computed": second.counters["embed"]["computed"],
            "embeddings_reused": second.counters["embed"]["reused"],
        },
        "themes": len(members),
        "assigned_share": round(assigned / max(imported.report.records, 1), 3),
        "weighted_purity": round(weighted_purity, 3),
        "top_themes": themes,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
