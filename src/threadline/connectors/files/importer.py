"""`threadline import`: read a file, upsert its conversations, report what was wrong where.

Every batch of valid records commits on its own (re-imports are idempotent). When the
database refuses a batch for something a record carries (a value it cannot store, a
constraint), the batch is split in halves and retried until the refusing record stands
alone; it is reported as a problem of its line and its neighbours are written. A deadlock
or serialization failure (concurrent imports) retries the whole batch. Anything else is
unexpected: `ImportInterrupted` carries the report so far, and what was committed stays.

Nothing here logs record content or SQL parameters: errors are described by their class and
SQLSTATE only (details at DEBUG, still without parameters).
"""

from __future__ import annotations

import logging
import random
import time
import traceback
from collections.abc import Callable
from contextlib import ExitStack, closing
from dataclasses import dataclass, field
from pathlib import Path
from typing import TypeVar

from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, StatementError
from sqlalchemy.orm import Session

from threadline.config import InputSettings, get_settings
from threadline.connectors.files.readers import (
    CsvColumns,
    Entry,
    FileFormatError,
    Problem,
    ReadReport,
    detect_format,
    printable,
    read_csv,
    read_jsonl,
    text_problem,
)
from threadline.connectors.store import UpsertStats, get_or_create_source, upsert_conversations
from threadline.connectors.syncs import SyncRecord, add_counts
from threadline.db.engine import session_scope
from threadline.db.tables import SOURCE_NAME_CHARS

logger = logging.getLogger(__name__)

T = TypeVar("T")

RETRY_BASE_DELAY_S = 0.05  # seconds before the first retry of a batch after a deadlock; doubles, jittered


def _limits() -> InputSettings:
    return get_settings().input


@dataclass
class ImportResult:
    source_name: str
    path: Path
    format: str
    report: ReadReport = field(default_factory=ReadReport)
    stats: UpsertStats = field(default_factory=UpsertStats)

    @property
    def ok(self) -> bool:
        """True when every record was imported as is (nothing rejected, changed or superseded)."""
        return self.report.clean


class ImportInterrupted(RuntimeError):
    """An unexpected error stopped the import; `result` is the report up to that point."""

    def __init__(self, result: ImportResult, cause: BaseException) -> None:
        super().__init__(f"import interrupted by {type(cause).__name__}")
        self.result = result
        self.cause = cause


def describe_error(exc: BaseException) -> str:
    """Class and SQLSTATE of an error: never its message, which may quote SQL parameters (customer text)."""
    original = getattr(exc, "orig", None) or exc
    parts = [type(original).__name__]
    diag = getattr(original, "diag", None)
    sqlstate = getattr(original, "sqlstate", None)
    if sqlstate:
        parts.append(f"SQLSTATE {sqlstate}")
    for attribute in ("table_name", "column_name", "constraint_name"):
        value = getattr(diag, attribute, None) if diag is not None else None
        if value:
            parts.append(f"{attribute.split('_')[0]} {printable(value, 63)}")
    return ", ".join(parts)


def log_debug_details(exc: BaseException, what: str) -> None:
    """At DEBUG: the error's class, SQLSTATE and stack frames, without its message or parameters."""
    if logger.isEnabledFor(logging.DEBUG):
        frames = "".join(traceback.format_tb(exc.__traceback__))
        logger.debug("%s: %s\n%s", what, describe_error(exc), frames)


def _is_retryable(exc: BaseException) -> bool:
    """Deadlock or serialization failure: the same batch can simply run again."""
    return getattr(getattr(exc, "orig", None), "sqlstate", None) in ("40P01", "40001")


# SQLSTATE classes a record's content can cause: data exception, integrity constraint violation,
# program limit exceeded (a value too large for an index), internal error.
RECORD_LEVEL_SQLSTATE_CLASSES = ("22", "23", "54", "XX")


def _is_record_level(exc: BaseException) -> bool:
    """An error a record's content can cause (the database refused a value, a constraint failed).

    Connection loss, resource exhaustion or an error in our own SQL is not: those stop the import.
    """
    if isinstance(exc, DBAPIError):
        sqlstate = getattr(exc.orig, "sqlstate", None) or ""
        return sqlstate[:2] in RECORD_LEVEL_SQLSTATE_CLASSES
    if isinstance(exc, StatementError):
        return True  # a parameter that could not be sent (e.g. not encodable)
    return isinstance(exc, (ValueError, TypeError, OverflowError, UnicodeError, RecursionError))


