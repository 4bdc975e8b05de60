"""Report export: the ranked stories with their evidence as Markdown or CSV.

Stories come from the read model (`threadline.read.stories`), whose text has already passed
`threadline.read.display.shown` (personal data masked); this module lays them out. Each
story shows the factors behind its rank and severity (`priority`, see
:mod:`threadline.stories.priority`) and its customers as known ("customer unknown" where the
data has no customer ids, never conversations counted as customers).

Both carry customer and model-written text, so both are made inert: in Markdown every text is
escaped (no raw HTML, no link syntax) and only http(s) URLs become links; in CSV a cell that a
spreadsheet would read as a formula is prefixed with a quote.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from threadline.text.safety import csv_cell, markdown_text, safe_link


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
    conversation = markdown_text(str(evidence["conversation_external_id"]))
    url = safe_link(evidence.get("conversation_url"))
    link = f"[{conversation}](<{_link_target(url)}>)" if url else conversation
    message = markdown_text(str(evidence.get("message_external_id") or f"#{evidence['message_position'] + 1}"))
    changed = "; the message changed since" if evidence.get("changed_since") else ""
    return f"{link}, message {message}{changed}"


def _link_target(url: str) -> str:
    """An http(s) URL as a Markdown link destination in `<...>`: the characters that could end it percent-encoded."""
    return url.replace("<", "%3C").replace(">", "%3E").replace(" ", "%20")


def _md(value: Any) -> str:
    """Any value as escaped Markdown text."""
    return markdown_text("" if value is None else str(value))


def to_markdown(
    stories: list[dict[str, Any]], *, title: str = "Threadline report", documentation: dict[str, Any] | None = None
) -> str:
    """A readable backlog: one section per story, evidence quotes linked to their conversations.

    With `documentation` (`threadline.read.documentation.documentation` of the same run), a last
    section lists the documentation gaps and confusing articles. Byte-stable: the same snapshot
    gives the same text (identity ids and the source's own conversation and message ids; never
    per-run row ids).
    """
    lines = [f"# {_md(title)}", ""]
    if not stories:
        lines.append("No stories yet: run `threadline run` first.")
    for story in stories:
        trend = story.get("trend") or {}
        lines += [
            f"## {story['rank']}. {_md(story['title'])}",
            "",
            f"- **Story:** #{story['id']} (theme #{story['theme_id']}: {_md(story['theme'])})",
            f"- **Conversations:** {story['conversations']} from {_customers(story)}",
            f"- **Seen:** {(story['first_seen'] or '?')[:10]} to {(story['last_seen'] or '?')[:10]}"
            f" (trend: {trend.get('direction', 'n/a')})",
            f"- **Severity:** {_md(story['severity'])} ({_md(story['severity_reason'])})",
            f"- **Rank factors:** {_md(_factors(story)) or 'not recorded for this run'}",
            f"- **Status:** {story['status']}",
            "",
            _md(story["problem"]),
            "",
        ]
        if story.get("user_story"):
            lines += [f"> {_md(story['user_story'])}", ""]
        if story.get("acceptance_criteria"):
            lines += ["**Acceptance criteria**", ""] + [f"- [ ] {_md(c)}" for c in story["acceptance_criteria"]] + [""]
        lines += ["**Evidence**", ""]
        for evidence in story["evidence"]:
            quote = _md(evidence["quote"].replace("\n", " "))
            lines.append(f"- \u201c{quote}\u201d ({_where(evidence)})")
        if not story["evidence"]:
            lines.append("- (no quote qualified: see the problem statement)")
        lines.append("")
    if documentation is not None:
        lines += documentation_markdown(documentation)
    return "\n".join(lines)


def _example_line(example: dict[str, Any]) -> str:
    excerpt = _md((example.get("excerpt") or "").replace("\n", " "))
    where = f"conversation {_md(example['external_id'])}" if example.get("external_id") else "conversation deleted"
    return f"  - \u201c{excerpt}\u201d ({where})" if excerpt else f"  - ({where})"


def documentation_markdown(documentation: dict[str, Any]) -> list[str]:
    """The report's documentation section: gaps (themes no article answers) and confusing articles."""
    lines = ["## Documentation", ""]
    gaps, confusing = documentation.get("gaps", []), documentation.get("confusing_articles", [])
    if not gaps and not confusing:
        return lines + ["No documentation gaps or confusing articles in this run (or no knowledge source).", ""]
    lines += ["### Gaps: questions no article answers", ""]
    for gap in gaps:
        lines.append(
            f"- **{_md(gap['theme'])}** (theme #{gap['theme_id']}): {gap['conversations']} conversations from "
            f"{gap['customers']} customers, {round(100 * gap['question_share'])}% how-to questions"
        )
        lines += [_example_line(e) for e in gap["examples"]]
    if not gaps:
        lines.append("- none")
    lines += ["", "### Confusing articles: customers still stuck after reading them, or no fewer questions", ""]
    for article in confusing:
        url = safe_link(article.get("url"))
        name = f"[{_md(article['title'])}](<{_link_target(url)}>)" if url else _md(article["title"])
        theme = f" (theme {_md(article['theme'])})" if article.get("theme") else ""
        lines.append(f"- **{name}**: {_md(article['reason'])}{theme}")
        lines += [_example_line(e) for e in article["examples"]]
    if not confusing:
        lines.append("- none")
    lines.append("")
    return lines


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
    """One row per story; evidence quotes joined with their conversation ids; no cell reads as a formula."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS)
    writer.writeheader()
    for story in stories:
        row = {
            **{k: story.get(k) for k in CSV_COLUMNS if k not in ("trend", "evidence", "rank_factors")},
            "rank_factors": _factors(story),
            "trend": (story.get("trend") or {}).get("direction"),
            "evidence": " | ".join(f"{e['conversation_external_id']}: {e['quote']}" for e in story["evidence"]),
        }
        writer.writerow({k: csv_cell(v) for k, v in row.items()})
    return out.getvalue()
