"""File connectors: JSONL (one conversation per line) and CSV (one message per row).

Readers never write: they yield batches of valid records, each with its line number, and
report every problem of a record with its line, field and reason. A file-level problem
(unreadable, not the declared format, a mapped column missing) raises `FileFormatError`
before the first batch, so nothing is written for a file that is not what it claims to be.

Everything is validated here, before any write: types, lengths against the columns' sizes,
NUL characters and lone surrogates anywhere (ids, text, keys, labels, contact attributes,
the raw payload), nesting depth, number size and the timestamp range. What the database
still refuses is isolated by the importer (`threadline.connectors.files.importer`).

Memory does not grow with the file: the JSONL reader holds one batch, and both readers keep
their per-file indexes (ids seen, for duplicates; CSV rows grouped by conversation) in a
temporary SQLite file that is deleted when reading ends. Every regular expression applied to
file content runs in linear time.
"""

from __future__ import annotations

import csv
import json
import math
import re
import sqlite3
import tempfile
from collections import deque
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from threadline.config import InputSettings, get_settings
from threadline.connectors.records import AuthorRole, ContactRecord, ConversationRecord, MessageRecord
from threadline.db.tables import STATE_CHARS
from threadline.text.safety import safe_link

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


def _limits() -> InputSettings:
    """The `input` settings (read when used, so a process reads its configuration once, at first use)."""
    return get_settings().input


def _accepted_period() -> tuple[datetime, datetime]:
    """[first accepted instant, first refused instant after it) of record timestamps, from the settings."""
    limits = _limits()
    return datetime(limits.earliest_timestamp_year, 1, 1, tzinfo=UTC), datetime(
        limits.latest_timestamp_year + 1, 1, 1, tzinfo=UTC
    )


NOT_A_LINK_NOTE = "url dropped: only absolute http(s) URLs are kept as a conversation's source link"
NO_TIME_NOTE = "no time: neither created_at nor any message time; left out of trends and --since/--until windows"


class FileFormatError(ValueError):
    """The file as a whole cannot be imported; nothing was written."""


class RecordError(ValueError):
    """One field of one record is invalid; the other records are still imported."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


class RecordRejected(ValueError):
    """A record with one or more invalid fields: (field, reason) pairs, at most `input.max_problems_per_record`."""

    def __init__(self, problems: list[tuple[str | None, str]]) -> None:
        super().__init__("; ".join(reason for _, reason in problems))
        self.problems = problems


# --- Printing data safely ---------------------------------------------------------------------

# Characters that must not reach a terminal or a report as they are: C0/C1 controls (escape
# sequences), lone surrogates (not encodable), bidi overrides and invisible format characters.
_UNPRINTABLE = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u2028-\u202e\u2060-\u206f\ufeff\ud800-\udfff]")


def printable(value: Any, limit: int = 80) -> str:
    """`value` as text that is safe to print: unprintable characters escaped, at most `limit` characters."""
    text = value if isinstance(value, str) else str(value)
    cut = len(text) > limit
    text = _UNPRINTABLE.sub(lambda m: f"\\u{ord(m.group()):04x}", text[:limit])
    return text + ("\u2026" if cut else "")


def _show(value: Any) -> str:
    """A short quoted echo of a value in a reason (ids, roles, timestamps; never message text)."""
    return "'" + printable(value, 40) + "'"


# --- Problems and reports -----------------------------------------------------------------------


@dataclass(frozen=True)
class Problem:
    """Something wrong with one record: where (line, field) and what (reason)."""

    line: int
    record_id: str | None
    reason: str
    rejected: bool  # False: imported with a recorded change (e.g. truncation, no time)
    field: str | None = None

    def __str__(self) -> str:
        where = f"line {self.line}" + (f" (id {self.record_id})" if self.record_id else "")
        return f"{where}: {self.reason}" + ("" if self.rejected else " [imported]")


@dataclass(frozen=True)
class Duplicate:
    """An id that occurs on several lines of one file; the last occurrence is the one imported."""

    record_id: str
    lines: tuple[int, ...]

    @property
    def kept_line(self) -> int:
        return self.lines[-1]


@dataclass
class ReadReport:
    """What a reader saw, filled while iterating: valid records, problems, duplicates, notices.

    Lists are bounded by `input.max_reported_problems`; the counters keep counting past it.
    """

    records: int = 0
    problems: list[Problem] = field(default_factory=list)
    problems_total: int = 0
    rejected_records: int = 0
    duplicates: list[Duplicate] = field(default_factory=list)
    duplicates_total: int = 0  # lines superseded by a later line with the same id
    notices: list[str] = field(default_factory=list)

    @property
    def rejected(self) -> int:
        return self.rejected_records

    @property
    def problems_omitted(self) -> int:
        return self.problems_total - len(self.problems)

    @property
    def clean(self) -> bool:
        """True when every line was imported as is (no problem, no duplicate)."""
        return not self.problems_total and not self.duplicates_total

    def add(self, problem: Problem) -> None:
        self.problems_total += 1
        if len(self.problems) < _limits().max_reported_problems:
            self.problems.append(problem)

    def reject(self, line: int, record_id: str | None, problems: list[tuple[str | None, str]]) -> None:
        """One rejected record with its (field, reason) problems, all reported on `line`."""
        self.rejected_records += 1
        for field_name, reason in problems[: _limits().max_problems_per_record]:
            self.add(Problem(line, record_id, reason, True, field_name))


def _safe_id(value: Any) -> str | None:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        return None
    return printable(value, _limits().max_external_id_chars)


# --- Field parsing --------------------------------------------------------------------------------

_BAD_TEXT = re.compile("[\x00\ud800-\udfff]")


def text_problem(value: str) -> str | None:
    """Why `value` cannot be stored as text (NUL, lone surrogate), or None."""
    match = _BAD_TEXT.search(value)
    if match is None:
        return None
    if match.group() == "\x00":
        return "contains a NUL character (U+0000), which PostgreSQL cannot store"
    return f"contains a lone surrogate (U+{ord(match.group()):04X}), which is not valid Unicode"


def check_text(value: str, what: str) -> str:
    problem = text_problem(value)
    if problem:
        raise RecordError(f"{what} {problem}", what)
    return value


def detect_format(path: Path) -> str:
    """Format from the file extension (``.jsonl``/``.ndjson`` or ``.csv``)."""
    suffix = path.suffix.lower()
    if suffix in (".jsonl", ".ndjson"):
        return "jsonl"
    if suffix == ".csv":
        return "csv"
    raise FileFormatError(f"{printable(path)}: cannot tell the format from the extension; pass --format jsonl|csv")


def _check_range(parsed: datetime, what: str, shown: str) -> datetime:
    try:
        utc = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        utc = None
    earliest, latest = _accepted_period()
    if utc is None or not earliest <= utc < latest:
        raise RecordError(
            f"{what} is out of range: {shown} (accepted: years {_limits().earliest_timestamp_year} to {_limits().latest_timestamp_year})",
            what,
        )
    return parsed


def parse_time(value: Any, what: str) -> datetime | None:
    """ISO-8601 text with an offset, or Unix seconds, to an aware datetime within the accepted years.

    Naive times are rejected (ambiguous), and so is anything outside the `input` settings' accepted years.
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise RecordError(f"{what} is not a timestamp: a boolean", what)
    if isinstance(value, (int, float)):
        if not (isinstance(value, int) or math.isfinite(value)):
            raise RecordError(f"{what} is out of range: {value}", what)
        low, high = (moment.timestamp() for moment in _accepted_period())
        if not low <= value < high:
            hint = " (milliseconds instead of seconds?)" if low * 1000 <= value < high * 1000 else ""
            raise RecordError(
                f"{what} is out of range: Unix time {printable(value, 30)}{hint} "
                f"(accepted: years {_limits().earliest_timestamp_year} to {_limits().latest_timestamp_year})",
                what,
            )
        return datetime.fromtimestamp(value, tz=UTC)
    if not isinstance(value, str):
        raise RecordError(f"{what} is not a timestamp: {type(value).__name__}", what)
    text = value.strip()
    if len(text) > _limits().max_timestamp_chars:
        raise RecordError(
            f"{what} is not an ISO-8601 timestamp: longer than {_limits().max_timestamp_chars} characters", what
        )
    try:
        parsed = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        raise RecordError(f"{what} is not an ISO-8601 timestamp: {_show(text)}", what) from None
    if parsed.tzinfo is None:
        raise RecordError(f"{what} has no time zone offset: {_show(text)}", what)
    return _check_range(parsed, what, _show(text))


