"""`threadline import`: read a file, upsert its conversations, report what was wrong where."""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from sqlalchemy import Engine

from threadline.connectors.files.readers import (
    CsvColumns,
    FileFormatError,
    ReadReport,
    detect_format,
    read_csv,
    read_jsonl,
)
from threadline.connectors.store import UpsertStats, get_or_create_source, upsert_conversations
from threadline.db.engine import session_scope

logger = logging.getLogger(__name__)


@dataclass
class ImportResult:
    source_name: str
    path: Path
    format: str
    report: ReadReport = field(default_factory=ReadReport)
    stats: UpsertStats = field(default_factory=UpsertStats)

    @property
    def ok(self) -> bool:
        """True when every record was imported unchanged by us (nothing rejected or truncated)."""
        return not self.report.problems


def import_file(
    engine: Engine,
    path: Path,
    *,
    source_name: str = "default",
    file_format: str | None = None,
    columns: CsvColumns = CsvColumns(),
    on_batch: Callable[[int], None] | None = None,
) -> ImportResult:
    """Import `path` into `source_name`. Each batch commits on its own (re-imports are idempotent).

    Raises `FileFormatError` before writing anything when the file as a whole is unusable.
    """
    file_format = file_format or detect_format(path)
    if file_format not in ("jsonl", "csv"):
        raise FileFormatError(f"unknown format {file_format!r}; expected jsonl or csv")
    if not path.is_file():
        raise FileFormatError(f"{path}: no such file")
    result = ImportResult(source_name=source_name, path=path, format=file_format)
    batches = read_jsonl(path, result.report) if file_format == "jsonl" else read_csv(path, result.report, columns)
    source_id: int | None = None
    for batch in batches:
        with session_scope(engine) as session:
            if source_id is None:
                source_id = get_or_create_source(session, source_name, kind="file").id
            result.stats.add(upsert_conversations(session, source_id, batch))
        if on_batch:
            on_batch(len(batch))
    logger.info(
        "imported %s: %d inserted, %d updated, %d unchanged, %d problems",
        path.name,
        result.stats.inserted,
        result.stats.updated,
        result.stats.unchanged,
        len(result.report.problems),
    )
    return result
