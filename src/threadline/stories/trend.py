"""Trend series of a theme: counts per bucket over the run's period, measured back from its end.

Buckets are sized to the period (nine days of data get daily points, half a year weekly
ones) and the last bucket ends exactly at the period's end (the run's newest conversation),
so a trend never depends on the day the run executed and its last bucket is never partial.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from typing import Any

__all__ = ["TREND_BUCKET_LADDER_DAYS", "bucket_days_for", "trend_series"]

# days per trend bucket, smallest first: the first that fits the period in at most `max_buckets` buckets
# (the `pipeline.trend_max_buckets` setting) is used, so nine days of data get daily points and half a year weekly ones
TREND_BUCKET_LADDER_DAYS = (1, 7, 14, 28, 91, 182, 364)
TREND_RATIO_RISING = 1.5  # later-half rate / earlier-half rate above this reads as rising
TREND_RATIO_FALLING = 1 / 1.5  # ... below this as falling


def bucket_days_for(span: timedelta, max_buckets: int) -> int:
    """Days per trend bucket for a period of `span`: the smallest rung of the ladder that fits `max_buckets`."""
    days = max(span.total_seconds() / 86400, 0.0)
    for rung in TREND_BUCKET_LADDER_DAYS:
        if days / rung <= max_buckets:
            return rung
    return math.ceil(days / max_buckets)


def trend_series(times: list[datetime], start: datetime, end: datetime, *, max_buckets: int) -> dict[str, Any]:
    """Counts per bucket over the period, buckets measured back from `end`, and a direction.

    The last bucket ends exactly at the period's end (the newest conversation of the run),
    so it is never a partial bucket and recency never depends on when the run happened to
    execute. Direction compares the later half's rate with the earlier half's
    (rising / falling / steady, or new when nothing came before).
    """
    bucket_days = bucket_days_for(end - start, max_buckets)
    width = timedelta(days=bucket_days)
    buckets = max(1, math.ceil((end - start) / width)) if end > start else 1
    counts = [0] * buckets
    for t in times:
        back = int((end - t) // width) if t <= end else 0
        counts[max(0, buckets - 1 - min(back, buckets - 1))] += 1
    half = buckets // 2
    earlier, later = sum(counts[:half]), sum(counts[half:])
    if buckets < 2 or not times:
        direction = "steady"
    elif earlier == 0:
        direction = "new" if later else "steady"
    else:
        ratio = (later / max(buckets - half, 1)) / (earlier / max(half, 1))
        direction = "rising" if ratio > TREND_RATIO_RISING else "falling" if ratio < TREND_RATIO_FALLING else "steady"
    return {
        "bucket_days": bucket_days,
        "start": (end - buckets * width).isoformat(),
        "end": end.isoformat(),
        "counts": counts,
        "direction": direction,
    }