def parse_role(value: Any, what: str) -> AuthorRole:
    if value is None:
        raise RecordError(f"{what} has no author role (expected customer, agent, bot or note)", what)
    if not isinstance(value, str):
        raise RecordError(f"{what} is not an author role: {type(value).__name__}", what)
    role = ROLE_ALIASES.get(value.strip().lower())
    if role is None:
        raise RecordError(
            f"{what} has unknown author role {_show(value.strip())} (expected customer, agent, bot or note)", what
        )
    return role


def parse_external_id(value: Any, what: str) -> str:
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise RecordError(f"{what} is missing or not a string", what)
    text = str(value).strip()
    if not text:
        raise RecordError(f"{what} is empty", what)
    if len(text) > _limits().max_external_id_chars:
        raise RecordError(f"{what} is longer than {_limits().max_external_id_chars} characters", what)
    return check_text(text, what)


def _opt_text(value: Any, what: str, limit: int | None = None) -> str | None:
    """An optional scalar field as text (numbers are written out); objects and lists are refused."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int, float)):
        raise RecordError(f"{what} is not a string: {type(value).__name__}", what)
    text = value if isinstance(value, str) else str(value)
    if limit is not None and len(text) > limit:
        raise RecordError(f"{what} is longer than {limit} characters (the column holds {limit})", what)
    return check_text(text, what)


def build_message(
    role: AuthorRole, text: Any, created_at: datetime | None, external_id: str | None, where: str, notes: list[str]
) -> MessageRecord:
    """A validated message; over-long text is truncated and the truncation noted."""
    if not isinstance(text, str) or not text.strip():
        raise RecordError(f"{where} has no text", f"{where}.text" if where.startswith("messages") else where)
    check_text(text, f"{where}.text" if where.startswith("messages") else where)
    truncated = len(text) > _limits().max_message_chars
    if truncated:
        notes.append(f"{where} truncated from {len(text)} to {_limits().max_message_chars} characters")
        text = text[: _limits().max_message_chars]
    return MessageRecord(
        author_role=role, text=text, created_at=created_at, external_id=external_id, truncated=truncated
    )


def check_message_count(count: int, what: str = "messages") -> None:
    if count == 0:
        raise RecordError("conversation has no messages", what)
    if count > _limits().max_messages_per_conversation:
        raise RecordError(
            f"conversation has {count} messages; the limit is {_limits().max_messages_per_conversation}", what
        )


class _Collector:
    """The (field, reason) problems of one record; `take` runs one field's parser and keeps its error."""

    def __init__(self) -> None:
        self.problems: list[tuple[str | None, str]] = []

    def add(self, field_name: str | None, reason: str) -> None:
        if len(self.problems) < _limits().max_problems_per_record:
            self.problems.append((field_name, reason))

    def take(self, fn: Callable[..., Any], *args: Any, default: Any = None) -> Any:
        try:
            return fn(*args)
        except RecordError as exc:
            self.add(exc.field, exc.reason)
            return default

    def raise_if_any(self) -> None:
        if self.problems:
            raise RecordRejected(self.problems)


