"""File connectors: JSONL (one conversation per line) and CSV (one message per row).

Readers never write: they yield batches of valid `ConversationRecord`s and collect
per-record `Problem`s (line number and reason). A file-level problem (unreadable, not the
declared format, a mapped column missing) raises `FileFormatError` before the first batch,
so nothing is written for a file that is not what it claims to be.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from threadline.config import get_settings
from threadline.connectors.records import AuthorRole, ContactRecord, ConversationRecord, MessageRecord

ROLE_ALIASES: dict[str, AuthorRole] = {
    "customer": "customer",
    "user": "customer",
    "lead": "customer",
    "contact": "customer",
    "agent": "agent",
    "admin": "agent",
    "teammate": "agent",
    "bot": "bot",
    "ai": "bot",
    "ai_agent": "bot",
    "operator": "bot",
    "note": "note",
}
FORMATS = ("jsonl", "csv")


class FileFormatError(ValueError):
    """The file as a whole cannot be imported; nothing was written."""


class RecordError(ValueError):
    """One record is invalid; the others are still imported."""


@dataclass(frozen=True)
class Problem:
    """Something wrong with one record: where (line) and what (reason)."""

    line: int
    record_id: str | None
    reason: str
    rejected: bool  # False: imported with a recorded change (e.g. truncation)

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (id {self.record_id})" if self.record_id else "")
        return f"{where}: {self.reason}" + ("" if self.rejected else " [imported]")


@dataclass
class ReadReport:
    """What a reader saw: record count and problems, filled while iterating."""

    records: int = 0
    problems: list[Problem] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return sum(1 for p in self.problems if p.rejected)


def detect_format(path: Path) -> str:
    """Format from the file extension (``.jsonl``/``.ndjson`` or ``.csv``)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise FileFormatError(f"{path}: cannot tell the format from the extension; pass --format jsonl|csv")


def parse_time(value: Any, what: str) -> datetime | None:
    """ISO-8601 text or Unix seconds to an aware datetime; naive times are rejected (ambiguous)."""
    if value is None or value == "":
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str):
        raise RecordError(f"{what} is not a timestamp: {type(value).__name__}")
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        raise RecordError(f"{what} is not an ISO-8601 timestamp: {value[:40]!r}") from None
    if parsed.tzinfo is None:
        raise RecordError(f"{what} has no time zone offset: {value[:40]!r}")
    return parsed


def parse_role(value: Any, what: str) -> AuthorRole:
    role = ROLE_ALIASES.get(str(value).strip().lower()) if value is not None else None
    if role is None:
        raise RecordError(f"{what} has unknown author role {str(value)[:40]!r} (expected customer, agent, bot or note)")
    return role


def parse_external_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{what} is missing or not a string")
    text = str(value).strip()
    if not text:
        raise RecordError(f"{what} is empty")
    if len(text) > get_settings().input.max_external_id_chars:
        raise RecordError(f"{what} is longer than {get_settings().input.max_external_id_chars} characters")
    return text


def build_message(
    role: AuthorRole, text: Any, created_at: datetime | None, external_id: str | None, where: str, notes: list[str]
) -> MessageRecord:
    """A validated message; over-long text is truncated and the truncation noted."""
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"{where} has no text")
    truncated = len(text) > get_settings().input.max_message_chars
    if truncated:
        notes.append(f"{where} truncated from {len(text)} to {get_settings().input.max_message_chars} characters")
        text = text[: get_settings().input.max_message_chars]
    return MessageRecord(
        author_role=role, text=text, created_at=created_at, external_id=external_id, truncated=truncated
    )


def check_message_count(count: int) -> None:
    if count == 0:
        raise RecordError("conversation has no messages")
    if count > get_settings().input.max_messages_per_conversation:
        raise RecordError(
            f"conversation has {count} messages; the limit is {get_settings().input.max_messages_per_conversation}"
        )


def _contact(value: Any) -> ContactRecord | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise RecordError("customer is not an object")
    ident = value.get("id") or value.get("email")
    if not ident:
        raise RecordError("customer has neither id nor email")
    attributes = value.get("attributes") or {}
    if not isinstance(attributes, dict):
        raise RecordError("customer.attributes is not an object")
    return ContactRecord(
        external_id=parse_external_id(ident, "customer.id"),
        email=_opt_str(value.get("email")),
        name=_opt_str(value.get("name")),
        company=_opt_str(value.get("company")),
        plan=_opt_str(value.get("plan")),
        attributes=attributes,
    )


