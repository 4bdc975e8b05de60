"""500 stories exported to the GitHub stand-in under GitHub's documented limits: rate achieved, duplicates, losses.

GitHub's secondary limit on content creation is 80 requests per minute and 500 per hour; the
stand-in (threadline_testing.trackers.github) enforces both in sliding windows and answers 403
with `retry-after` beyond them, and the primary limit (5,000 requests per hour) with
`x-ratelimit-*`. The windows are scaled down by `--scale` (default 1/4: the minute lasts 15 s,
the hour 900 s; the request counts per window are GitHub's), so the run takes about a minute and
a half instead of over six. (At 1/10 the whole-second `retry-after` overshoots a 6 s window by
up to a sixth, which measures the stand-in's rounding more than the exporter.)

The allowed rate is what the documented limits allow for this batch. In a sliding window,
creation k + 80 cannot be counted earlier than one window after creation k, so the stand-in's
clock must see at least floor((n - 1) / 80) minute windows (and floor((n - 1) / 500) hour
windows) between the first and the last creation, however they are paced: 6 windows (90 s at
scale 1/4) for 500. The share of the allowed rate is that least span over the measured elapsed
time (first request to last answer, so latency and the local commits count against us).
Reported beside it, not used for the target: the steady-stream share, which treats the limit as
a fluid 80 per window after a free first burst ((n - 80) / elapsed against 80 / window, ideal
78.75 s); no exporter inside a sliding window can beat 0.875 of it with n = 500, because after
the first 80 nothing may follow for a whole window. Also: duplicates (stand-in issues per story
marker minus one), lost (stories without an issue or without a stored key), the limited answers
the exporter waited out, and the stand-in's creation times as evidence: the span from first to
last creation and the most creations counted in any sliding minute and hour window (at most 80
and 500: under the limit).

    THREADLINE_HOME=/tmp/notify-home .venv/bin/python benchmarks/tracker_export.py [--stories 500] [--scale 0.25]

Fresh embedded database in a temporary THREADLINE_HOME unless THREADLINE_DATABASE_URL is set.
Results: benchmarks/results/tracker_export.json.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import sys
import tempfile
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
RESULTS = REPO / "benchmarks" / "results" / "tracker_export.json"
STORIES = 500  # the issue's figure
SCALE = 0.25  # factor on GitHub's windows: the minute lasts 15 s, the hour 900 s
PER_MINUTE, PER_HOUR = 80, 500  # GitHub's secondary limit on content-creating requests
TOKEN = "gh-bench-token"  # made-up: the stand-in accepts only this
TARGET_SHARE = 0.9  # the issue's acceptance: achieved rate >= 0.9 of the allowed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stories", type=int, default=STORIES)
    parser.add_argument("--scale", type=float, default=SCALE)
    args = parser.parse_args()
    if not os.environ.get("THREADLINE_DATABASE_URL"):
        os.environ["THREADLINE_HOME"] = tempfile.mkdtemp(prefix="tl-bench-export-")
    os.environ["TL_BENCH_GH_TOKEN"] = TOKEN
    # secondary-limit waits are honoured as asked; attempts enough for a story to wait out several windows
    os.environ.setdefault("THREADLINE_TRACKERS_MAX_ATTEMPTS", "20")
    # the exporter paces creations to the secondary limit's windows, scaled like the stand-in's
    os.environ["THREADLINE_TRACKERS_GITHUB_CREATE_MINUTE_S"] = str(60.0 * args.scale)
    os.environ["THREADLINE_TRACKERS_GITHUB_CREATE_HOUR_S"] = str(3600.0 * args.scale)

    from sqlalchemy import select
    from sqlalchemy.orm import Session
    from threadline_testing.serve import serve
    from threadline_testing.trackers import github

    from threadline.db.engine import get_engine
    from threadline.db.models import TrackerLink
    from threadline.delivery.trackers import export_stories
    from threadline.exporters.trackers import add_tracker

    engine = get_engine()
    story_ids = seed(engine, args.stories)
    config = github.GitHubConfig(tokens={TOKEN: "threadline-bot"}, time_scale=args.scale)
    app = github.create_app(config)
    with serve(app) as url:
        with Session(engine) as session, session.begin():
            add_tracker(
                session, "github", "gh", {"repo": "acme/widgets", "token_env": "TL_BENCH_GH_TOKEN", "base_url": url}
            )
        started = time.monotonic()
        report = export_stories(engine, "gh", story_ids, actor="bench")
        elapsed = time.monotonic() - started
    world, stats = app.state.world, app.state.stats
    markers = Counter(
        m.group(1)
        for issue in world.issues.values()
        for m in [re.search(r"threadline:story=(\d+)", issue.body or "")]
        if m
    )
    duplicates = sum(count - 1 for count in markers.values() if count > 1)
    with Session(engine) as session:
        keyed = {sid for sid, key in session.execute(select(TrackerLink.story_id, TrackerLink.item_key)) if key}
    lost = sum(1 for sid in story_ids if str(sid) not in markers or sid not in keyed)
    minute_s = 60.0 * args.scale
    # binding limit for n <= 500 creations: the minute window (all 500 fit in one hour window)
    allowed_per_s = PER_MINUTE / minute_s if args.stories <= PER_HOUR else PER_HOUR / (3600.0 * args.scale)
    # the first window's burst is free: a steady exporter needs (n - 80) / rate after the first 80
    ideal_s = max(0.0, (args.stories - PER_MINUTE) / (PER_MINUTE / minute_s))
    achieved_per_s = (args.stories - PER_MINUTE) / elapsed if elapsed > 0 else 0.0
    steady_share = achieved_per_s / allowed_per_s
    hour_s = 3600.0 * args.scale
    # the least span between first and last creation any pacing inside the sliding windows allows
    least_span_s = (
        max((args.stories - 1) // PER_MINUTE * minute_s, (args.stories - 1) // PER_HOUR * hour_s)
        if args.stories
        else 0.0
    )
    best_steady_share = (args.stories - PER_MINUTE) / least_span_s / allowed_per_s if least_span_s > 0 else 1.0
    share_of_allowed = least_span_s / elapsed if elapsed > 0 else 0.0
    created_at = sorted(stats.created_at)
    result = {
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "stories": args.stories,
        "scale": args.scale,
        "windows_s": {"minute": minute_s, "hour": 3600.0 * args.scale},
        "limits": {"per_minute": PER_MINUTE, "per_hour": PER_HOUR},
        "elapsed_s": round(elapsed, 2),
        "ideal_s": round(ideal_s, 2),
        "allowed_creates_per_scaled_minute": PER_MINUTE,
        "allowed_per_s": round(allowed_per_s, 3),
        "achieved_per_s_after_first_window": round(achieved_per_s, 3),
        "achieved_share_of_allowed": round(share_of_allowed, 3),
        "steady_stream_share": round(steady_share, 3),
        "created": report.count("created"),
        "failed": report.count("failed"),
        "issues_in_standin": len(world.issues),
        "duplicates": duplicates,
        "lost": lost,
        "secondary_limited_answers": stats.secondary_limited,
        "creation_span_s": round(created_at[-1] - created_at[0], 2) if created_at else 0.0,
        "least_creation_span_s_the_limits_allow": round(least_span_s, 2),
        "best_steady_stream_share_the_limits_allow": round(best_steady_share, 3),
        "most_creations_in_any_minute_window": most_in_window(created_at, minute_s),
        "most_creations_in_any_hour_window": most_in_window(created_at, hour_s),
        "requests": stats.requests,
        "target": f"share >= {TARGET_SHARE}, 0 duplicates, 0 lost",
        "met": share_of_allowed >= TARGET_SHARE and duplicates == 0 and lost == 0,
    }
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))  # noqa: T201  (a benchmark reports on stdout)
    return 0 if result["met"] else 1


def most_in_window(times: list[float], window_s: float) -> int:
    """Most of the sorted `times` inside any half-open `window_s`-long span, as the stand-in's sliding window counts."""
    most, start = 0, 0
    for end, t in enumerate(times):
        while times[start] <= t - window_s:
            start += 1
        most = max(most, end - start + 1)
    return most