def _contact(value: Any, problems: _Collector) -> ContactRecord | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        problems.add("customer", "customer is not an object")
        return None
    ident = value.get("id")
    ident_field = "customer.id"
    if ident is None or ident == "":
        ident, ident_field = value.get("email"), "customer.email"
    if ident is None or ident == "":
        problems.add("customer", "customer has neither id nor email")
        return None
    attributes = value.get("attributes") or {}
    if not isinstance(attributes, dict):
        problems.add("customer.attributes", "customer.attributes is not an object")
        return None
    external_id = problems.take(parse_external_id, ident, ident_field)
    fields = {name: problems.take(_opt_text, value.get(name), f"customer.{name}") for name in CONTACT_FIELDS}
    if external_id is None:
        return None
    return ContactRecord(external_id=external_id, attributes=attributes, **fields)


CONTACT_FIELDS = ("email", "name", "company", "plan")


def conversation_from_json(obj: Any) -> ConversationRecord:
    """Validate one JSONL object (the star-support format plus optional fields).

    Raises `RecordRejected` with every (field, reason) found (at most `input.max_problems_per_record`).
    """
    if not isinstance(obj, dict):
        raise RecordRejected([(None, "line is not a JSON object")])
    unsafe: list[tuple[str | None, str]] = list(_unsafe_values(obj))
    if unsafe:
        raise RecordRejected(unsafe)
    problems = _Collector()
    external_id = problems.take(parse_external_id, obj.get("id"), "id")
    raw_messages = obj.get("messages")
    messages: list[MessageRecord] = []
    notes: list[str] = []
    if not isinstance(raw_messages, list):
        problems.add("messages", "messages is missing or not a list")
    elif problems.take(check_message_count, len(raw_messages), default=False) is not False:
        for index, raw in enumerate(raw_messages):
            where = f"messages[{index}]"
            if not isinstance(raw, dict):
                problems.add(where, f"{where} is not an object")
                continue
            role = problems.take(parse_role, raw.get("author", raw.get("role")), f"{where}.author")
            created = problems.take(parse_time, raw.get("created_at"), f"{where}.created_at")
            message_id = raw.get("id")
            if message_id is not None:
                message_id = problems.take(parse_external_id, message_id, f"{where}.id")
            message = problems.take(
                build_message, role or "customer", raw.get("text"), created, message_id, where, notes
            )
            if message is not None:
                messages.append(message)
    tags = obj.get("tags") or []
    if not isinstance(tags, list) or not all(isinstance(t, str) for t in tags):
        problems.add("tags", "tags is not a list of strings")
    created_at = problems.take(parse_time, obj.get("created_at"), "created_at")
    updated_at = problems.take(parse_time, obj.get("updated_at"), "updated_at")
    state = problems.take(_opt_text, obj.get("state"), "state", STATE_CHARS)
    url = problems.take(_opt_text, obj.get("url"), "url")
    if url is not None and safe_link(url) is None:
        notes.append(NOT_A_LINK_NOTE)  # the record is kept; the url is not (it would never be shown as a link)
        url = None
    subject = problems.take(_opt_text, obj.get("subject"), "subject")
    assignee = problems.take(_opt_text, obj.get("assignee"), "assignee")
    contact = _contact(obj.get("customer"), problems)
    problems.raise_if_any()
    created_at = created_at or _earliest(messages)
    if created_at is None:
        notes.append(NO_TIME_NOTE)
    assert external_id is not None  # an invalid id was reported by raise_if_any
    return ConversationRecord(
        external_id=external_id,
        messages=messages,
        created_at=created_at,
        updated_at=updated_at,
        state=state,
        url=url,
        subject=subject,
        tags=tags,
        contact=contact,
        assignee=assignee,
        raw=obj,
        notes=notes,
    )


def _earliest(messages: list[MessageRecord]) -> datetime | None:
    times = [m.created_at for m in messages if m.created_at is not None]
    return min(times) if times else None


def _record_notes(line: int, record: ConversationRecord, report: ReadReport, text_field: str | None = None) -> None:
    """Report what the reader changed or could not fill on an imported record (not a rejection)."""
    for note in record.notes:
        field_name: str | None
        if note == NO_TIME_NOTE:
            field_name = "created_at"
        elif note == NOT_A_LINK_NOTE:
            field_name = "url"
        elif note.startswith("messages["):
            field_name = note.split(" ", 1)[0] + ".text"
        else:
            field_name = text_field
        reason = f"created_at is missing; {NO_TIME_NOTE}" if note == NO_TIME_NOTE else note
        report.add(
            Problem(line, printable(record.external_id, _limits().max_external_id_chars), reason, False, field_name)
        )


# --- JSON values: numbers, strings, keys, depth ----------------------------------------------------


class _Refused:
    """A JSON number the decoder refused (too long, not finite, NaN); found and reported by path."""

    __slots__ = ("reason",)

    def __init__(self, reason: str) -> None:
        self.reason = reason


def _parse_int(text: str) -> int | _Refused:
    if len(text) > _limits().max_json_number_chars:
        return _Refused(
            f"has a number with {len(text.lstrip('-'))} digits; the limit is {_limits().max_json_number_chars}"
        )
    return int(text)


def _parse_float(text: str) -> float | _Refused:
    if len(text) > _limits().max_json_number_chars:
        return _Refused(f"has a number {len(text)} characters long; the limit is {_limits().max_json_number_chars}")
    value = float(text)
    if not math.isfinite(value):
        return _Refused(f"has a number out of range ({printable(text, 30)} is beyond a double)")
    return value


