"""Shared CLI plumbing: logging, the engine, JSON output, date options."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.text import Text

if TYPE_CHECKING:  # for annotations only: the settings tree (pydantic-settings) loads when a command runs
    from threadline.config import Settings

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def attach_consoles() -> None:
    """Detect the terminal again (colours, width, NO_COLOR): a warm process's command was handed
    another terminal and environment than the ones the consoles saw when they were created."""
    console.__init__(soft_wrap=True)  # type: ignore[misc]
    err_console.__init__(stderr=True, soft_wrap=True)  # type: ignore[misc]


def get_settings() -> Settings:
    """The process's settings, read when a command first needs them (never for `--help`)."""
    # imported when the command runs, not at start-up: pydantic-settings and the settings tree cost ~0.15 s
    from threadline.config import get_settings as read_settings

    return read_settings()


def setup_logging() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
    # SQLAlchemy logs statements with their parameters (customer text) at INFO and below: never
    # let a debug log level turn that on.
    logging.getLogger("sqlalchemy.engine").setLevel(logging.WARNING)


def engine():
    """The migrated engine for this process (starts the embedded server when needed)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.db.engine import get_engine

    return get_engine()


def _within_list_limit(value: int) -> int:
    """`--limit` at most `read.max_list_limit` (read when the option is parsed, not at import)."""
    maximum = get_settings().read.max_list_limit
    if value > maximum:
        raise typer.BadParameter(f"{value} is more than the list limit {maximum} (THREADLINE_READ_MAX_LIST_LIMIT)")
    return value


LimitOption = Annotated[int, typer.Option("--limit", min=1, callback=_within_list_limit, help="Rows to show.")]


def emit_json(payload: Any) -> None:
    """Machine-readable output on stdout (plain, no Rich markup).

    A lone surrogate that reached the payload is written as its JSON escape (``\\udXXX``), so
    the output always encodes and stays valid JSON.
    """
    text = json.dumps(payload, indent=2, default=str, ensure_ascii=False) + "\n"
    sys.stdout.write(text.encode("utf-8", "backslashreplace").decode("utf-8"))
    sys.stdout.flush()


def parse_date(value: str | None, option: str) -> datetime | None:
    """A date or datetime option; dates are midnight UTC, naive times are taken as UTC."""
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter(
            f"{value!r} is not an ISO date (YYYY-MM-DD or a full timestamp)", param_hint=option
        ) from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")


def _defang(text: str) -> str:
    """Escape terminal control characters (escape sequences, bells) in text that came from data."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", text)


def plain(*parts: str | tuple[str, str]) -> Text:
    """Rich text from data: never parsed for markup or emoji, control characters escaped
    (ids, file names, CSV headers, reasons). A part is a string or a (string, style) pair."""
    return Text.assemble(*(_defang(part) if isinstance(part, str) else (_defang(part[0]), part[1]) for part in parts))


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(plain(("error:", "red"), " ", message))
    return typer.Exit(code)
