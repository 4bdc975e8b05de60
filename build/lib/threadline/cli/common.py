"""Shared CLI plumbing: logging, the engine, JSON output, date options."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.console import Console

from threadline.config import get_settings

console = Console(soft_wrap=True)
err_console = Console(stderr=True, soft_wrap=True)


def setup_logging() -> None:
    settings = get_settings()
    logging.basicConfig(
        level=getattr(logging, settings.log_level.upper(), logging.WARNING),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


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
    """Machine-readable output on stdout (plain, no Rich markup)."""
    sys.stdout.write(json.dumps(payload, indent=2, default=str, ensure_ascii=False) + "\n")


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


def fail(message: str, code: int = 2) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}")
    return typer.Exit(code)