def seed(engine, count: int) -> list[int]:
    """`count` accepted stories, one succeeded run's snapshot each (written straight into the database)."""
    from sqlalchemy.orm import Session

    from threadline.db.models import Run, RunStory, RunTheme, Scope, Source, Story, Theme

    start = datetime(2026, 1, 5, tzinfo=UTC)
    with Session(engine) as session, session.begin():
        source = Source(kind="file", name="bench", config={})
        session.add(source)
        session.flush()
        scope = Scope(key=str(source.id), source_ids=[source.id])
        session.add(scope)
        session.flush()
        run = Run(status="succeeded", scope_id=scope.id, snapshot=True, finished_at=start)
        session.add(run)
        session.flush()
        ids = []
        for i in range(count):
            theme = Theme(scope_id=scope.id, level=1, first_run_id=run.id, last_run_id=run.id)
            session.add(theme)
            session.flush()
            session.add(RunTheme(run_id=run.id, theme_id=theme.id, level=1, name=f"Problem {i}", size=4))
            story = Story(theme_id=theme.id, status="accepted")
            session.add(story)
            session.flush()
            session.add(
                RunStory(
                    run_id=run.id,
                    story_id=story.id,
                    theme_id=theme.id,
                    title=f"Exports fail for problem {i}",
                    problem=f"Customers cannot export (problem {i}).",
                    conversation_count=4,
                    customer_count=4,
                    first_seen=start - timedelta(days=10),
                    last_seen=start - timedelta(days=1),
                    trend={"direction": "rising"},
                    rank=i + 1,
                    score=1.0 / (i + 1),
                )
            )
            ids.append(story.id)
        return ids


if __name__ == "__main__":
    sys.exit(main())