def _opt_str(value: Any) -> str | None:
    return None if value is None else str(value)


def conversation_from_json(obj: Any) -> ConversationRecord:
    """Validate one JSONL object (the star-support format plus optional fields)."""
    if not isinstance(obj, dict):
        raise RecordError("line is not a JSON object")
    external_id = parse_external_id(obj.get("id"), "id")
    raw_messages = obj.get("messages")
    if not isinstance(raw_messages, list):
        raise RecordError("messages is missing or not a list")
    check_message_count(len(raw_messages))
    notes: list[str] = []
    messages = []
    for index, raw in enumerate(raw_messages):
        where = f"messages[{index}]"
        if not isinstance(raw, dict):
            raise RecordError(f"{where} is not an object")
        role = parse_role(raw.get("author", raw.get("role")), where)
        created = parse_time(raw.get("created_at"), f"{where}.created_at")
        message_id = raw.get("id")
        message_id = parse_external_id(message_id, f"{where}.id") if message_id is not None else None
        messages.append(build_message(role, raw.get("text"), created, message_id, where, notes))
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        raise RecordError("tags is not a list of strings")
    created_at = parse_time(obj.get("created_at"), "created_at") or _earliest(messages)
    return ConversationRecord(
        external_id=external_id,
        messages=messages,
        created_at=created_at,
        updated_at=parse_time(obj.get("updated_at"), "updated_at"),
        state=_opt_str(obj.get("state")),
        url=_opt_str(obj.get("url")),
        subject=_opt_str(obj.get("subject")),
        tags=tags,
        contact=_contact(obj.get("customer")),
        assignee=_opt_str(obj.get("assignee")),
        raw=obj,
        notes=notes,
    )


def _earliest(messages: list[MessageRecord]) -> datetime | None:
    times = [m.created_at for m in messages if m.created_at is not None]
    return min(times) if times else None


def _truncation_problems(line: int, record: ConversationRecord) -> list[Problem]:
    return [Problem(line, record.external_id, note, rejected=False) for note in record.notes]


