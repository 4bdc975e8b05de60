"""Report export: the ranked stories with their evidence as Markdown or CSV.

Stories come from the read model (`threadline.read.stories`), whose text has already passed
`threadline.read.display.shown` (personal data masked); this module only lays them out. Each
story shows the factors behind its rank and severity (`priority`, see
:mod:`threadline.stories.priority`) and its customers as known ("customer unknown" where the
data has no customer ids, never conversations counted as customers).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any


def _factors(story: dict[str, Any]) -> str:
    """The rank factors as one line: "reach x1.3 (27 distinct customers); recency x1.1 (...)"."""
    factors = (story.get("priority") or {}).get("factors") or []
    return "; ".join(f"{f['name']} x{f['multiplier']:g} ({f['reason']})" for f in factors)


def _customers(story: dict[str, Any]) -> str:
    """Distinct customers as known: conversations without a customer id are never counted as customers."""
    priority = story.get("priority") or {}
    if "customers_known" not in priority:  # a snapshot from before factors were recorded
        return f"{story['customers']} customers"
    known = priority["customers_known"]
    unknown = priority.get("customers_unknown_conversations", 0)
    if not known:
        return "customer unknown"
    return f"{known} distinct customers" + (f" (customer unknown in {unknown})" if unknown else "")


def report_title(sources: Sequence[str], start: datetime | None, end: datetime | None) -> str:
    """`Threadline report: demo, star (2026-09-01 to 2026-10-31)`: scope and period, never a run's row id."""
    period = f" ({start:%Y-%m-%d} to {end:%Y-%m-%d})" if start and end else ""
    return f"Threadline report: {', '.join(sources) or 'no source'}{period}"


def _where(evidence: dict[str, Any]) -> str:
    """Where a quote came from, in the source's own ids: conversation and message (position when it has no id)."""
    conversation = evidence["conversation_external_id"]
    link = (
        f"[{conversation}]({evidence['conversation_url']})" if evidence.get("conversation_url") else f"`{conversation}`"
    )
    message = evidence.get("message_external_id") or f"#{evidence['message_position'] + 1}"
    changed = "; the message changed since" if evidence.get("changed_since") else ""
    return f"{link}, message {message}{changed}"


def to_markdown(stories: list[dict[str, Any]], *, title: str = "Threadline report") -> str:
    """A readable backlog: one section per story, evidence quotes linked to their conversations.

    Byte-stable: the same snapshot gives the same text (identity ids and the source's own
    conversation and message ids; never per-run row ids).
    """
    lines = [f"# {title}", ""]
    if not stories:
        lines.append("No stories yet: run `threadline run` first.")
    for story in stories:
        trend = story.get("trend") or {}
        lines += [
            f"## {story['rank']}. {story['title']}",
            "",
            f"- **Story:** #{story['id']} (theme #{story['theme_id']}: {story['theme']})",
            f"- **Conversations:** {story['conversations']} from {_customers(story)}",
            f"- **Seen:** {(story['first_seen'] or '?')[:10]} to {(story['last_seen'] or '?')[:10]}"
            f" (trend: {trend.get('direction', 'n/a')})",
            f"- **Severity:** {story['severity']} ({story['severity_reason']})",
            f"- **Rank factors:** {_factors(story) or 'not recorded for this run'}",
            f"- **Status:** {story['status']}",
            "",
            story["problem"],
            "",
        ]
        if story.get("user_story"):
            lines += [f"> {story['user_story']}", ""]
        if story.get("acceptance_criteria"):
            lines += ["**Acceptance criteria**", ""] + [f"- [ ] {c}" for c in story["acceptance_criteria"]] + [""]
        lines += ["**Evidence**", ""]
        for evidence in story["evidence"]:
            quote = evidence["quote"].replace("\n", " ")
            lines.append(f"- \u201c{quote}\u201d ({_where(evidence)})")
        if not story["evidence"]:
            lines.append("- (no quote qualified: see the problem statement)")
        lines.append("")
    return "\n".join(lines)


CSV_COLUMNS = (
    "rank",
    "title",
    "status",
    "severity",
    "conversations",
    "customers",
    "first_seen",
    "last_seen",
    "trend",
    "severity_reason",
    "rank_factors",
    "problem",
    "evidence",
    "id",
    "theme_id",
)


def to_csv(stories: list[dict[str, Any]]) -> str:
    """One row per story; evidence quotes joined with their conversation ids."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for story in stories:
        writer.writerow(
            {
                **{k: story.get(k) for k in CSV_COLUMNS if k not in ("trend", "evidence", "rank_factors")},
                "rank_factors": _factors(story),
                "trend": (story.get("trend") or {}).get("direction"),
                "evidence": " | ".join(f"{e['conversation_external_id']}: {e['quote']}" for e in story["evidence"]),
            }
        )
    return out.getvalue()
