"""Stability of themes across runs of one scope: 90% -> 100% of the data, and a rerun on unchanged data.

For star-support (2,729 dialogues; the newest 10% by creation time arrive later) and
BANKING77 test (3,080 queries, no timestamps; every tenth row arrives later), through the
real pipeline on an embedded database:

1. import 90% into one source and run (run A);
2. import the other 10% and run again (run B): the share of run A's themes with at least
   10 members whose lineage id *and* name run B keeps (target >= 90%), and the mean member
   overlap (Jaccard on the conversations both runs contain) of the kept themes;
3. run again on unchanged data (run C): report (Markdown, as `threadline report`), theme
   tree (as `threadline themes --json`) and memberships byte-identical to run B.

For contrast, the same 90% -> 100% step with the whole 100% clustered afresh (no carrying,
no joining) and matched to run A by members with the same identity rule: what the design
would keep without carrying earlier placements forward.

    .venv/bin/python benchmarks/stability.py

Writes benchmarks/results/stability.json.
"""

from __future__ import annotations

import csv
import json
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATA = REPO.parent / "shared" / "data"
RESULTS = REPO / "benchmarks" / "results" / "stability.json"
LATER_SHARE = 0.10  # share of conversations that arrive after the first run
MIN_MEMBERS = 10  # themes of at least this many members are counted (the bar)
TARGET_KEPT = 0.90  # share of those themes that must keep id and name


def star_files(directory: Path) -> tuple[Path, Path, str]:
    path = DATA / "star-support" / "conversations.jsonl"
    records = [json.loads(line) for line in path.open(encoding="utf-8")]
    records.sort(key=lambda r: (r["created_at"], r["id"]))
    cut = int(len(records) * (1 - LATER_SHARE))
    return _write(directory, "star", records[:cut], records[cut:]) + ("newest 10% by created_at",)


def banking_files(directory: Path) -> tuple[Path, Path, str]:
    path = DATA / "banking77" / "test.csv"
    with path.open(newline="", encoding="utf-8") as handle:
        rows = list(csv.DictReader(handle))
    records = [
        {"id": f"b{i:05d}", "messages": [{"author": "customer", "text": row["text"]}]} for i, row in enumerate(rows)
    ]
    every = round(1 / LATER_SHARE)
    base = [r for i, r in enumerate(records) if i % every != every - 1]
    later = [r for i, r in enumerate(records) if i % every == every - 1]
    return _write(directory, "banking77", base, later) + ("every tenth row (no timestamps)",)


def _write(directory: Path, name: str, base: list[dict], later: list[dict]) -> tuple[Path, Path]:
    paths = (directory / f"{name}-base.jsonl", directory / f"{name}-later.jsonl")
    for path, part in zip(paths, (base, later), strict=True):
        path.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
    return paths


