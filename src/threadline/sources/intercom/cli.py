"""CLI for the Intercom connector (a Typer sub-app the main `threadline` command mounts).

    threadline sources add intercom --name N --token-env VAR [--region us|eu|au]
    threadline sync SOURCE [--since YYYY-MM-DD]

The token itself is never stored or printed: the source's config keeps the name of the
environment variable that holds it. `python -m threadline.sources.intercom.cli` runs this
sub-app on its own (`add intercom ...`, `sync ...`).
"""

from __future__ import annotations

import asyncio
import logging
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from sqlalchemy import select
from sqlalchemy.orm import Session

from threadline.sources.intercom.client import (
    DEFAULT_TOKEN_ENV,
    REGION_BASE_URLS,
    IntercomAuthError,
    IntercomClient,
    IntercomError,
    resolve_token,
)
from threadline.sources.intercom.sync import IntercomSync, SyncReport

logger = logging.getLogger(__name__)

SOURCE_KIND = "intercom"
EXIT_DEAD_LETTERS = 1  # the sync finished but some conversations are dead-lettered
EXIT_FAILED = 2  # nothing usable happened (bad token, unknown source, Intercom down)

app = typer.Typer(help="Intercom connector.", no_args_is_help=True, pretty_exceptions_enable=False)
sources_add_app = typer.Typer(help="Add a source.", no_args_is_help=True)
app.add_typer(sources_add_app, name="add")


def _engine():
    from threadline.cli.common import engine

    return engine()


def _fail(message: str) -> typer.Exit:
    from threadline.cli.common import fail

    return fail(message, EXIT_FAILED)


@sources_add_app.command("intercom")
def add_intercom_command(
    name: Annotated[str, typer.Option("--name", help="Name of the new source.")],
    token_env: Annotated[
        str, typer.Option("--token-env", help="Environment variable holding the access token.")
    ] = DEFAULT_TOKEN_ENV,
    region: Annotated[str, typer.Option("--region", help="Intercom region: us, eu or au.")] = "us",
    base_url: Annotated[
        str | None, typer.Option("--base-url", hidden=True, help="Override the API URL (local stand-in).")
    ] = None,
) -> None:
    """Register an Intercom workspace as a source (stores the variable's name, never the token)."""
    from threadline.cli.common import console
    from threadline.sources.store import get_or_create_source

    if region.lower() not in REGION_BASE_URLS:
        raise _fail(f"--region must be one of {', '.join(sorted(REGION_BASE_URLS))}")
    config: dict[str, Any] = {"token_env": token_env, "region": region.lower()}
    if base_url:
        config["base_url"] = base_url
    with Session(_engine()) as session, session.begin():
        source = get_or_create_source(session, name, kind=SOURCE_KIND, config=config)
        if source.kind != SOURCE_KIND:
            raise _fail(f"source {name!r} already exists with kind {source.kind!r}")
        source.config = config
        source_id = source.id
    console.print(f"intercom source [bold]{name}[/bold] (id {source_id}) reads its token from ${token_env}")


def _since_epoch(value: str | None) -> int | None:
    from threadline.cli.common import parse_date

    parsed = parse_date(value, "--since")
    return int(parsed.timestamp()) if parsed else None


def sync_source(engine: Any, name: str, since: int | None = None, run_id: int | None = None) -> SyncReport:
    """Sync the Intercom source called `name` into the database (usable by runs, not only the CLI)."""
    from threadline.db.models import Source

    with Session(engine) as session:
        source_id = session.execute(select(Source.id).where(Source.name == name)).scalar_one_or_none()
    if source_id is None:
        raise LookupError(f"no source named {name!r}")
    return sync_source_id(engine, source_id, since=since, run_id=run_id)


def sync_source_id(engine: Any, source_id: int, since: int | None = None, run_id: int | None = None) -> SyncReport:
    """Sync the Intercom source with id `source_id`: the one code path of the CLI and the sync job.

    One `IntercomClient` (one httpx client, closed on exit) per call; the token is read from
    the environment variable the source's config names, in this process.
    """
    from threadline.db.models import Source
    from threadline.sources.intercom.pgsink import PostgresSink

    with Session(engine) as session:
        source = session.get(Source, source_id)
        if source is None:
            raise LookupError(f"no source with id {source_id}")
        if source.kind != SOURCE_KIND:
            raise LookupError(f"source {source.name!r} is a {source.kind!r} source, not intercom")
        config = dict(source.config or {})
    token = resolve_token(token_env=config.get("token_env", DEFAULT_TOKEN_ENV))

    async def go() -> SyncReport:
        async with IntercomClient(token, region=config.get("region", "us"), base_url=config.get("base_url")) as client:
            return await IntercomSync(client, PostgresSink(engine, source_id, run_id)).run(since=since)

    return asyncio.run(go())


@app.command("sync")
def sync_command(
    source: Annotated[str, typer.Argument(help="Name of the source to sync.")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Re-read from this date (YYYY-MM-DD or ISO time) instead of the watermark."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Fetch new and changed conversations (and deletions) from the source.

    Exit code 0: synced; 1: synced, but some conversations are dead-lettered; 2: failed.
    """
    from rich.table import Table

    from threadline.cli.common import console, emit_json

    try:
        report = sync_source(_engine(), source, since=_since_epoch(since))
    except LookupError as exc:
        raise _fail(str(exc)) from None
    except IntercomAuthError as exc:
        raise _fail(str(exc)) from None
    except IntercomError as exc:
        raise _fail(f"Intercom sync failed: {exc}") from None
    summary = {k: v for k, v in report.__dict__.items()}
    if summary.get("watermark") is not None:
        summary["watermark"] = datetime.fromtimestamp(summary["watermark"], tz=UTC).isoformat()
    if as_json:
        emit_json({"source": source, **summary})
    else:
        table = Table("counter", "value", title=f"sync {source}")
        for key, value in summary.items():
            table.add_row(key, str(value))
        console.print(table)
    if report.dead_lettered:
        raise typer.Exit(EXIT_DEAD_LETTERS)


if __name__ == "__main__":
    from threadline.cli.common import setup_logging

    setup_logging()
    app()
