"""`threadline sources add KIND|list|show` and `threadline sync SOURCE`: connectors from the command line.

`sources add` has one sub-command per registered connector kind, with one option per field
of the connector's configuration model (built when asked for, so other commands never load
a connector). Secrets are never options: a connector's configuration names the environment
variable that holds its token.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Annotated, Any

import typer
from rich.table import Table
from typer.core import TyperGroup

from threadline.cli.common import console, emit_json, engine, fail, parse_date
from threadline.cli.options import config_parameters

EXIT_DEAD_LETTERS = 1  # the sync finished but some records are dead-lettered
EXIT_FAILED = 2  # nothing usable happened (bad token, unknown source, API down)


def _add_command(
    kind: str,
    on_add: Callable[[str, str, dict[str, Any]], None] | None = None,
    extra: Sequence[inspect.Parameter] = (),
) -> Any:
    """`sources add KIND`: `--name` plus one option per field of the connector's configuration model.

    `on_add(kind, name, values)` stores the source (default: a conversation source; `knowledge
    add` passes its own, and `extra` options, whose values arrive in `values` too).
    """
    from threadline.connectors.base import get_connector  # loaded only when `sources add` runs (start-up)

    connector = get_connector(kind)
    parameters = config_parameters(connector.config_model, "Name of the new source.") + list(extra)

    def add(**values: Any) -> None:
        name = values.pop("name")
        chosen = {key: getattr(value, "value", value) for key, value in values.items() if value is not None}
        (on_add or add_source_command)(kind, name, chosen)

    add.__signature__ = inspect.Signature(parameters)  # type: ignore[attr-defined]
    add.__annotations__ = {p.name: p.annotation for p in parameters}
    add.__doc__ = f"Add {connector.description} as a {'knowledge ' if on_add else ''}source."
    command_app = typer.Typer(add_completion=False)
    command_app.command(kind)(add)
    return typer.main.get_command(command_app)


class ConnectorKinds(TyperGroup):
    """`sources add` lists one command per registered conversation connector kind that has settings, loaded on demand.

    Knowledge connectors (record type `ArticleRecord`) are added with `threadline knowledge add`.
    """

    def list_commands(self, ctx: Any) -> list[str]:
        # loaded only when `sources add` runs (start-up)
        from threadline.connectors.base import CONNECTORS
        from threadline.connectors.records import ConversationRecord

        return sorted(
            connector.kind
            for connector in CONNECTORS
            if connector.config_model.model_fields and connector.record_type is ConversationRecord
        )

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        return _add_command(cmd_name) if cmd_name in self.list_commands(ctx) else None


sources_app = typer.Typer(help="Connected sources: add, list, show.", no_args_is_help=True)
add_app = typer.Typer(cls=ConnectorKinds, help="Add a source of a connector kind.", no_args_is_help=True)
sources_app.add_typer(add_app, name="add")


def add_source_command(kind: str, name: str, values: dict[str, Any]) -> None:
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy.orm import Session

    from threadline.connectors.sources import SourceError, add_source

    try:
        with Session(engine()) as session, session.begin():
            source = add_source(session, kind, name, values)
            source_id, config = source.id, dict(source.config)
    except SourceError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    secret_vars = ", ".join(f"${value}" for key, value in config.items() if key.endswith("_env"))
    reads = f"; reads its secrets from {secret_vars}" if secret_vars else ""
    console.print(f"{kind} source {name} (id {source_id}){reads}", markup=False, highlight=False)


@sources_app.command("list")
def list_command(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Sources with their kind and configuration (variable names, never secrets)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from sqlalchemy import select
    from sqlalchemy.orm import Session

    from threadline.db.models import Source

    with Session(engine()) as session:
        rows: list[dict[str, Any]] = [
            {"id": s.id, "name": s.name, "kind": s.kind, "config": dict(s.config or {})}
            for s in session.execute(select(Source).order_by(Source.id)).scalars()
        ]
    if as_json:
        emit_json(rows)
        return
    table = Table("id", "name", "kind", "configuration")
    for row in rows:
        config: dict[str, Any] = row["config"]
        table.add_row(
            str(row["id"]), str(row["name"]), str(row["kind"]), ", ".join(f"{k}={v}" for k, v in config.items())
        )
    console.print(table)


RECENT_SYNCS = 20  # syncs listed by `sources show`: the last few weeks of a daily schedule; older ones are in the table


@sources_app.command("show")
def show_command(
    name: Annotated[str, typer.Argument(help="Name of the source.")],
    limit: Annotated[int, typer.Option("--limit", min=1, help="How many recent syncs to list.")] = RECENT_SYNCS,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """A source, the knowledge attached to it, and its recent syncs and imports (counters, duration, status)."""
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.config import get_settings
    from threadline.connectors.knowledge.attachments import attached_knowledge
    from threadline.db.engine import session_scope
    from threadline.read.sources import recent_syncs, source_by_name

    limit = min(limit, get_settings().read.max_list_limit)
    with session_scope(engine()) as session:
        source = source_by_name(session, name)
        if source is None:
            raise fail(f"no source named {name!r}; see `threadline sources list`", EXIT_FAILED)
        syncs = recent_syncs(session, source["id"], limit=limit)
        knowledge = attached_knowledge(session).get(source["id"], [])
    if as_json:
        emit_json({**source, "knowledge": knowledge, "syncs": syncs})
        return
    console.print(
        f"{source['kind']} source {source['name']} (id {source['id']}): {source['conversations']} conversations",
        markup=False,
        highlight=False,
    )
    attached = (
        ", ".join(knowledge)
        if knowledge
        else "none attached (its runs use all knowledge unless the run's scope has some)"
    )
    console.print(f"knowledge: {attached}", markup=False, highlight=False)
    table = Table(
        "sync", "kind", "started", "created", "changed", "unchanged", "deleted", "dead letters", "duration", "status"
    )
    for sync in syncs:
        duration = f"{sync['duration_s']:.1f} s" if sync["duration_s"] is not None else ""
        table.add_row(
            str(sync["id"]),
            sync["kind"],
            sync["started_at"].strftime("%Y-%m-%d %H:%M:%S"),
            *(str(sync[key]) for key in ("created", "changed", "unchanged", "deleted", "dead_letters")),
            duration,
            sync["status"] + (f": {sync['error']}" if sync["error"] else ""),
        )
    console.print(table if syncs else "no syncs or imports recorded yet")


def _since_epoch(value: str | None) -> int | None:
    parsed = parse_date(value, "--since")
    return int(parsed.timestamp()) if parsed else None


def sync_command(
    source: Annotated[str, typer.Argument(help="Name of the source to sync.")],
    since: Annotated[
        str | None,
        typer.Option("--since", help="Re-read from this date (YYYY-MM-DD or ISO time) instead of the watermark."),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable JSON on stdout.")] = False,
) -> None:
    """Fetch new and changed conversations (and deletions) from a connected source.

    Exit code 0: synced; 1: synced, but some conversations are dead-lettered; 2: failed.
    """
    # imported when the command runs, not at start-up: every command pays only for what it uses
    from threadline.connectors.base import ConnectorError
    from threadline.connectors.sources import SourceError, source_id_by_name, sync_source

    eng = engine()
    try:
        report = sync_source(eng, source_id_by_name(eng, source), since=_since_epoch(since))
    except SourceError as exc:
        raise fail(str(exc), EXIT_FAILED) from None
    except ConnectorError as exc:
        raise fail(f"sync of {source!r} failed: {exc}", EXIT_FAILED) from None
    summary: dict[str, Any] = dict(report.counters())
    summary["watermark"] = datetime.fromtimestamp(report.watermark, tz=UTC).isoformat() if report.watermark else None
    if as_json:
        emit_json({"source": source, **summary})
    else:
        table = Table("counter", "value", title=f"sync {source}")
        for key, value in summary.items():
            table.add_row(key, str(value))
        console.print(table)
    if report.dead_lettered:
        raise typer.Exit(EXIT_DEAD_LETTERS)


def register(app: typer.Typer) -> None:
    """Add `sources` and `sync` to the `threadline` command."""
    app.add_typer(sources_app, name="sources")
    app.command("sync")(sync_command)
