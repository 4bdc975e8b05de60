"""What a knowledge connector's sync sees of its sink, and the report it returns.

A knowledge sync reads the whole source each time (folders, sites and help centers have no
"changed since" query worth trusting), so the sink decides what changed by content hash and
the connector concludes removals from what it did not see. Failures are remembered in the
sync state (`FAILED_KEY`) and retried by the next sync.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from typing import Protocol, runtime_checkable

from threadline.connectors.base import SyncSink
from threadline.connectors.records import ArticleRecord

KNOWLEDGE_STAGE = "knowledge"  # `dead_letters.stage` of knowledge syncs
FAILED_KEY = "failed"  # sync state: {external id: attempts so far} of items that failed, retried next sync


@runtime_checkable
class KnowledgeSyncSink(SyncSink[ArticleRecord], Protocol):
    """A `SyncSink` of articles that also knows which articles are stored and active."""

    def active_ids(self) -> set[str]:
        """External ids of the source's articles not marked removed."""
        ...


def knowledge_sink(sink: SyncSink[ArticleRecord]) -> KnowledgeSyncSink:
    """`sink` as a knowledge sink (a knowledge connector given a conversation sink is a programming error)."""
    if not isinstance(sink, KnowledgeSyncSink):
        raise TypeError(f"a knowledge connector needs a knowledge sink, not {type(sink).__name__}")
    return sink


@dataclass
class KnowledgeReport:
    """What one knowledge sync saw: items read, skipped (with reasons), dead-lettered, removed.

    The sink's own counts (created, changed, unchanged, passages) are added by
    `threadline.connectors.knowledge.sources`.
    """

    seen: int = 0
    skipped: int = 0
    dead_lettered: int = 0
    removed: int = 0
    skip_reasons: Counter[str] = field(default_factory=Counter)
    watermark: int | None = None

    def skip(self, reason: str) -> None:
        self.skipped += 1
        self.skip_reasons[reason] += 1

    def counters(self) -> dict[str, int]:
        out = {"seen": self.seen, "skipped": self.skipped, "dead_lettered": self.dead_lettered, "removed": self.removed}
        out.update({f"skipped_{reason}": count for reason, count in sorted(self.skip_reasons.items())})
        return out


def parse_date(value: str) -> datetime | None:
    """An ISO 8601 date or date-time (`2026-03-02`, `2026-03-02T10:00:00Z`) as an aware datetime; None otherwise."""
    value = value.strip().strip("\"'").strip()
    try:
        if len(value) == len("2026-03-02"):
            return datetime.combine(date.fromisoformat(value), time(), tzinfo=UTC)
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
