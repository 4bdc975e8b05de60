"""Offline story text: what is known about a theme, said specifically, and nothing else.

Without an LLM there is no honest way to write a user story or acceptance criteria, so
the offline story has none (the LLM path writes them from the evidence). What it does say,
each part only when the data has it:

- what customers report: the theme's distinctive key phrases and one typical quote;
- how many conversations, from how many distinct customers (conversations without a
  customer id are "customer unknown", never counted as customers);
- which companies and plans, with counts (the largest few, then "and N more");
- since when and until when, and the trend with its numbers (earlier half vs later half
  of the buckets);
- when the evidence is thin or repetitive, that it is, and why.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["TEXT_VERSION", "problem_text"]

TEXT_VERSION = "facts-1"
LISTED_COMPANIES = 3  # companies named before "and N more": enough to recognise accounts, short enough to read
LISTED_PLANS = 4  # plans named with counts
LISTED_PHRASES = 4  # distinctive phrases named


def _in_sentence(name: str) -> str:
    """``name`` inside a sentence: first letter lower-cased unless the word is an acronym or brand (CSV, iPhone)."""
    first = name.split(" ", 1)[0]
    if any(ch.isupper() for ch in first[1:]):
        return name
    return name[:1].lower() + name[1:]


def _listed(counts: Mapping[str, int], limit: int) -> str:
    items = list(counts.items())
    shown = ", ".join(f"{name} ({count})" for name, count in items[:limit])
    rest = len(items) - limit
    return shown + (f" and {rest} more" if rest > 0 else "")


def _trend_sentence(trend: Mapping[str, Any]) -> str:
    counts = list(trend.get("counts") or [])
    direction = trend.get("direction", "steady")
    if len(counts) < 2:
        return f"Trend: {direction}."
    half = len(counts) // 2
    earlier, later = sum(counts[:half]), sum(counts[half:])
    days = trend.get("bucket_days", 7)
    return (
        f"Trend: {direction}, {earlier} conversations in the first {half} and {later} in the last {len(counts) - half}"
        f" periods of {days} days."
    )


def problem_text(
    *,
    name: str,
    keywords: Sequence[str],
    typical_quote: str | None,
    conversations: int,
    customers_known: int,
    customers_unknown_conversations: int,
    companies: Mapping[str, int],
    plans: Mapping[str, int],
    first_seen: datetime | None,
    last_seen: datetime | None,
    trend: Mapping[str, Any],
    evidence_notes: Sequence[str] = (),
) -> str:
    """The offline problem statement of a story (plain text, several short sentences).

    The text is stored verbatim in the run's snapshot; views mask personal data when they
    show it (`threadline.read.display.shown`).
    """
    phrases = [k for k in keywords if len(k) > 2][:LISTED_PHRASES]
    parts = [f"Customers write about {_in_sentence(name)}" + (f" ({', '.join(phrases)})." if phrases else ".")]
    if typical_quote:
        parts.append(f"Typical report: \u201c{typical_quote}\u201d")
    who = f"{conversations} conversation{'s' if conversations != 1 else ''}"
    if customers_known and customers_unknown_conversations:
        who += (
            f" from {customers_known} distinct customer{'s' if customers_known != 1 else ''}"
            f" (customer unknown in {customers_unknown_conversations})"
        )
    elif customers_known:
        who += f" from {customers_known} distinct customer{'s' if customers_known != 1 else ''}"
    else:
        who += ", customer unknown"
    if first_seen and last_seen:
        who += f", first seen {first_seen:%d %b %Y}, last seen {last_seen:%d %b %Y}"
    parts.append(who + ".")
    if companies:
        parts.append(f"Companies: {_listed(companies, LISTED_COMPANIES)}.")
    if plans:
        parts.append(f"Plans: {_listed(plans, LISTED_PLANS)}.")
    if trend:
        parts.append(_trend_sentence(trend))
    for note in evidence_notes:
        parts.append(f"Evidence: {note}.")
    return " ".join(parts)