def _parse_constant(name: str) -> _Refused:
    return _Refused(f"has {name}, which is not a number JSON allows")


_DECODER = json.JSONDecoder(parse_int=_parse_int, parse_float=_parse_float, parse_constant=_parse_constant)
_KEY_PATH = re.compile(r"[A-Za-z_][A-Za-z0-9_\-]{0,63}")
MAX_FIELD_PATH_CHARS = 120  # characters of a field path in a report (deep paths are cut)


def _child_path(parent: str, key: Any) -> str:
    if isinstance(key, int):
        path = f"{parent}[{key}]"
    elif _KEY_PATH.fullmatch(key):
        path = f"{parent}.{key}" if parent else key
    else:
        path = f"{parent}[{_show(key)}]"
    return path if len(path) <= MAX_FIELD_PATH_CHARS else path[:MAX_FIELD_PATH_CHARS] + "\u2026"


def _unsafe_values(obj: Any) -> Iterator[tuple[str, str]]:
    """(field, reason) for every value no column can store: refused numbers, NUL or lone surrogates
    in strings and keys, nesting deeper than _limits().max_json_depth. Iterative; at most `input.max_problems_per_record`."""
    found = 0
    stack: list[tuple[str, Any, int]] = [("", obj, 1)]
    while stack and found < _limits().max_problems_per_record:
        path, value, depth = stack.pop()
        where = path or "record"
        if isinstance(value, str):
            problem = text_problem(value)
            if problem:
                found += 1
                yield where, f"{where} {problem}"
        elif isinstance(value, _Refused):
            found += 1
            yield where, f"{where} {value.reason}"
        elif isinstance(value, (dict, list)):
            if depth > _limits().max_json_depth:
                found += 1
                yield where, f"{where} is nested deeper than {_limits().max_json_depth} levels"
                continue
            if isinstance(value, dict):
                children = []
                for key, child in value.items():
                    problem = text_problem(key)
                    if problem:
                        found += 1
                        yield where, f"{where} has a key that {problem}"
                        continue
                    children.append((_child_path(path, key), child, depth + 1))
            else:
                children = [(_child_path(path, index), child, depth + 1) for index, child in enumerate(value)]
            stack.extend(reversed(children))


_JSON_TOKEN = re.compile(r'"(?:[^"\\]++|\\.)*+"|[\[\]{}]')
_COLON = re.compile(r"\s*+:")


def _too_deep_field(text: str) -> str:
    """The top-level key under which `text` nests too deeply for the decoder (a linear scan)."""
    depth, key = 0, None
    for match in _JSON_TOKEN.finditer(text):
        token = match.group()
        if token in "[{":
            depth += 1
            if depth > _limits().max_json_depth:
                break
        elif token in "]}":
            depth -= 1
        elif depth == 1 and _COLON.match(text, match.end()):
            try:
                key = json.loads(token)
            except ValueError:
                key = None
    if isinstance(key, str) and not text_problem(key):
        return _child_path("", key)
    return "record"


# --- JSONL ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Entry:
    """A valid record and the line it came from (its first line for CSV)."""

    line: int
    record: ConversationRecord


def _open_binary(path: Path) -> BinaryIO:
    try:
        return path.open("rb")
    except OSError as exc:
        raise FileFormatError(
            f"{printable(path)}: cannot read the file ({exc.strerror or type(exc).__name__})"
        ) from None


