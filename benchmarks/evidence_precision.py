"""Evidence precision: do a story's quotes come from conversations about the theme's problem?

For each dataset, the whole pipeline runs offline (import, embed, themes, stories) in a
fresh embedded database; labels are read from the file only after the run. For every story,
the theme's dominant label is the most common label among the theme's members; a quote is
*on topic* when its conversation carries that label. Precision is on-topic quotes / quotes,
over all stories (micro) and per story. Also checked on every quote: small talk
(`is_small_talk`) and a cut inside a token (a letter or digit on either side of the quote
in its message).

- star-support (../shared/data/star-support): label ``labels.task`` (target >= 0.95);
- the sample (examples/conversations.jsonl, written by examples/generate_sample.py): label
  ``labels.problem``, the generator's problem (target >= 0.95).

    .venv/bin/python benchmarks/evidence_precision.py [--only sample|star]

Writes benchmarks/results/evidence_precision.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
DATASETS = {
    "sample": (REPO / "examples" / "conversations.jsonl", "problem"),
    "star": (REPO.parent / "shared" / "data" / "star-support" / "conversations.jsonl", "task"),
}
RESULTS = REPO / "benchmarks" / "results" / "evidence_precision.json"
TARGET = 0.95  # issue 14: share of quotes from conversations with the theme's dominant label
WORST_SHOWN = 5  # stories with the lowest precision listed with their off-topic quotes, for a human look


def _labels(path: Path, key: str) -> dict[str, str]:
    """External id -> label, read from the file (never by the pipeline)."""
    out: dict[str, str] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            out[str(record["id"])] = str((record.get("labels") or {}).get(key))
    return out


def measure(name: str, path: Path, key: str) -> dict[str, Any]:
    """Import and run `path` in a fresh database, then score every story's evidence against `labels.<key>`."""
    from sqlalchemy import select

    from threadline.ai.embeddings import get_embedder
    from threadline.connectors.files.importer import import_file
    from threadline.db.engine import get_engine, session_scope
    from threadline.db.models import Conversation, Message, ThemeMember
    from threadline.engine.runs import create_run, execute_run
    from threadline.read.stories import list_stories
    from threadline.stories.evidence import is_small_talk

    engine = get_engine()
    import_file(engine, path, source_name=name)
    embedder = get_embedder()
    with session_scope(engine) as session:
        run_id = create_run(session, source=name).id
    started = time.perf_counter()
    run = execute_run(engine, run_id, embedder)
    seconds = time.perf_counter() - started
    assert run.status == "succeeded", run.error
    labels = _labels(path, key)  # read only now, after the run
    with session_scope(engine) as session:
        external = dict(
            session.execute(
                select(Conversation.id, Conversation.external_id)
                .join(ThemeMember, ThemeMember.conversation_id == Conversation.id)
                .where(ThemeMember.run_id == run_id)
            ).all()
        )
        members: dict[int, list[str]] = {}
        for theme_id, conversation_id in session.execute(
            select(ThemeMember.theme_id, ThemeMember.conversation_id).where(ThemeMember.run_id == run_id)
        ):
            members.setdefault(theme_id, []).append(labels[external[conversation_id]])
        stories = list_stories(session, run_id=run_id, limit=1000, offset=0)
        texts = {
            m.id: m.text
            for m in session.execute(
                select(Message).where(
                    Message.id.in_([e["message_id"] for s in stories for e in s["evidence"] if e["message_id"]])
                )
            ).scalars()
        }
    quotes = on_topic = small_talk = cut = 0
    per_story: list[dict[str, Any]] = []
    for story in stories:
        dominant, count = Counter(members[story["theme_id"]]).most_common(1)[0]
        hits = 0
        off: list[str] = []
        for e in story["evidence"]:
            label = labels[e["conversation_external_id"]]
            hits += label == dominant
            if label != dominant:
                off.append(f"[{label}] {e['quote']}")
            small_talk += is_small_talk(e["quote"])
            body = texts[e["message_id"]]
            cut += (e["start"] > 0 and body[e["start"] - 1].isalnum()) or (
                e["end"] < len(body) and body[e["end"]].isalnum()
            )
        quotes += len(story["evidence"])
        on_topic += hits
        per_story.append(
            {
                "rank": story["rank"],
                "title": story["title"],
                "theme_size": len(members[story["theme_id"]]),
                "dominant_label": dominant,
                "dominant_share": round(count / len(members[story["theme_id"]]), 3),
                "quotes": len(story["evidence"]),
                "precision": round(hits / len(story["evidence"]), 3) if story["evidence"] else None,
                "off_topic": off,
            }
        )
    scored = [s for s in per_story if s["precision"] is not None]
    return {
        "data": str(path.relative_to(REPO.parent)),
        "label": f"labels.{key}",
        "run_s": round(seconds, 1),
        "stories": len(stories),
        "stories_without_quotes": len(stories) - len(scored),
        "quotes": quotes,
        "precision": round(on_topic / quotes, 4) if quotes else None,
        "macro_precision": round(sum(s["precision"] for s in scored) / len(scored), 4) if scored else None,
        "target": TARGET,
        "small_talk_quotes": small_talk,
        "quotes_cut_inside_a_token": cut,
        "worst": sorted(scored, key=lambda s: (s["precision"], s["rank"]))[:WORST_SHOWN],
        "stories_detail": per_story,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only", choices=sorted(DATASETS))
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.only is None:  # one process per dataset: each gets its own embedded database
        for name in DATASETS:
            code = subprocess.call([sys.executable, __file__, "--only", name, "--out", str(args.out)])
            if code:
                return code
        return 0
    path, key = DATASETS[args.only]
    if not path.is_file():
        sys.stderr.write(f"benchmark data not found: {path}\n")
        return 2
    os.environ["THREADLINE_HOME"] = tempfile.mkdtemp(prefix=f"threadline-evidence-{args.only}-")
    os.environ.pop("THREADLINE_DATABASE_URL", None)
    result = measure(args.only, path, key)
    result["load_average_1m"] = round(os.getloadavg()[0], 2)
    results: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    results[args.only] = result
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    summary = {k: result[k] for k in ("stories", "quotes", "precision", "macro_precision", "small_talk_quotes")}
    sys.stdout.write(f"{args.only}: {json.dumps(summary)}\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
