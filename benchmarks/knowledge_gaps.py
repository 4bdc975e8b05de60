"""Documentation gaps and confusing articles on the sample, scored against examples/help-center/GROUND_TRUTH.json.

Steps, with the `threadline` command against a fresh embedded database (a temporary
THREADLINE_HOME unless one is given): import examples/conversations.jsonl, `knowledge add
folder` examples/help-center (published under the sample's help-center URL), `knowledge sync`,
`run`, `gaps --json`. Only then are labels read (the sample's `labels.problem` and the ground
truth), and scored:

- gap precision: predicted gap themes whose dominant `labels.problem` is a ground-truth gap;
- gap recall: ground-truth gap problems that are the dominant problem of some predicted gap;
- confusing articles (kind `still_stuck`): planted confusing articles found, and predicted ones that are not planted;
- volume not falling (kind `volume_not_falling`): planted articles after whose `updated:` date
  their problem's volume did not fall, found; and flagged ones that are not planted (among them
  the ground truth's `volume_falling` articles, whose problem's volume did fall).

Default settings throughout (the same parameters as any run). Figures go to
benchmarks/results/knowledge_gaps.json.

    THREADLINE_HOME=/tmp/gaps-home .venv/bin/python benchmarks/knowledge_gaps.py
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

REPO = Path(__file__).resolve().parents[1]
SAMPLE = REPO / "examples" / "conversations.jsonl"
HELP_CENTER = REPO / "examples" / "help-center"
GROUND_TRUTH = HELP_CENTER / "GROUND_TRUTH.json"
HELP_CENTER_URL = "https://help.tallyboard.io/"  # where the sample's help center is published (its url_rule)
RESULTS = REPO / "benchmarks" / "results" / "knowledge_gaps.json"
TARGET = 0.8  # the bound for gap precision and recall
COMMAND_TIMEOUT_S = 1_800  # seconds for one CLI step (the run embeds 310 conversations on a shared machine)


def threadline(env: dict[str, str], *args: str) -> str:
    """Run one `threadline` command; its stdout (exit code 0 required)."""
    started = time.perf_counter()
    result = subprocess.run(
        [sys.executable, "-m", "threadline.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=COMMAND_TIMEOUT_S,
    )
    if result.returncode != 0:
        raise SystemExit(f"threadline {' '.join(args)} failed ({result.returncode}): {result.stderr[-2000:]}")
    print(f"threadline {args[0]} {args[1] if len(args) > 1 else ''}: {time.perf_counter() - started:.1f}s")
    return result.stdout


def theme_problems(env: dict[str, str], run_id: int) -> dict[int, Counter[str]]:
    """{theme id: Counter of labels.problem of its members} (labels read from the sample, after the run)."""
    os.environ.update({k: v for k, v in env.items() if k.startswith("THREADLINE_")})
    from sqlalchemy import text  # imported after THREADLINE_HOME is set: the engine reads it

    from threadline.db.engine import get_engine

    labels = {}
    with SAMPLE.open() as lines:
        for line in lines:
            record = json.loads(line)
            labels[record["id"]] = (record.get("labels") or {}).get("problem", "unlabelled")
    rows = (
        get_engine()
        .connect()
        .execute(
            text(
                "SELECT tm.theme_id, c.external_id FROM theme_members tm "
                "JOIN conversations c ON c.id = tm.conversation_id WHERE tm.run_id = :run"
            ),
            {"run": run_id},
        )
    )
    problems: dict[int, Counter[str]] = {}
    for theme_id, external_id in rows:
        problems.setdefault(theme_id, Counter())[labels.get(external_id, "unlabelled")] += 1
    return problems


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", help="THREADLINE_HOME (default: $THREADLINE_HOME or a temporary directory)")
    args = parser.parse_args()
    home = args.home or os.environ.get("THREADLINE_HOME") or tempfile.mkdtemp(prefix="threadline-gaps-")
    env = {**os.environ, "THREADLINE_HOME": home, "COLUMNS": "200"}
    env.pop("THREADLINE_DATABASE_URL", None)
    started = time.perf_counter()
    threadline(env, "import", str(SAMPLE), "--source", "demo")
    threadline(
        env, "knowledge", "add", "folder", "--name", "help", "--path", str(HELP_CENTER), "--base-url", HELP_CENTER_URL
    )
    synced = json.loads(threadline(env, "knowledge", "sync", "help", "--json"))
    threadline(env, "run", "--source", "demo")
    found = json.loads(threadline(env, "gaps", "--json"))
    elapsed = time.perf_counter() - started

    truth = json.loads(GROUND_TRUTH.read_text())  # labels are read only now, after the run
    true_gaps = set(truth["gaps"])
    planted = set(truth["confusing_articles"])
    slug_of_title = {a["title"]: a["slug"] for a in truth["articles"]}
    problems = theme_problems(env, found["run_id"])
    predicted = []
    for gap in found["gaps"]:
        counts = problems.get(gap["theme_id"], Counter())
        dominant, members = counts.most_common(1)[0] if counts else ("none", 0)
        predicted.append(
            {
                "theme_id": gap["theme_id"],
                "theme": gap["theme"],
                "conversations": gap["conversations"],
                "dominant_problem": dominant,
                "dominant_share": round(members / max(sum(counts.values()), 1), 3),
                "correct": dominant in true_gaps,
            }
        )
    correct = sum(1 for p in predicted if p["correct"])
    found_gaps = {p["dominant_problem"] for p in predicted if p["correct"]}
    precision = correct / len(predicted) if predicted else 0.0
    recall = len(found_gaps) / len(true_gaps) if true_gaps else 1.0
    by_kind: dict[str, set[str]] = {"still_stuck": set(), "volume_not_falling": set()}
    for article in found["confusing_articles"]:
        by_kind[article["kind"]].add(slug_of_title.get(article["title"], article["title"]))
    confusing = by_kind["still_stuck"]
    volume, planted_volume = by_kind["volume_not_falling"], set(truth["volume_not_falling"])
    result = {
        "benchmark": "knowledge_gaps",
        "command": "THREADLINE_HOME=<tmp> .venv/bin/python benchmarks/knowledge_gaps.py",
        "settings": "defaults (knowledge.coverage_threshold, gap_question_share, confusing_min_conversations, "
        "confusing_min_share)",
        "conversations": sum(1 for _ in SAMPLE.open()),
        "articles": len(truth["articles"]),
        "knowledge_sync": synced,
        "gap_precision": round(precision, 3),
        "gap_recall": round(recall, 3),
        "predicted_gaps": predicted,
        "missed_gaps": sorted(true_gaps - found_gaps),
        "confusing_found": sorted(set(confusing) & planted),
        "confusing_missed": sorted(planted - set(confusing)),
        "confusing_false": sorted(set(confusing) - planted),
        "volume_found": sorted(volume & planted_volume),
        "volume_missed": sorted(planted_volume - volume),
        "volume_false": sorted(volume - planted_volume),
        "volume_falling_flagged": sorted(volume & set(truth["volume_falling"])),
        "confusing_articles": found["confusing_articles"],
        "target": TARGET,
        "met": precision >= TARGET and recall >= TARGET and planted <= set(confusing) and volume == planted_volume,
        "elapsed_s": round(elapsed, 1),
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    keys = ("gap_precision", "gap_recall", "missed_gaps", "confusing_found", "volume_found", "volume_false", "met")
    summary = {k: result[k] for k in keys}
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