def import_file(
    engine: Engine,
    path: Path,
    *,
    source_name: str = "default",
    file_format: str | None = None,
    columns: CsvColumns = CsvColumns(),
    on_batch: Callable[[int], None] | None = None,
    batch_size: int | None = None,
) -> ImportResult:
    """Import `path` into `source_name`. Each batch commits on its own (re-imports are idempotent).

    Raises `FileFormatError` before writing anything when the file as a whole is unusable, and
    `ImportInterrupted` (with the report so far) on an unexpected error.
    """
    file_format = file_format or detect_format(path)
    if file_format not in ("jsonl", "csv"):
        raise FileFormatError(f"unknown format {printable(file_format)!r}; expected jsonl or csv")
    if not source_name.strip() or len(source_name) > SOURCE_NAME_CHARS or text_problem(source_name):
        raise FileFormatError(f"the source name must be 1 to {SOURCE_NAME_CHARS} characters of text")
    if not path.is_file():
        raise FileFormatError(f"{printable(path)}: no such file")
    result = ImportResult(source_name=source_name, path=path, format=file_format)
    reader = (
        read_jsonl(path, result.report, batch_size)
        if file_format == "jsonl"
        else read_csv(path, result.report, columns, batch_size)
    )
    record: SyncRecord | None = None
    try:
        with closing(reader) as batches, ExitStack() as stack:
            for batch in batches:
                if record is None:
                    source_id = _with_retries(engine, lambda s: get_or_create_source(s, source_name, kind="file").id)
                    record = stack.enter_context(SyncRecord(engine, source_id, kind="import"))
                _write(engine, record, batch, result)
                if on_batch:
                    on_batch(len(batch))
            if record is not None:
                record.finish("succeeded")
    except FileFormatError:
        raise
    except Exception as exc:
        log_debug_details(exc, "import interrupted")
        raise ImportInterrupted(result, exc) from None
    logger.info(
        "imported %s: %d inserted, %d updated, %d unchanged, %d problems, %d duplicates",
        printable(path.name),
        result.stats.inserted,
        result.stats.updated,
        result.stats.unchanged,
        result.report.problems_total,
        result.report.duplicates_total,
    )
    return result


def _with_retries(engine: Engine, work: Callable[[Session], T]) -> T:
    """Run `work(session)` in one transaction, again on a deadlock or serialization failure."""
    for attempt in range(1, _limits().store_batch_attempts + 1):
        try:
            with session_scope(engine) as session:
                return work(session)
        except DBAPIError as exc:
            if not _is_retryable(exc) or attempt == _limits().store_batch_attempts:
                raise
            delay = RETRY_BASE_DELAY_S * 2 ** (attempt - 1)
            logger.info("batch retried after %s (attempt %d)", describe_error(exc), attempt)
            time.sleep(delay * (0.5 + random.random()))
    raise AssertionError("unreachable")


def _upsert_counted(session: Session, record: SyncRecord, entries: list[Entry]) -> UpsertStats:
    """Upsert `entries` stamped with the import's record, its counters added in the same transaction."""
    stats = upsert_conversations(session, record.source_id, [e.record for e in entries], sync_id=record.id)
    add_counts(session, record.id, created=stats.inserted, changed=stats.updated, unchanged=stats.unchanged)
    return stats


def _write(engine: Engine, record: SyncRecord, entries: list[Entry], result: ImportResult) -> None:
    """Write `entries`; on a record-level refusal split the batch until the refusing record is alone."""
    try:
        stats = _with_retries(engine, lambda s: _upsert_counted(s, record, entries))
    except Exception as exc:
        if _is_retryable(exc) or not _is_record_level(exc):
            raise
        if len(entries) == 1:
            _refused(entries[0], exc, result.report)
            return
        log_debug_details(exc, f"batch of {len(entries)} refused; splitting it")
        middle = len(entries) // 2
        _write(engine, record, entries[:middle], result)
        _write(engine, record, entries[middle:], result)
        return
    result.stats.add(stats)


def _refused(entry: Entry, exc: BaseException, report: ReadReport) -> None:
    log_debug_details(exc, f"line {entry.line} refused")
    report.records -= 1
    report.rejected_records += 1
    report.add(
        Problem(
            entry.line,
            printable(entry.record.external_id, 255),
            f"the database refused the record ({describe_error(exc)})",
            True,
            None,
        )
    )
