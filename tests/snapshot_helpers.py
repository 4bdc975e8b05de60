"""Data and helpers for the snapshot tests: the sample split in time, a planted theme, runs in-process.

`planted_files` writes the synthetic sample as two JSONL files split at its median creation
time, with one recurring problem ("webhook_delay") stopped in the second half and a new
problem planted only there (time tracking losing hours, which the sample never mentions).
Labels are read here only to build the data and to check results afterwards, never by the
pipeline.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path

from support import EXAMPLES

from threadline.db.engine import session_scope
from threadline.engine.runs import create_run, execute_run

STOPPED_PROBLEM = "webhook_delay"  # 11 conversations in the sample's first half, 1 in the second: dropped there
PLANTED_PREFIX = "planted-"
PLANTED_COUNT = 14  # conversations of the planted theme: comfortably above the minimum theme size (5)

_PLANTED_SYMPTOMS = (
    "the time tracking timer stops counting whenever my laptop goes to sleep",
    "my tracked hours reset to zero after the timer ran overnight",
    "the time tracking stopwatch loses the hours I logged this morning",
    "time entries from the running timer disappear when I close my laptop lid",
    "the timer keeps pausing itself and my timesheet is short by several hours",
    "hours tracked with the timer vanish from the timesheet after a restart",
    "the running timer resets when the laptop wakes up from sleep",
)
_PLANTED_DETAILS = (
    "I lost about three hours of billable time yesterday.",
    "Our weekly timesheets are wrong because of this.",
    "We bill clients by the hour, so every lost hour is lost money.",
    "It happened twice this week on my MacBook.",
    "My whole team sees the same thing since Monday.",
)


def read_sample() -> list[dict]:
    with EXAMPLES.open(encoding="utf-8") as handle:
        return [json.loads(line) for line in handle]


def median_time(records: list[dict]) -> str:
    times = sorted(r["created_at"] for r in records)
    return times[len(times) // 2]


def planted_conversations(start: datetime, end: datetime) -> list[dict]:
    """PLANTED_COUNT conversations about time tracking losing hours, spread over [start, end)."""
    step = (end - start) / PLANTED_COUNT
    records = []
    for i in range(PLANTED_COUNT):
        when = (start + step * i + timedelta(hours=3)).isoformat()
        symptom = _PLANTED_SYMPTOMS[i % len(_PLANTED_SYMPTOMS)]
        detail = _PLANTED_DETAILS[i % len(_PLANTED_DETAILS)]
        records.append(
            {
                "id": f"{PLANTED_PREFIX}{i:02d}",
                "created_at": when,
                "subject": "Timer loses hours",
                "customer": {"id": f"cus_planted_{i}", "email": f"user{i}@example.org"},
                "messages": [
                    {"author": "customer", "text": f"Hello, {symptom}. {detail} Can you fix it?", "created_at": when},
                    {"author": "agent", "text": "Thanks, we are looking into it.", "created_at": when},
                ],
                "labels": {"problem": "planted_time_tracking"},
            }
        )
    return records


def planted_files(directory: Path) -> tuple[Path, Path, str]:
    """(first half file, second half file, the split time): the sample split in time, with the changes above."""
    records = read_sample()
    middle = median_time(records)
    first = [r for r in records if r["created_at"] < middle]
    second = [r for r in records if r["created_at"] >= middle and r["labels"]["problem"] != STOPPED_PROBLEM]
    end = datetime.fromisoformat(max(r["created_at"] for r in records))
    second += planted_conversations(datetime.fromisoformat(middle), end)
    paths = []
    for name, part in (("first.jsonl", first), ("second.jsonl", second)):
        path = directory / name
        path.write_text("".join(json.dumps(r) + "\n" for r in part), encoding="utf-8")
        paths.append(path)
    return paths[0], paths[1], middle


def run_now(engine, embedder, **kwargs) -> int:
    """Create and execute a run in-process; returns its id (asserting it succeeded)."""
    with session_scope(engine) as session:
        run_id = create_run(session, **kwargs).id
    run = execute_run(engine, run_id, embedder)
    assert run.status == "succeeded", run.error
    return run_id