def measure(engine: Any, embedder: Any, name: str, files: tuple[Path, Path, str]) -> dict[str, Any]:
    import numpy as np
    from sqlalchemy import select

    from threadline.ai.embeddings import MODEL_NAME
    from threadline.connectors.files.importer import import_file
    from threadline.db.engine import session_scope
    from threadline.db.models import Run, RunTheme, ThemeMember
    from threadline.db.vectors import load_run_vectors
    from threadline.engine.runs import create_run, execute_run
    from threadline.read.stories import list_stories
    from threadline.read.themes import theme_tree
    from threadline.read.views import run_ref
    from threadline.stages.embed import MODEL_PARAM as EMBEDDING_MODEL_PARAM
    from threadline.stories.export import report_title, to_markdown
    from threadline.themes.clustering import cluster_vectors
    from threadline.themes.lineage import match_lineages

    base, later, how = files
    timings: dict[str, float] = {}

    def run(label: str) -> int:
        with session_scope(engine) as session:
            run_id = create_run(session, source=name).id
        started = time.perf_counter()
        done = execute_run(engine, run_id, embedder)
        timings[label] = round(time.perf_counter() - started, 2)
        assert done.status == "succeeded", done.error
        return run_id

    import_file(engine, base, source_name=name)
    run_a = run("run_a_s")
    import_file(engine, later, source_name=name)
    run_b = run("run_b_s")
    run_c = run("run_c_s")

    with session_scope(engine) as session:

        def themes(run_id: int) -> dict[int, tuple[str, int]]:
            return {
                r.theme_id: (r.name, r.size)
                for r in session.execute(
                    select(RunTheme).where(RunTheme.run_id == run_id, RunTheme.level == 1)
                ).scalars()
            }

        def members(run_id: int) -> dict[int, set[int]]:
            found: dict[int, set[int]] = {}
            for cid, theme_id in session.execute(
                select(ThemeMember.conversation_id, ThemeMember.theme_id).where(ThemeMember.run_id == run_id)
            ):
                found.setdefault(theme_id, set()).add(cid)
            return found

        def report(run_id: int) -> str:
            ref = run_ref(session, run_id)
            stories = list_stories(session, run_id=run_id, limit=1000, offset=0)
            return to_markdown(stories, title=report_title(ref.sources, ref.period_start, ref.period_end))

        a, b = themes(run_a), themes(run_b)
        members_a, members_b, members_c = members(run_a), members(run_b), members(run_c)
        big = [t for t, (_, size) in a.items() if size >= MIN_MEMBERS]
        kept = [t for t in big if t in b and b[t][0] == a[t][0]]
        in_a = {cid for m in members_a.values() for cid in m}
        overlaps = []
        for t in kept:
            now = members_b[t] & in_a | members_a[t]  # common ground: the conversations run A contained
            overlaps.append(len(members_a[t] & members_b[t]) / len(now))
        tree_b = json.dumps(theme_tree(session, run_id=run_b), sort_keys=True, default=str)
        tree_c = json.dumps(theme_tree(session, run_id=run_c), sort_keys=True, default=str)
        rerun = {
            "report_identical": report(run_b) == report(run_c),
            "themes_json_identical": tree_b == tree_c,
            "memberships_identical": members_b == members_c,
            "stories": len(list_stories(session, run_id=run_c, limit=1000, offset=0)),
        }
        # Contrast: cluster all of run B's conversations afresh and match to run A by members,
        # from the vectors of the backend run B was planned with (not necessarily torch's).
        planned = session.get(Run, run_b)
        model = str((planned.params if planned else {}).get(EMBEDDING_MODEL_PARAM) or MODEL_NAME)
        vectors = load_run_vectors(session, run_b, model)
    ids = sorted(vectors)
    matrix = np.stack([vectors[i] for i in ids]).astype(np.float32)
    labels = cluster_vectors(matrix, random_state=0).labels
    fresh: dict[int, set[int]] = {}
    for cid, label in zip(ids, labels.tolist(), strict=True):
        if label >= 0:
            fresh.setdefault(label, set()).add(cid)
    identity = match_lineages(
        [frozenset(c) for c in fresh.values()], {t: frozenset(m) for t, m in members_a.items()}, frozenset(in_a)
    )
    continued = set(identity.lineages)
    return {
        "later_conversations": how,
        "runs": {"a_90pct": run_a, "b_100pct": run_b, "c_rerun": run_c},
        "timings": timings,
        "themes_a": len(a),
        "themes_b": len(b),
        "themes_a_with_10_plus_members": len(big),
        "kept_id_and_name": len(kept),
        "kept_share": round(len(kept) / max(len(big), 1), 3),
        "target_share": TARGET_KEPT,
        "mean_member_jaccard_of_kept": round(sum(overlaps) / max(len(overlaps), 1), 3),
        "new_themes_in_b": len(set(b) - set(a)),
        "rerun_on_unchanged_data": rerun,
        "contrast_fresh_reclustering": {
            "themes": len(fresh),
            "kept_id": sum(1 for t in big if t in continued),
            "kept_share": round(sum(1 for t in big if t in continued) / max(len(big), 1), 3),
        },
    }


def main() -> int:
    for needed in (DATA / "star-support" / "conversations.jsonl", DATA / "banking77" / "test.csv"):
        if not needed.exists():
            sys.stderr.write(f"benchmark data not found: {needed} (expected ../shared/data beside the repository)\n")
            return 2
    home = Path(tempfile.mkdtemp(prefix="threadline-stability-"))
    os.environ["THREADLINE_HOME"] = str(home)
    os.environ.pop("THREADLINE_DATABASE_URL", None)
    from threadline.ai.embeddings import get_embedder
    from threadline.db.engine import get_engine

    engine = get_engine()
    embedder = get_embedder()
    workdir = Path(tempfile.mkdtemp(prefix="threadline-stability-data-"))
    result = {
        "star_support": measure(engine, embedder, "star", star_files(workdir)),
        "banking77_test": measure(engine, embedder, "banking77", banking_files(workdir)),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    sys.stdout.write(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
