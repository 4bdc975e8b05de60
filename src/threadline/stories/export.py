"""Report export: the ranked stories with their evidence as Markdown or CSV.

Every customer-derived text (title, problem, quotes, theme) passes through
:func:`threadline.text.pii.mask_for_display`, and each story shows the factors behind its
rank and severity (`priority`, see :mod:`threadline.stories.priority`).
"""

from __future__ import annotations

import csv
import io
from typing import Any

from threadline.text.pii import mask_for_display

STORY_TEXT_FIELDS = ("title", "theme", "problem", "user_story", "severity_reason")  # customer-derived story text


def masked_story(story: dict[str, Any]) -> dict[str, Any]:
    """A story dict (as `threadline.read.stories` returns it) with every customer-derived text masked."""
    out = dict(story)
    for key in STORY_TEXT_FIELDS:
        if isinstance(out.get(key), str):
            out[key] = mask_for_display(out[key])
    out["acceptance_criteria"] = [mask_for_display(c) for c in out.get("acceptance_criteria") or []]
    out["evidence"] = [{**e, "quote": mask_for_display(e["quote"])} for e in out.get("evidence") or []]
    return out


def _factors(story: dict[str, Any]) -> str:
    """The rank factors as one line: "reach 27 (27 distinct customers) x1.3 recency ..." ."""
    factors = (story.get("priority") or {}).get("factors") or []
    return "; ".join(f"{f['name']} x{f['multiplier']:g} ({mask_for_display(str(f['reason']))})" for f in factors)


def _customers(story: dict[str, Any]) -> str:
    priority = story.get("priority") or {}
    known = priority.get("customers_known", story.get("customers", 0))
    unknown = priority.get("customers_unknown_conversations", 0)
    if not known:
        return "customer unknown"
    return f"{known} distinct customers" + (f" (customer unknown in {unknown})" if unknown else "")


def to_markdown(stories: list[dict[str, Any]], *, title: str = "Threadline report") -> str:
    """A readable backlog: one section per story, evidence quotes linked to their conversations."""
    lines = [f"# {title}", ""]
    if not stories:
        lines.append("No stories yet: run `threadline run` first.")
    for story in stories:
        trend = story.get("trend") or {}
        lines += [
            f"## {story['rank']}. {mask_for_display(story['title'])}",
            "",
            f"- **Conversations:** {story['conversations']} from {_customers(story)}",
            f"- **Seen:** {(story['first_seen'] or '?')[:10]} to {(story['last_seen'] or '?')[:10]}"
            f" (trend: {trend.get('direction', 'n/a')})",
            f"- **Severity:** {story['severity']} ({mask_for_display(story['severity_reason'] or '')})",
            f"- **Rank factors:** {_factors(story) or 'n/a'}",
            f"- **Status:** {story['status']}",
            "",
            mask_for_display(story["problem"]),
            "",
        ]
        if story.get("user_story"):
            lines += [f"> {mask_for_display(story['user_story'])}", ""]
        if story.get("acceptance_criteria"):
            criteria = [f"- [ ] {mask_for_display(c)}" for c in story["acceptance_criteria"]]
            lines += ["**Acceptance criteria**", "", *criteria, ""]
        lines += ["**Evidence**", ""]
        for evidence in story["evidence"]:
            where = evidence["conversation_external_id"]
            link = f"[{where}]({evidence['conversation_url']})" if evidence.get("conversation_url") else f"`{where}`"
            quote = mask_for_display(evidence["quote"]).replace("\n", " ")
            lines.append(f"- \u201c{quote}\u201d ({link}, message {evidence['message_id']})")
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
                "title": mask_for_display(story["title"]),
                "problem": mask_for_display(story["problem"]),
                "severity_reason": mask_for_display(story.get("severity_reason") or ""),
                "trend": (story.get("trend") or {}).get("direction"),
                "rank_factors": _factors(story),
                "evidence": " | ".join(
                    f"{e['conversation_external_id']}: {mask_for_display(e['quote'])}" for e in story["evidence"]
                ),
            }
        )
    return out.getvalue()