class _Index:
    """A temporary SQLite file for per-file bookkeeping that must not live in memory."""

    def __init__(self) -> None:
        self._dir = tempfile.TemporaryDirectory(prefix="threadline-import-")
        self.db = sqlite3.connect(Path(self._dir.name) / "index.sqlite3", isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", "temp_store=FILE", "cache_size=-8000"):
            self.db.execute(f"PRAGMA {pragma}")

    def close(self) -> None:
        self.db.close()
        self._dir.cleanup()


class _DuplicateTracker:
    """Ids seen in one file, in SQLite; the last occurrence of an id wins and earlier ones are reported."""

    def __init__(self, index: _Index) -> None:
        self.db = index.db
        self.db.execute("CREATE TABLE seen (id TEXT PRIMARY KEY, line INTEGER NOT NULL)")
        self.db.execute("CREATE TABLE superseded (id TEXT NOT NULL, line INTEGER NOT NULL)")

    def previous_line(self, external_id: str) -> int | None:
        row = self.db.execute("SELECT line FROM seen WHERE id = ?", (external_id,)).fetchone()
        return row[0] if row else None

    def flush(self, entries: list[Entry], superseded: list[tuple[str, int]]) -> None:
        self.db.execute("BEGIN")
        self.db.executemany(
            "INSERT OR REPLACE INTO seen (id, line) VALUES (?, ?)", [(e.record.external_id, e.line) for e in entries]
        )
        self.db.executemany("INSERT INTO superseded (id, line) VALUES (?, ?)", superseded)
        self.db.execute("COMMIT")

    def report(self, report: ReadReport) -> None:
        report.duplicates_total = self.db.execute("SELECT count(*) FROM superseded").fetchone()[0]
        rows = self.db.execute(
            "SELECT d.id, group_concat(d.line), s.line FROM superseded d JOIN seen s ON s.id = d.id "
            "GROUP BY d.id ORDER BY min(d.line) LIMIT ?",
            (_limits().max_reported_problems,),
        )
        for external_id, lines, kept in rows:
            earlier = sorted(int(line) for line in lines.split(","))
            report.duplicates.append(
                Duplicate(printable(external_id, _limits().max_external_id_chars), (*earlier, kept))
            )


class _Batcher:
    """Collects entries into batches bounded by count and message characters."""

    def __init__(self, batch_size: int | None) -> None:
        self.batch_size = batch_size or _limits().store_batch_size
        self.entries: list[Entry] = []
        self.chars = 0

    def add(self, entry: Entry) -> bool:
        """Add `entry`; True when the batch is full."""
        self.entries.append(entry)
        self.chars += sum(len(m.text) for m in entry.record.messages)
        return len(self.entries) >= self.batch_size or self.chars >= _limits().store_batch_max_chars

    def take(self) -> list[Entry]:
        entries, self.entries, self.chars = self.entries, [], 0
        return entries


def _decode_json_line(raw_line: bytes) -> Any:
    try:
        text = raw_line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RecordRejected([(None, f"invalid UTF-8 at byte {exc.start} of the line")]) from None
    try:
        return _DECODER.decode(text)
    except json.JSONDecodeError as exc:
        raise RecordRejected([(None, f"invalid JSON at column {exc.colno}: {exc.msg}")]) from None
    except RecursionError:
        where = _too_deep_field(text)
        raise RecordRejected([(where, f"{where} is nested deeper than {_limits().max_json_depth} levels")]) from None


def read_jsonl(path: Path, report: ReadReport, batch_size: int | None = None) -> Generator[list[Entry], None, None]:
    """Yield batches of valid conversations from a JSONL file; problems and duplicates go to `report`.

    The first non-blank line must be a JSON object, otherwise the file is not JSONL and
    `FileFormatError` is raised before anything is yielded. Within the file the last line with
    a given id wins; the earlier ones are reported as duplicates.
    """
    with _open_binary(path) as handle:
        _sniff_jsonl(path, handle)
        index = _Index()
        try:
            tracker = _DuplicateTracker(index)
            batch = _Batcher(batch_size)
            positions: dict[str, int] = {}  # id -> position in the pending batch
            superseded: list[tuple[str, int]] = []
            for number, raw_line in enumerate(_bounded_lines(handle), start=1):
                if raw_line is None:
                    report.reject(
                        number, None, [(None, f"line is longer than {_limits().max_import_line_bytes} bytes")]
                    )
                    continue
                if not raw_line.strip():
                    continue
                record_id = None
                try:
                    obj = _decode_json_line(raw_line)
                    if isinstance(obj, dict):
                        record_id = _safe_id(obj.get("id"))
                    record = conversation_from_json(obj)
                except RecordRejected as exc:
                    report.reject(number, record_id, exc.problems)
                    continue
                report.records += 1
                _record_notes(number, record, report)
                entry = Entry(number, record)
                key = record.external_id
                if key in positions:  # an earlier line of this batch: replace it
                    previous = batch.entries[positions[key]]
                    superseded.append((key, previous.line))
                    batch.entries[positions[key]] = entry
                    continue
                previous_line = tracker.previous_line(key)
                if previous_line is not None:  # written in an earlier batch: this line overwrites it
                    superseded.append((key, previous_line))
                positions[key] = len(batch.entries)
                if batch.add(entry):
                    entries = batch.take()
                    tracker.flush(entries, superseded)
                    positions, superseded = {}, []
                    yield entries
            entries = batch.take()
            tracker.flush(entries, superseded)
            if entries:
                yield entries
            tracker.report(report)
        finally:
            index.close()


def _bounded_lines(handle: BinaryIO) -> Iterator[bytes | None]:
    """Lines of a binary file; None for a line over the size limit (its rest is skipped)."""
    while True:
        line = handle.readline(_limits().max_import_line_bytes + 1)
        if not line:
            return
        if len(line) > _limits().max_import_line_bytes and not line.endswith(b"\n"):
            while (rest := handle.readline(_limits().max_import_line_bytes)) and not rest.endswith(b"\n"):
                pass
            yield None
            continue
        yield line


def _sniff_jsonl(path: Path, handle: BinaryIO) -> None:
    for line in _bounded_lines(handle):
        if line is None or not line.strip():
            continue
        try:
            first = _DECODER.decode(line.decode("utf-8"))
        except RecursionError:  # an object too deep to decode is still an object: reported per line later
            first = {} if line.lstrip().startswith(b"{") else None
        except (UnicodeDecodeError, ValueError):
            first = None
        handle.seek(0)
        if not isinstance(first, dict):
            raise FileFormatError(f"{printable(path)}: not JSONL (the first non-blank line is not a JSON object)")
        return
    handle.seek(0)


# --- CSV -----------------------------------------------------------------------------------------

CSV_OPTIONS = {
    "text": "--text-col",
    "conversation_id": "--conversation-col",
    "message_id": "--message-col",
    "author": "--author-col",
    "created_at": "--time-col",
    "customer_id": "customer_id",
}


@dataclass(frozen=True)
class CsvColumns:
    """Which CSV column holds what. Only `text` is required.

    A column named explicitly (listed in `explicit`, or given a non-default name) must be in
    the header, otherwise the file is refused before anything is written. A default name that
    is absent keeps its meaning: no conversation column makes one conversation per row, no
    author column makes every message the customer's, no time column leaves times empty.
    """

    text: str = "text"
    conversation_id: str = "conversation_id"
    message_id: str = "message_id"
    author: str = "author"
    created_at: str = "created_at"
    customer_id: str = "customer_id"
    explicit: frozenset[str] = frozenset()

    def is_explicit(self, name: str) -> bool:
        default = type(self).__dataclass_fields__[name].default
        return name in self.explicit or getattr(self, name) != default


class _CsvLineError(Exception):
    """A physical line the CSV reader cannot use (bad UTF-8, too long); raised through csv.reader."""

    def __init__(self, line: int, reason: str) -> None:
        super().__init__(reason)
        self.line = line
        self.reason = reason


class _LineFeed:
    """Decoded physical lines for `csv.reader`, numbered, with a size cap per record and a rewind.

    csv.reader pulls one line at a time, so the lines of the record being parsed are known.
    When a record fails (an unclosed quote reaches the end of the file or the size cap, a
    stray quote), `rewind` re-feeds every line of it after its first one: the failed record
    costs one reported line, never the rows an open quote swallowed.
    """

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.pending: deque[tuple[int, str]] = deque()
        self.record: list[tuple[int, str]] = []
        self.record_bytes = 0
        self.next_number = 1
        self.first = True

    def __iter__(self) -> _LineFeed:
        return self

    def __next__(self) -> str:
        if self.pending:
            number, text = self.pending.popleft()
        else:
            raw = self.handle.readline(_limits().max_csv_record_bytes + 1)
            if not raw:
                raise StopIteration
            number = self.next_number
            self.next_number += 1
            if len(raw) > _limits().max_csv_record_bytes and not raw.endswith(b"\n"):
                while (rest := self.handle.readline(_limits().max_csv_record_bytes)) and not rest.endswith(b"\n"):
                    pass
                raise _CsvLineError(number, f"line is longer than {_limits().max_csv_record_bytes} bytes")
            if self.first:
                self.first = False
                raw = raw.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 byte order mark
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                raise _CsvLineError(number, f"invalid UTF-8 at byte {exc.start} of the line") from None
        self.record.append((number, text))
        self.record_bytes += len(text)
        if self.record_bytes > _limits().max_csv_record_bytes:
            raise _CsvLineError(self.record[0][0], f"row is longer than {_limits().max_csv_record_bytes} bytes")
        return text

    def start_record(self) -> None:
        self.record = []
        self.record_bytes = 0

    def record_line(self) -> int:
        return self.record[0][0] if self.record else self.next_number

    def rewind(self) -> None:
        """Re-feed the lines of the failed record after its first one."""
        self.pending.extendleft(reversed(self.record[1:]))
        self.record = []
        self.record_bytes = 0


def _csv_rows(feed: _LineFeed, report: ReadReport) -> Iterator[tuple[int, list[str]]]:
    """(first line, cells) of each CSV record; broken records are reported and skipped."""
    reader = csv.reader(feed, strict=True)
    while True:
        feed.start_record()
        try:
            cells = next(reader)
        except StopIteration:
            return
        except _CsvLineError as exc:
            report.reject(exc.line, None, [(None, exc.reason)])
            feed.rewind()
            continue
        except csv.Error as exc:
            line = feed.record_line()
            reason = str(exc)
            if "unexpected end of data" in reason:
                reason = "a quoted cell is never closed (unterminated quote); the row is skipped"
            elif "field larger than field limit" in reason:
                reason = (
                    f"a cell is larger than {_limits().max_csv_field_bytes} bytes, or a quote opened here is never closed; "
                    "the row is skipped"
                )
            elif len(feed.record) > 1:
                reason = f"malformed CSV row starting here ({reason}); a quote opened here may be unterminated"
            else:
                reason = f"malformed CSV row: {reason}"
            report.reject(line, None, [(None, reason)])
            feed.rewind()
            continue
        if cells:
            yield feed.record_line(), cells


@dataclass
class _CsvLayout:
    """Column positions in the header, resolved once."""

    header: list[str]
    text: int
    conversation_id: int | None
    message_id: int | None
    author: int | None
    created_at: int | None
    customer_id: int | None
    names: CsvColumns

    def cell(self, cells: list[str], index: int | None) -> str | None:
        if index is None or index >= len(cells):
            return None
        return cells[index]


def _resolve_header(path: Path, header: list[str], columns: CsvColumns, report: ReadReport) -> _CsvLayout:
    shown = ", ".join(_show(name) for name in header[:20]) + (", ..." if len(header) > 20 else "")
    for position, name in enumerate(header, start=1):
        problem = text_problem(name)
        if problem:
            raise FileFormatError(f"{printable(path)}: header column {position} {problem}")
    positions: dict[str, int] = {}
    for position, name in enumerate(header):
        positions.setdefault(name, position)
    resolved: dict[str, int | None] = {}
    for attribute, option in CSV_OPTIONS.items():
        name = getattr(columns, attribute)
        if name in positions:
            if header.count(name) > 1:
                raise FileFormatError(f"{printable(path)}: column {_show(name)} ({option}) appears more than once")
            resolved[attribute] = positions[name]
        elif attribute == "text":
            raise FileFormatError(
                f"{printable(path)}: no {_show(name)} column in the header (columns: {shown}); use --text-col"
            )
        elif columns.is_explicit(attribute):
            raise FileFormatError(
                f"{printable(path)}: column {_show(name)} given with {option} is not in the header (columns: {shown})"
            )
        else:
            resolved[attribute] = None
    used = [value for value in resolved.values() if value is not None]
    if len(used) != len(set(used)):
        raise FileFormatError(f"{printable(path)}: one column is mapped to two roles")
    if resolved["conversation_id"] is None:
        report.notices.append(
            f"no {_show(columns.conversation_id)} column: each row is its own conversation (--conversation-col)"
        )
    if resolved["author"] is None:
        report.notices.append(
            f"no {_show(columns.author)} column: every message is taken as the customer's (--author-col)"
        )
    if resolved["created_at"] is None:
        report.notices.append(
            f"no {_show(columns.created_at)} column: conversations have no time and are left out of "
            "trends and --since/--until windows (--time-col)"
        )
    return _CsvLayout(header=header, names=columns, **resolved)  # type: ignore[arg-type]


@dataclass
class _CsvRow:
    """The parts of one CSV row a conversation is built from (text already cut to the message limit)."""

    line: int
    text: str
    text_chars: int
    author: str | None
    created_at: str | None
    message_id: str | None
    customer_id: str | None
    extras: dict[str, str | None] | None  # unmapped cells, kept for the first row of a conversation
    problems: list[tuple[str | None, str]]


def _split_row(layout: _CsvLayout, line: int, cells: list[str], keep_extras: bool) -> _CsvRow:
    problems: list[tuple[str | None, str]] = []
    if any("\x00" in cell for cell in cells):  # decoded UTF-8 has no lone surrogates: NUL is all to look for
        for position, cell in enumerate(cells[: len(layout.header)]):
            problem = text_problem(cell)
            if problem:
                problems.append((layout.header[position], f"{_show(layout.header[position])} {problem}"))
    text = layout.cell(cells, layout.text) or ""
    extras = None
    if keep_extras:
        skip = {layout.text, layout.message_id, layout.author, layout.created_at}
        extras = {
            name: (cells[position] if position < len(cells) else None)
            for position, name in enumerate(layout.header)
            if position not in skip
        }
    return _CsvRow(
        line=line,
        text=text[: _limits().max_message_chars + 1],
        text_chars=len(text),
        author=layout.cell(cells, layout.author),
        created_at=layout.cell(cells, layout.created_at),
        message_id=layout.cell(cells, layout.message_id),
        customer_id=layout.cell(cells, layout.customer_id),
        extras=extras,
        problems=problems[: _limits().max_problems_per_record],
    )


def read_csv(
    path: Path, report: ReadReport, columns: CsvColumns = CsvColumns(), batch_size: int | None = None
) -> Generator[list[Entry], None, None]:
    """Yield batches of conversations from a CSV of messages, grouped by conversation id.

    Rows of one conversation need not be next to each other: they are spilled to a temporary
    SQLite file and read back grouped, in the order each conversation first appears, so memory
    stays bounded whatever the file size. Without a conversation-id column every row is its own
    single-message conversation (``row-N``), which fits exports of single queries.
    """
    csv.field_size_limit(_limits().max_csv_field_bytes)
    with _open_binary(path) as handle:
        feed = _LineFeed(handle)
        header = _read_header(path, feed)
        layout = _resolve_header(path, header, columns, report)
        rows = _csv_rows(feed, report)
        if layout.conversation_id is None:
            yield from _csv_batches(layout, _single_row_conversations(layout, rows, report), report, batch_size)
            return
        index = _Index()
        try:
            _spill_rows(index, layout, rows, report)
            yield from _csv_batches(layout, _grouped_conversations(index), report, batch_size)
        finally:
            index.close()


def _read_header(path: Path, feed: _LineFeed) -> list[str]:
    reader = csv.reader(feed, strict=True)
    try:
        while True:
            header = next(reader)
            if header:
                return [name.strip() for name in header]
    except StopIteration:
        raise FileFormatError(f"{printable(path)}: the file is empty (no CSV header)") from None
    except _CsvLineError as exc:
        raise FileFormatError(f"{printable(path)}: the header is unreadable ({exc.reason})") from None
    except csv.Error as exc:
        raise FileFormatError(f"{printable(path)}: not CSV ({printable(exc)})") from None


def _too_wide(layout: _CsvLayout, line: int, cells: list[str], report: ReadReport) -> bool:
    if len(cells) > len(layout.header) and any(cell.strip() for cell in cells[len(layout.header) :]):
        report.reject(
            line, None, [(None, f"row has {len(cells)} cells but the header has {len(layout.header)}; row skipped")]
        )
        return True
    return False


def _single_row_conversations(
    layout: _CsvLayout, rows: Iterator[tuple[int, list[str]]], report: ReadReport
) -> Iterator[tuple[str, list[_CsvRow], int]]:
    for line, cells in rows:
        if _too_wide(layout, line, cells, report) or not any(cell.strip() for cell in cells):
            continue
        yield f"row-{line}", [_split_row(layout, line, cells, keep_extras=True)], 1


_SPILL_CHUNK = 2_000  # rows per SQLite executemany while spilling
_KNOWN_KEYS_CACHE = (
    100_000  # conversation ids remembered in memory to skip a SQLite lookup (bounded: cleared when full)
)
_ROW_COLUMNS = ("line", "text", "text_chars", "author", "created_at", "message_id", "customer_id")


def _spill_rows(index: _Index, layout: _CsvLayout, rows: Iterator[tuple[int, list[str]]], report: ReadReport) -> None:
    """Write every usable row to SQLite with its conversation key; unmapped cells only for a key's first row."""
    db = index.db
    db.execute("CREATE TABLE groups (key TEXT PRIMARY KEY, first_seq INTEGER NOT NULL)")
    db.execute(
        "CREATE TABLE rows (seq INTEGER PRIMARY KEY, key TEXT NOT NULL, line INTEGER, text TEXT, text_chars INTEGER,"
        " author TEXT, created_at TEXT, message_id TEXT, customer_id TEXT, extras TEXT, problems TEXT)"
    )
    db.execute("BEGIN")
    pending: list[tuple[Any, ...]] = []
    known: set[str] = set()
    seq = 0
    column = layout.names.conversation_id
    for line, cells in rows:
        if _too_wide(layout, line, cells, report) or not any(cell.strip() for cell in cells):
            continue
        key = (layout.cell(cells, layout.conversation_id) or "").strip()
        if not key:
            report.reject(line, None, [(column, f"{_show(column)} is empty")])
            continue
        seq += 1
        first = False
        if key not in known:
            first = db.execute("INSERT OR IGNORE INTO groups (key, first_seq) VALUES (?, ?)", (key, seq)).rowcount == 1
            if len(known) >= _KNOWN_KEYS_CACHE:
                known.clear()
            known.add(key)
        row = _split_row(layout, line, cells, keep_extras=first)
        pending.append(
            (
                seq,
                key,
                *(getattr(row, name) for name in _ROW_COLUMNS),
                json.dumps(row.extras, ensure_ascii=False) if row.extras is not None else None,
                json.dumps(row.problems, ensure_ascii=False) if row.problems else None,
            )
        )
        if len(pending) >= _SPILL_CHUNK:
            db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", pending)
            pending = []
    db.executemany("INSERT INTO rows VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", pending)
    db.execute("CREATE INDEX rows_by_key ON rows (key, seq)")
    db.execute("CREATE INDEX groups_in_order ON groups (first_seq)")
    db.execute("COMMIT")


def _grouped_conversations(index: _Index) -> Iterator[tuple[str, list[_CsvRow], int]]:
    """(key, rows, row count) per conversation in order of first appearance; rows past the limit are only counted."""
    cursor = index.db.execute(
        "SELECT g.key, r.line, r.text, r.text_chars, r.author, r.created_at, r.message_id, r.customer_id, r.extras,"
        " r.problems FROM groups g JOIN rows r ON r.key = g.key ORDER BY g.first_seq, r.seq"
    )
    key: str | None = None
    group: list[_CsvRow] = []
    count = 0
    for row_key, line, text, text_chars, author, created_at, message_id, customer_id, extras, problems in cursor:
        if row_key != key:
            if key is not None:
                yield key, group, count
            key, group, count = row_key, [], 0
        count += 1
        if count <= _limits().max_messages_per_conversation:
            group.append(
                _CsvRow(
                    line,
                    text,
                    text_chars,
                    author,
                    created_at,
                    message_id,
                    customer_id,
                    extras=json.loads(extras) if extras is not None else None,
                    problems=[tuple(p) for p in json.loads(problems)] if problems else [],
                )
            )
    if key is not None:
        yield key, group, count


def _csv_batches(
    layout: _CsvLayout,
    conversations: Iterator[tuple[str, list[_CsvRow], int]],
    report: ReadReport,
    batch_size: int | None,
) -> Iterator[list[Entry]]:
    batch = _Batcher(batch_size)
    for key, rows, count in conversations:
        line = rows[0].line
        try:
            record = _conversation_from_rows(layout, key, rows, count)
        except _CsvRejected as exc:
            report.rejected_records += 1
            for problem_line, field_name, reason in exc.problems:
                report.add(
                    Problem(problem_line, printable(key, _limits().max_external_id_chars), reason, True, field_name)
                )
            continue
        report.records += 1
        _record_notes(line, record, report, layout.names.text)
        if batch.add(Entry(line, record)):
            yield batch.take()
    if batch.entries:
        yield batch.take()


class _CsvRejected(ValueError):
    """A CSV conversation with (line, field, reason) problems."""

    def __init__(self, problems: list[tuple[int, str | None, str]]) -> None:
        super().__init__("; ".join(reason for _, _, reason in problems))
        self.problems = problems


class _CsvProblems:
    """(line, field, reason) problems of one CSV conversation; `take` runs one cell's parser."""

    def __init__(self) -> None:
        self.problems: list[tuple[int, str | None, str]] = []

    def add(self, line: int, field_name: str | None, reason: str) -> None:
        if len(self.problems) < _limits().max_problems_per_record:
            self.problems.append((line, field_name, reason))

    def take(self, line: int, fn: Callable[..., Any], *args: Any) -> Any:
        try:
            return fn(*args)
        except RecordError as exc:
            self.add(line, exc.field, exc.reason)
            return None

    def raise_if_any(self) -> None:
        if self.problems:
            raise _CsvRejected(self.problems)


def _conversation_from_rows(layout: _CsvLayout, key: str, rows: list[_CsvRow], count: int) -> ConversationRecord:
    names = layout.names
    problems = _CsvProblems()
    first = rows[0]
    external_id = problems.take(first.line, parse_external_id, key, names.conversation_id)
    problems.take(first.line, check_message_count, count, names.conversation_id)
    for row in rows:
        for field_name, reason in row.problems:
            problems.add(row.line, field_name, reason)
    problems.raise_if_any()
    notes: list[str] = []
    parsed: list[tuple[datetime | None, int, MessageRecord]] = []
    for row in rows:
        role = "customer"
        if row.author not in (None, ""):
            role = problems.take(row.line, parse_role, row.author, names.author) or "customer"
        created = problems.take(row.line, parse_time, row.created_at, names.created_at)
        message_id = None
        if row.message_id:
            message_id = problems.take(row.line, parse_external_id, row.message_id, names.message_id)
        # The spilled text is already cut to `input.max_message_chars` + 1: the note gives the real length.
        message = problems.take(row.line, build_message, role, row.text, created, message_id, names.text, [])
        if message is None:
            continue
        if message.truncated:
            notes.append(f"line {row.line} truncated from {row.text_chars} to {_limits().max_message_chars} characters")
        parsed.append((created, row.line, message))
    contact = None
    if first.customer_id:
        contact_id = problems.take(first.line, parse_external_id, first.customer_id, names.customer_id)
        contact = ContactRecord(external_id=contact_id) if contact_id else None
    problems.raise_if_any()
    # Order by time when every row has one, else by file order.
    if all(created is not None for created, _, _ in parsed):
        parsed.sort(key=lambda item: (item[0], item[1]))
    messages = [message for _, _, message in parsed]
    created_at = _earliest(messages)
    if created_at is None and layout.created_at is not None:
        notes.append(NO_TIME_NOTE)
    assert external_id is not None  # an invalid id was reported by raise_if_any
    return ConversationRecord(
        external_id=external_id,
        messages=messages,
        created_at=created_at,
        contact=contact,
        raw={
            "csv_lines": [row.line for row in rows],
            "fields": first.extras or {},
            "grouped": layout.conversation_id is not None,
        },
        notes=notes,
    )
