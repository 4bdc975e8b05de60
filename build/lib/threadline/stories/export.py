"""Report export: the ranked stories with their evidence as Markdown or CSV."""

from __future__ import annotations

import csv
import io
from typing import Any


def to_markdown(stories: list[dict[str, Any]], *, title: str = "Threadline report") -> str:
    """A readable backlog: one section per story, evidence quotes linked to their conversations."""
    lines = [f"# {title}", ""]
    if not stories:
        lines.append("No stories yet: run `threadline run` first.")
    for story in stories:
        trend = story.get("trend") or {}
        lines += [
            f"## {story['rank']}. {story['title']}",
            "",
            f"- **Conversations:** {story['conversations']} from {story['customers']} customers",
            f"- **Seen:** {(story['first_seen'] or '?')[:10]} to {(story['last_seen'] or '?')[:10]}"
            f" (trend: {trend.get('direction', 'n/a')})",
            f"- **Severity:** {story['severity']} ({story['severity_reason']})",
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
            where = evidence["conversation_external_id"]
            link = f"[{where}]({evidence['conversation_url']})" if evidence.get("conversation_url") else f"`{where}`"
            quote = evidence["quote"].replace("\n", " ")
            lines.append(f"- \u201c{quote}\u201d ({link}, message {evidence['message_id']})")
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
                **{k: story.get(k) for k in CSV_COLUMNS if k not in ("trend", "evidence")},
                "trend": (story.get("trend") or {}).get("direction"),
                "evidence": " | ".join(f"{e['conversation_external_id']}: {e['quote']}" for e in story["evidence"]),
            }
        )
    return out.getvalue()