def _open_binary(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise FileFormatError(f"{path}: cannot read the file ({exc.strerror or exc})") from None


def read_jsonl(path: Path, report: ReadReport, batch_size: int | None = None) -> Iterator[list[ConversationRecord]]:
    """Yield batches of valid conversations from a JSONL file; problems go to `report`.

    The first non-blank line must be a JSON object, otherwise the file is not JSONL and
    `FileFormatError` is raised before anything is yielded.
    """
    batch_size = batch_size or get_settings().input.store_batch_size
    with _open_binary(path) as handle:
        _sniff_jsonl(path, handle)
        batch: list[ConversationRecord] = []
        for number, raw_line in enumerate(_bounded_lines(handle), start=1):
            if raw_line is None:
                report.problems.append(
                    Problem(
                        number, None, f"line is longer than {get_settings().input.max_import_line_bytes} bytes", True
                    )
                )
                continue
            if not raw_line.strip():
                continue
            record_id = None
            try:
                try:
                    text = raw_line.decode("utf-8")
                except UnicodeDecodeError as exc:
                    raise RecordError(f"invalid UTF-8 at byte {exc.start} of the line") from None
                try:
                    obj = json.loads(text)
                except json.JSONDecodeError as exc:
                    raise RecordError(f"invalid JSON at column {exc.colno}: {exc.msg}") from None
                if isinstance(obj, dict) and isinstance(obj.get("id"), (str, int)):
                    record_id = str(obj["id"])[: get_settings().input.max_external_id_chars]
                record = conversation_from_json(obj)
            except RecordError as exc:
                report.problems.append(Problem(number, record_id, str(exc), rejected=True))
                continue
            report.records += 1
            report.problems.extend(_truncation_problems(number, record))
            batch.append(record)
            if len(batch) >= batch_size:
                yield batch
                batch = []
        if batch:
            yield batch


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Lines of a binary file; None for a line over the size limit (its rest is skipped)."""
    while True:
        line = handle.readline(get_settings().input.max_import_line_bytes + 1)
        if not line:
            return
        if len(line) > get_settings().input.max_import_line_bytes and not line.endswith(b"\n"):
            while (rest := handle.readline(get_settings().input.max_import_line_bytes)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def _sniff_jsonl(path: Path, handle: BinaryIO) -> None:
    for line in _bounded_lines(handle):
        if line is None or not line.strip():
            continue
        try:
            first = json.loads(line.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError):
            first = None
        handle.seek(0)
        if not isinstance(first, dict):
            raise FileFormatError(f"{path}: not JSONL (the first non-blank line is not a JSON object)")
        return
    handle.seek(0)


@dataclass(frozen=True)
class CsvColumns:
    """Which CSV column holds what. Only `text` is required."""

    text: str = "text"
    conversation_id: str = "conversation_id"
    message_id: str = "message_id"
    author: str = "author"
    created_at: str = "created_at"
    customer_id: str = "customer_id"


def read_csv(
    path: Path, report: ReadReport, columns: CsvColumns = CsvColumns(), batch_size: int | None = None
) -> Iterator[list[ConversationRecord]]:
    """Yield batches of conversations from a CSV of messages, grouped by conversation id.

    Without a conversation-id column every row is its own single-message conversation
    (``row-N``) written by the customer, which fits exports of single queries.
    """
    batch_size = batch_size or get_settings().input.store_batch_size
    rows_by_conversation: dict[str, list[tuple[int, dict[str, str]]]] = {}
    csv.field_size_limit(get_settings().input.max_csv_field_bytes)
    with _open_binary(path) as handle:
        try:
            text_stream = io.TextIOWrapper(handle, encoding="utf-8", errors="strict", newline="")
            reader = csv.DictReader(text_stream)
            header = reader.fieldnames
        except UnicodeDecodeError:
            raise FileFormatError(f"{path}: the header is not valid UTF-8") from None
        except csv.Error as exc:
            raise FileFormatError(f"{path}: not CSV ({exc})") from None
        if not header or columns.text not in header:
            raise FileFormatError(
                f"{path}: no {columns.text!r} column in the header (columns: {', '.join((header or [])[:20])}); "
                "use --text-col"
            )
        grouped = columns.conversation_id in header
        number = 1
        while True:
            try:
                row = next(reader)
            except StopIteration:
                break
            except UnicodeDecodeError as exc:
                # The stream cannot resynchronize after a bad byte: report and stop reading.
                report.problems.append(
                    Problem(number + 1, None, f"invalid UTF-8 ({exc.reason}); rest of file skipped", True)
                )
                break
            except csv.Error as exc:
                report.problems.append(Problem(reader.line_num, None, f"malformed CSV row: {exc}", True))
                continue
            number = reader.line_num
            key = row.get(columns.conversation_id) if grouped else f"row-{number}"
            rows_by_conversation.setdefault((key or "").strip(), []).append((number, row))
    batch: list[ConversationRecord] = []
    for key, rows in rows_by_conversation.items():
        first_line = rows[0][0]
        try:
            if not key:
                raise RecordError(f"{columns.conversation_id!r} is empty")
            record = _conversation_from_rows(key, rows, columns, grouped)
        except RecordError as exc:
            report.problems.append(Problem(first_line, key or None, str(exc), rejected=True))
            continue
        report.records += 1
        report.problems.extend(_truncation_problems(first_line, record))
        batch.append(record)
        if len(batch) >= batch_size:
            yield batch
            batch = []
    if batch:
        yield batch


def _conversation_from_rows(
    key: str, rows: list[tuple[int, dict[str, str]]], columns: CsvColumns, grouped: bool
) -> ConversationRecord:
    external_id = parse_external_id(key, columns.conversation_id)
    check_message_count(len(rows))
    notes: list[str] = []
    parsed: list[tuple[datetime | None, int, MessageRecord]] = []
    for line, row in rows:
        where = f"line {line}"
        author = row.get(columns.author)
        role = parse_role(author, f"{where} {columns.author!r}") if author not in (None, "") else "customer"
        created = parse_time(row.get(columns.created_at), f"{where} {columns.created_at!r}")
        message_id = row.get(columns.message_id) or None
        message = build_message(role, row.get(columns.text), created, message_id, where, notes)
        parsed.append((created, line, message))
    # Order by time when every row has one, else by file order.
    if all(created is not None for created, _, _ in parsed):
        parsed.sort(key=lambda item: (item[0], item[1]))
    messages = [message for _, _, message in parsed]
    customer_id = rows[0][1].get(columns.customer_id)
    extra = {
        k: v
        for k, v in rows[0][1].items()
        if k not in (columns.text, columns.message_id, columns.author, columns.created_at)
    }
    return ConversationRecord(
        external_id=external_id,
        messages=messages,
        created_at=_earliest(messages),
        contact=ContactRecord(external_id=customer_id) if customer_id else None,
        raw={"csv_lines": [line for line, _ in rows], "fields": extra, "grouped": grouped},
        notes=notes,
    )
