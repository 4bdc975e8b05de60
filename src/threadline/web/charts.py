"""Charts as inline SVG rendered on the server: no JavaScript, no external assets, readable at a glance."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from markupsafe import Markup, escape

SPARK_WIDTH = 120  # px: fits a table cell beside a theme name
SPARK_HEIGHT = 28  # px: one text line and a half
CHART_WIDTH = 720  # viewBox units: scaled to the container's width by CSS
CHART_HEIGHT = 200  # viewBox units
CHART_PAD = 28  # viewBox units of margin for axis labels
X_LABELS = 4  # date labels under a bar chart: enough to orient, few enough not to overlap at phone width


def sparkline(
    counts: Sequence[int],
    *,
    width: int = SPARK_WIDTH,
    height: int = SPARK_HEIGHT,
    label: str = "trend",
    bucket_days: int | None = None,
) -> Markup:
    """A polyline of `counts` scaled to the box, the last point marked, and its scale written beside it.

    The scale ("peak 12 / week") says what the height means: sparklines of different themes
    are each scaled to their own peak.
    """
    if not counts:
        return Markup('<span class="muted">no data</span>')
    top = max(max(counts), 1)
    unit = _per(bucket_days)
    step = width / max(len(counts) - 1, 1)
    points = [(round(i * step, 1), round(height - 2 - (c / top) * (height - 4), 1)) for i, c in enumerate(counts)]
    path = " ".join(f"{x},{y}" for x, y in points)
    last_x, last_y = points[-1]
    summary = f"{label}: {', '.join(str(c) for c in counts[-8:])} (latest last{', per ' + unit if unit else ''})"
    scale = f"peak {max(counts)}" + (f" / {unit}" if unit else "")
    return Markup(
        f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}" role="img" '
        f'aria-label="{escape(summary)}"><title>{escape(summary)}</title>'
        f'<polyline fill="none" stroke="currentColor" stroke-width="1.5" points="{path}"/>'
        f'<circle cx="{last_x}" cy="{last_y}" r="2.5" fill="currentColor"/></svg>'
        f'<span class="spark-scale">{escape(scale)}</span>'
    )


def _per(bucket_days: int | None) -> str:
    """The bucket of a series in words: day, week, 2 weeks, 28 days ..."""
    if not bucket_days:
        return ""
    return {1: "day", 7: "week", 14: "2 weeks"}.get(bucket_days, f"{bucket_days} days")


def bar_chart(
    points: Sequence[tuple[datetime, int]], *, label: str = "conversations per week", partial_last: bool = False
) -> Markup:
    """Vertical bars with a max-value gridline and a few date labels; each bar has a hover title.

    With `partial_last`, the last bar is drawn hatched and labelled "partial": the period
    ends inside that bucket, so its count is not comparable with the full ones.
    """
    if not points:
        return Markup('<p class="muted">No conversations yet.</p>')
    top = max(max(c for _, c in points), 1)
    inner_w, inner_h = CHART_WIDTH - 2 * CHART_PAD, CHART_HEIGHT - 2 * CHART_PAD
    slot = inner_w / len(points)
    bar = max(slot * 0.8, 1)
    parts = [
        f'<svg class="chart" viewBox="0 0 {CHART_WIDTH} {CHART_HEIGHT}" role="img" aria-label="{escape(label)}">',
        f"<title>{escape(label)}</title>",
        f'<line x1="{CHART_PAD}" y1="{CHART_PAD}" x2="{CHART_WIDTH - CHART_PAD}" y2="{CHART_PAD}" class="grid"/>',
        f'<text x="{CHART_PAD - 4}" y="{CHART_PAD + 4}" text-anchor="end" class="axis">{top}</text>',
        f'<line x1="{CHART_PAD}" y1="{CHART_HEIGHT - CHART_PAD}" x2="{CHART_WIDTH - CHART_PAD}" '
        f'y2="{CHART_HEIGHT - CHART_PAD}" class="grid"/>',
        f'<text x="{CHART_PAD - 4}" y="{CHART_HEIGHT - CHART_PAD + 4}" text-anchor="end" class="axis">0</text>',
    ]
    every = max(1, len(points) // X_LABELS)
    for i, (start, count) in enumerate(points):
        h = inner_h * count / top
        x = CHART_PAD + i * slot + (slot - bar) / 2
        y = CHART_HEIGHT - CHART_PAD - h
        partial = partial_last and i == len(points) - 1
        parts.append(
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{bar:.1f}" height="{h:.1f}" class="bar{" partial" if partial else ""}">'
            f"<title>{start:%Y-%m-%d}: {count}{' (partial: the period ends inside it)' if partial else ''}</title></rect>"
        )
        if partial:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{max(y - 4, CHART_PAD + 10):.1f}" text-anchor="middle" '
                f'class="axis partial-label">partial</text>'
            )
        if i % every == 0:
            parts.append(
                f'<text x="{x + bar / 2:.1f}" y="{CHART_HEIGHT - CHART_PAD + 16}" text-anchor="middle" '
                f'class="axis">{start:%b %d}</text>'
            )
    parts.append("</svg>")
    return Markup("".join(parts))
