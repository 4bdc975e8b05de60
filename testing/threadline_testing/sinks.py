"""In-memory `SyncSink`: for tests, benchmarks and dry runs (no database needed).

Commits are atomic (one lock, state and data replaced together), like the PostgreSQL sink's
transactions, so interruption tests exercise the same guarantee.
"""

from __future__ import annotations

import copy
import threading
from collections import Counter
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from threadline.connectors.intercom.sync import DeadLetter, SyncBatch
from threadline.connectors.records import ConversationRecord


class MemorySink:
    """Keeps the latest record per external id, deletions, dead letters and the sync state."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.records: dict[str, ConversationRecord] = {}
        self.deleted: dict[str, datetime] = {}
        self.dead_letters: list[DeadLetter] = []
        self.state: dict[str, Any] = {}
        self.commits = 0
        self.writes = 0  # records written, counting rewrites of the same conversation
        self.version_writes: Counter[tuple[str, datetime | None]] = Counter()  # (id, updated_at) -> writes

    def load_state(self) -> dict[str, Any]:
        with self._lock:
            return copy.deepcopy(self.state)

    def stored_versions(self, external_ids: Sequence[str]) -> Mapping[str, datetime | None]:
        with self._lock:
            return {cid: self.records[cid].updated_at for cid in external_ids if cid in self.records}

    def commit(self, batch: SyncBatch) -> None:
        with self._lock:
            for record in batch.records:
                self.records[record.external_id] = record
                self.version_writes[(record.external_id, record.updated_at)] += 1
            self.writes += len(batch.records)
            self.deleted.update(batch.deleted)
            self.dead_letters.extend(batch.dead_letters)
            self.state = copy.deepcopy(batch.state)
            self.commits += 1

    def live_ids(self) -> set[str]:
        """Stored conversations not marked deleted."""
        with self._lock:
            return set(self.records) - set(self.deleted)

    def duplicate_writes(self) -> int:
        """Writes of a conversation version that was already written (should be 0)."""
        with self._lock:
            return sum(n - 1 for n in self.version_writes.values() if n > 1)
